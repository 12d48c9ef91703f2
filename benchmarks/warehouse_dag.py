"""Benchmark of the warehouse DAG: parse time, and for 1,000 and 10,000 warehouses one full run's wall time,
API calls per endpoint against the minimum possible, and peak memory of the process that runs the tasks.

    .venv/bin/python benchmarks/warehouse_dag.py [--sizes 1000 10000]

The sandboxes run as separate processes (``python -m jikeyun_kingdee.sandbox serve``) so the measured process holds
only Airflow and the tasks (``dag.test()`` runs them in-process, one after another). Figures go to stdout.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DAG_FILE = REPO / "dags" / "jikeyun_kingdee_schemes.py"

RUN_ONE = r"""
import json, os, sys, time
from jikeyun_kingdee.demo import configure_airflow
from pathlib import Path
from typing import Any
home = Path(sys.argv[1]); configure_airflow(home, Path(sys.argv[2]))
os.environ["AIRFLOW_CONN_JIKEYUN_DEFAULT"] = sys.argv[3]
os.environ["AIRFLOW_CONN_KINGDEE_DEFAULT"] = sys.argv[4]
from airflow.utils import db
db.resetdb()
from airflow.dag_processing.dagbag import DagBag
dag = DagBag(dag_folder=sys.argv[2]).get_dag(sys.argv[5])
started = time.perf_counter()
run = dag.test(logical_date=None)
elapsed = time.perf_counter() - started
print("RESULT " + json.dumps({"state": str(run.state), "seconds": elapsed}))
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def control(url: str, command: str, payload: dict | None = None) -> Any:
    request = urllib.request.Request(f"{url}/_sandbox/{command}", data=json.dumps(payload or {}).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.loads(answer.read())["result"]


def start_sandbox(kind: str, *args: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "jikeyun_kingdee.sandbox", "serve", kind, "--port", str(port), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            control(url, "calls")
            return process, url
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"{kind} sandbox did not start")


def parse_times(repeat: int = 5) -> tuple[float, float]:
    """(cold: a fresh interpreter importing and running the DAG file; warm: re-running it in a warm interpreter)."""
    script = (
        f"import runpy, time; t = time.perf_counter(); runpy.run_path({str(DAG_FILE)!r}); "
        "cold = time.perf_counter() - t\n"
        "warm = []\n"
        "for _ in range(5):\n"
        f"    t = time.perf_counter(); runpy.run_path({str(DAG_FILE)!r}); warm.append(time.perf_counter() - t)\n"
        "print(cold, min(warm))\n"
    )
    colds, warms = [], []
    for _ in range(repeat):
        out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
        cold, warm = map(float, out.stdout.split()[-2:])
        colds.append(cold)
        warms.append(warm)
    return statistics.median(colds), statistics.median(warms)


def minimum_calls(total: int, active: int, page_size: int, rows_per_batch: int) -> dict[str, int]:
    """The fewest calls any client could make for a full sync into an empty target with the scheme's page and batch
    sizes: every page full plus the short/empty page that proves the end (plain offset paging, which can lose records),
    one login, one BatchSave a batch of new rows (were it saved, submitted and audited by IsAutoSubmitAndAudit)."""
    return {"erp.warehouse.get": total // page_size + 1, "login": 1, "BatchSave": math.ceil(active / rows_per_batch)}


def run_size(size: int, dag_id: str) -> dict:
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
        with tempfile.TemporaryDirectory(prefix="jk-bench-") as home:
            child = subprocess.Popen(
                [sys.executable, "-c", RUN_ONE, home, str(REPO / "dags"), jk_conn, kd_conn, dag_id],
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
            )
            stdout = child.stdout.read() if child.stdout else ""
            _, status, usage = os.wait4(child.pid, 0)
            child.returncode = os.waitstatus_to_exitcode(status)
        line = next((out for out in stdout.splitlines() if out.startswith("RESULT ")), None)
        if line is None:
            raise RuntimeError(f"benchmark run failed (exit {child.returncode}): {stdout[-2000:]}")
        result = json.loads(line[len("RESULT ") :])
        stocks = control(kingdee_url, "stocks", {"org": "I0134"})
        return {
            "size": size,
            "state": result["state"],
            "seconds": result["seconds"],
            "peak_rss_mb": usage.ru_maxrss / 1024,
            "jikeyun_calls": control(jikeyun_url, "calls"),
            "kingdee_calls": control(kingdee_url, "calls"),
            "active": len(stocks),
        }
    finally:
        for process in (jikeyun, kingdee):
            process.terminate()
            process.wait(10)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    args = parser.parse_args()

    from jikeyun_kingdee.scheme import load_scheme

    scheme = load_scheme(REPO / "include" / "schemes" / "warehouse_I0134.yaml")
    cold, warm = parse_times()
    print(
        f"DAG file parse time: {cold * 1000:.0f} ms cold (fresh interpreter, imports included), "
        f"{warm * 1000:.1f} ms warm"
    )
    for size in args.sizes:
        figures = run_size(size, scheme.dag_id)
        minimum = minimum_calls(size, figures["active"], scheme.source.page_size, scheme.target.rows_per_batch)
        print(
            f"\n{size} warehouses, full sync into an empty Kingdee ({figures['active']} active after the condition): "
            f"run {figures['state']} in {figures['seconds']:.1f} s wall, "
            f"peak RSS of the task process {figures['peak_rss_mb']:.0f} MB"
        )
        print(f"  {'endpoint':<28}{'calls':>8}{'minimum':>10}")
        for name, calls in sorted({**figures["jikeyun_calls"], **figures["kingdee_calls"]}.items()):
            floor = minimum.get(name) or (
                minimum["login"] if name.lower() in ("validateuser", "loginbyappsecret") else None
            )
            print(f"  {name:<28}{calls:>8}{floor if floor is not None else '':>10}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
