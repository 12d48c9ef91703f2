"""Benchmark of the reconcile DAG: for N warehouses (default 1,000) with the issue's drift — one renamed, one
deleted, one un-audited and one forbidden by hand in Kingdee, one blocked in Jikeyun but active in Kingdee, one
Kingdee-only record, one Jikeyun record of a window never synced — the reconcile's API calls per endpoint, its wall
time, what it found and repaired, and the same for a second reconcile (nothing to repair).

    .venv/bin/python benchmarks/reconcile.py [--sizes 1000 10000]

The sandboxes run as separate processes (``python -m jikeyun_kingdee.sandbox serve``); a child process runs the
initial full sync, then the two reconciles with ``dag.test()`` (tasks in-process, one after another), so the wall
time and peak memory are those of Airflow and the tasks only. Figures go to stdout.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SYNC_DAG_ID = "jikeyun_kingdee_warehouse_I0134"
RECONCILE_DAG_ID = "jikeyun_kingdee_warehouse_I0134_reconcile"

RUN = r"""
import json, os, sys, time, resource
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.request import Request, urlopen
from jikeyun_kingdee.demo import configure_airflow
home, dags, jikeyun_url, kingdee_url = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[5], sys.argv[6]
configure_airflow(home, dags)
os.environ["AIRFLOW_CONN_JIKEYUN_DEFAULT"], os.environ["AIRFLOW_CONN_KINGDEE_DEFAULT"] = sys.argv[3], sys.argv[4]
os.environ["AIRFLOW_CONN_JIKEYUN_KINGDEE_LEDGER"] = json.dumps({"conn_type": "sqlite", "host": str(home / "ledger.db")})

def control(url, command, payload=None):
    request = Request(f"{url}/_sandbox/{command}", data=json.dumps(payload or {}).encode(),
                      headers={"Content-Type": "application/json"}, method="POST")
    with urlopen(request, timeout=60) as answer:
        return json.loads(answer.read())["result"]

from airflow.utils import db
db.resetdb()
from jikeyun_kingdee.compat import AIRFLOW_V3
from jikeyun_kingdee.local_runs import load_dag_bag, return_value_of, run_dag as run_dag_test
from jikeyun_kingdee.pools import ensure_pools, schemes_of
ensure_pools(schemes_of()[0])
bag = load_dag_bag(str(dags))
sync, reconcile = bag.get_dag("SYNC_DAG_ID"), bag.get_dag("RECONCILE_DAG_ID")
now = datetime.now(timezone.utc).replace(microsecond=0)
first = run_dag_test(sync, now - timedelta(hours=2), run_conf={"full_resync": True})
assert str(first.state) == "success", first.state

warehouses = control(jikeyun_url, "warehouses")
active = sorted(w["warehouseCode"] for w in warehouses if not int(w["isBlockup"]) and not int(w.get("isDelete") or 0))
renamed, deleted, unaudited, forbidden, blocked = active[:5]
control(kingdee_url, "edit-stocks", {"numbers": [renamed], "org": "I0134", "FName": "手工改过的名字"})
control(kingdee_url, "delete-stocks", {"numbers": [deleted], "org": "I0134"})
control(kingdee_url, "edit-stocks", {"numbers": [unaudited], "org": "I0134", "FDocumentStatus": "D"})
control(kingdee_url, "edit-stocks", {"numbers": [forbidden], "org": "I0134", "FForbidStatus": "B"})
control(kingdee_url, "add-stocks", {"rows": [{"FNumber": "HAND-0001", "FName": "手工建的仓库", "FStockProperty": "1",
        "FCreateOrgId": "I0134", "FUseOrgId": "I0134"}], "status": "C"})
window = (now - timedelta(minutes=30)).isoformat()
control(jikeyun_url, "block-warehouse", {"code": blocked, "modified_at": window})
control(jikeyun_url, "add-warehouse", {"warehouseCode": "WH-UNSYNCED", "warehouseName": "从未同步的窗口",
        "isBlockup": 0, "isDelete": 0, "modified_at": window})

results = []
for label in ("with drift", "second run"):
    for url in (jikeyun_url, kingdee_url):
        control(url, "reset-calls")
    started = time.perf_counter()
    run = run_dag_test(reconcile, None if AIRFLOW_V3 else now)  # Airflow 2: every run has a logical date
    seconds = time.perf_counter() - started
    summary = return_value_of(run, "report") or {}
    results.append({"label": label, "state": str(run.state), "seconds": seconds, "summary": summary,
                    "calls": {**control(jikeyun_url, "calls"), **control(kingdee_url, "calls")}})
    now += timedelta(minutes=1)
peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print("RESULT " + json.dumps({"runs": results, "peak_rss_mb": peak_rss_mb}))
""".replace("SYNC_DAG_ID", SYNC_DAG_ID).replace("RECONCILE_DAG_ID", RECONCILE_DAG_ID)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def control(url: str, command: str, payload: dict | None = None) -> Any:
    """One sandbox control command over HTTP (``POST /_sandbox/<command>``)."""
    request = urllib.request.Request(
        f"{url}/_sandbox/{command}",
        data=json.dumps(payload or {}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=60) as answer:
        return json.loads(answer.read())["result"]


def start_sandbox(kind: str, *args: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "jikeyun_kingdee.sandbox", "serve", kind, "--port", str(port), *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):  # generating 10,000 warehouses takes a while
        try:
            control(url, "calls")
            return process, url
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"{kind} sandbox did not start")


def run_size(size: int) -> dict:
    jikeyun, jikeyun_url = start_sandbox("jikeyun", "--warehouses", str(size))
    kingdee, kingdee_url = start_sandbox("kingdee")
    try:
        jk_conn = json.dumps(
            {
                "conn_type": "jikeyun",
                "host": jikeyun_url,
                "login": "12345678",
                "password": "0123456789abcdef0123456789ABCDEF",
                "extra": {"max_calls_per_second": 1000},
            }
        )
        kd_conn = json.dumps(
            {
                "conn_type": "kingdee",
                "host": f"{kingdee_url}/k3cloud/",
                "login": "webapi",
                "password": "Kingdee@123",
                "extra": {"acct_id": "5db25ac8d2b819", "auth": "password"},
            }
        )
        with tempfile.TemporaryDirectory(prefix="jk-bench-reconcile-") as home:
            child = subprocess.run(
                [sys.executable, "-c", RUN, home, str(REPO / "dags"), jk_conn, kd_conn, jikeyun_url, kingdee_url],
                check=False,
                capture_output=True,
                text=True,
                env={**os.environ, "JIKEYUN_KINGDEE_SCHEMES": str(REPO / "include" / "schemes")},
            )
        line = next((out for out in child.stdout.splitlines() if out.startswith("RESULT ")), None)
        if line is None:
            raise RuntimeError(
                f"benchmark run failed (exit {child.returncode}): {(child.stdout + child.stderr)[-3000:]}"
            )
        result: dict[str, Any] = json.loads(line[len("RESULT ") :])
        result["kingdee_records"] = len(control(kingdee_url, "stocks", {"org": "I0134"}))
        return result
    finally:
        for process in (jikeyun, kingdee):
            process.terminate()
            process.wait(10)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000])
    args = parser.parse_args()

    from jikeyun_kingdee.scheme import load_scheme

    scheme = load_scheme(REPO / "include" / "schemes" / "warehouse_I0134.yaml")
    for size in args.sizes:
        figures = run_size(size)
        print(
            f"\n{size} warehouses in Jikeyun, {figures['kingdee_records']} records in Kingdee after the repair; "
            f"peak RSS of the process running sync + reconciles {figures['peak_rss_mb']:.0f} MB"
        )
        for run in figures["runs"]:
            summary = run["summary"]
            cost = summary.get("cost", {})
            print(f"\n  reconcile {run['label']}: {run['state']} in {run['seconds']:.1f} s wall")
            print(f"    found:    {summary.get('found')}  (drift {summary.get('drift')})")
            print(f"    keys:     {summary.get('found_keys')}")
            print(
                f"    repaired: {summary.get('repaired')} {summary.get('repair_results')}; left {summary.get('left')}"
            )
            records, page = size + 1, scheme.source.page_size  # the generated ones and WH-UNSYNCED
            print(
                f"    cost:     {cost.get('jikeyun_calls')} Jikeyun calls (a keyset read needs ⌈(N+1)/P⌉ = "
                f"{math.ceil((records + 1) / page)} at P = {page}), {cost.get('kingdee_queries')} Kingdee queries "
                f"({cost.get('kingdee_read_queries')} to read ⌈M/{scheme.target.lookup_limit}⌉, "
                f"{cost.get('repair_queries')} in the repair and its read-back), "
                f"{cost.get('repair_writes')} repair writes"
            )
            print(f"    {'endpoint':<28}{'calls':>8}")
            for name, calls in sorted(run["calls"].items()):
                print(f"    {name:<28}{calls:>8}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
