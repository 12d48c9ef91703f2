"""Airflow 2 from its command line: ``airflow dags test`` of the warehouse DAG against sandboxes served as processes.

(Airflow 3's real deployment — Celery, PostgreSQL, REST API — is tested in ``tests/deployment``.)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.airflow_compat import only_airflow2
from tests.support.dag_timeline import DAG_ID

LOGICAL_DATE = "2026-11-01T01:00:00+00:00"
SANDBOX = [sys.executable, "-m", "jikeyun_kingdee.sandbox"]

pytestmark = only_airflow2


def _serve(kind: str, *options: str) -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen([*SANDBOX, "serve", kind, *options], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                               text=True)
    assert process.stdout is not None  # stdout=PIPE
    line = process.stdout.readline()  # "<kind> sandbox listening on <url>"
    assert "listening on" in line, f"{kind} sandbox did not start: {line!r}"
    return process, line.rsplit(" ", 1)[1].strip()


def _control(url: str, action: str, payload: dict | None = None):
    out = subprocess.run([*SANDBOX, "control", url, action, json.dumps(payload or {})], capture_output=True, text=True,
                         check=True, timeout=60)
    return json.loads(out.stdout)["result"]


@pytest.fixture
def sandboxes() -> Iterator[dict[str, str]]:
    started = [_serve("jikeyun", "--warehouses", "300"), _serve("kingdee")]
    try:
        yield {"jikeyun": started[0][1], "kingdee": started[1][1]}
    finally:
        for process, _ in started:
            process.terminate()
            process.wait(timeout=30)


def test_airflow_dags_test_loads_the_warehouses_into_kingdee(airflow_db, sandboxes, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "AIRFLOW_CONN_JIKEYUN_DEFAULT": json.dumps(
            {
                "conn_type": "jikeyun",
                "host": sandboxes["jikeyun"],
                "login": "12345678",
                "password": "0123456789abcdef0123456789ABCDEF",
            }
        ),
        "AIRFLOW_CONN_KINGDEE_DEFAULT": json.dumps(
            {
                "conn_type": "kingdee",
                "host": f"{sandboxes['kingdee']}/k3cloud/",
                "login": "webapi",
                "password": "Kingdee@123",
                "extra": {"acct_id": "5db25ac8d2b819", "auth": "password"},
            }
        ),
        "AIRFLOW_CONN_JIKEYUN_KINGDEE_LEDGER": json.dumps({"conn_type": "sqlite", "host": str(tmp_path / "ledger.db")}),
        "AIRFLOW__JIKEYUN_KINGDEE__STAGING_BASE": f"file://{tmp_path / 'staging'}",
    }
    airflow = str(Path(sys.executable).with_name("airflow"))
    run = subprocess.run(
        [airflow, "dags", "test", DAG_ID, LOGICAL_DATE, "--conf", json.dumps({"full_resync": True})],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, (run.stdout + run.stderr)[-3000:]
    assert "DagRun Finished" in run.stdout + run.stderr and "state=success" in run.stdout + run.stderr

    source = _control(sandboxes["jikeyun"], "warehouses")
    active = {
        w["warehouseCode"]: w["warehouseName"]
        for w in source
        if int(w["isBlockup"]) == 0 and int(w.get("isDelete") or 0) == 0
    }
    stocks = _control(sandboxes["kingdee"], "stocks", {"org": "I0134"})
    assert {s["FNumber"]: s["FName"] for s in stocks} == active
    assert active and {s["FDocumentStatus"] for s in stocks} == {"C"}
    assert any((tmp_path / "staging" / DAG_ID).rglob("*.ndjson"))
