"""A full DAG run with faults leaves no secret in any log, XCom value, staged file or ledger (issue 6)."""

from __future__ import annotations

import json
from pathlib import Path

import sqlalchemy as sa

from tests.support.airflow_compat import run_dag_test
from tests.support.dag_timeline import JIKEYUN_SECRET, KINGDEE_APP_SECRET, KINGDEE_PASSWORD, hour

SECRETS = {
    "jikeyun appsecret": JIKEYUN_SECRET,
    "kingdee password": KINGDEE_PASSWORD,
    "kingdee app secret": KINGDEE_APP_SECRET,
}


def leaks(text: str) -> list[str]:
    return [name for name, secret in SECRETS.items() if secret in text or secret.lower() in text.lower()]


def test_runs_with_faults_leak_no_secret(
    warehouse_dag, jikeyun, kingdee, staging: Path, monkeypatch, caplog, capfd
) -> None:
    caplog.set_level("DEBUG")
    # Jikeyun: throttled twice, an HTTP 500, a dropped connection and a non-JSON body; Kingdee: a 502 and sessions
    # that expire every few requests; one row rejected so error paths are logged too.
    jikeyun.throttle(next_calls=2)
    jikeyun.faults.update(status=[500], drop=1, garbage=1)
    kingdee.faults.update(status=[502])
    kingdee.session_max_requests = 4
    refused = sorted(
        code for code, w in jikeyun.warehouses.items() if int(w["isBlockup"]) == 0 and not int(w["isDelete"])
    )[0]
    kingdee.fail_rows([refused], message="编码格式不正确")
    password_run = run_dag_test(warehouse_dag, hour(1), run_conf={"full_resync": True})
    assert password_run.state == "failed"  # the rejected row fails the run (after everything else was loaded)
    assert password_run.get_task_instance("report").state == "failed"
    assert jikeyun.calls.get("erp.warehouse.get", 0) > 0 and kingdee.calls.get("BatchSave", 0) > 0

    # The same with the SDK-v8 header signature (the app secret signs every request).
    monkeypatch.setenv(
        "AIRFLOW_CONN_KINGDEE_DEFAULT",
        json.dumps(
            {
                "conn_type": "kingdee",
                "host": f"{kingdee.url}/k3cloud/",
                "login": "webapi",
                "password": KINGDEE_APP_SECRET,
                "extra": {"acct_id": kingdee.acct_id, "auth": "signature", "app_id": kingdee.app_id},
            }
        ),
    )
    jikeyun.faults.update(status=[502])
    signature_run = run_dag_test(warehouse_dag, hour(2), run_conf={"full_resync": True})
    assert signature_run.state == "success", {ti.task_id: ti.state for ti in signature_run.get_task_instances()}

    captured = capfd.readouterr()
    places: dict[str, str] = {"stdout": captured.out, "stderr": captured.err, "log records": caplog.text}
    import os

    home = Path(os.environ["AIRFLOW_HOME"])
    for path in [*home.rglob("*.log"), *staging.rglob("*"), staging.parent / "ledger.db"]:
        if path.is_file():
            places[str(path)] = path.read_bytes().decode("utf-8", errors="replace")
    from airflow.settings import engine

    assert engine is not None  # the test session configured Airflow's database
    with engine.connect() as conn:
        for table in ("xcom", "task_instance", "dag_run", "log"):
            rows = conn.execute(sa.text(f"SELECT * FROM {table}")).fetchall()
            places[f"table {table}"] = "\n".join(repr(row) for row in rows)
    assert any("api_call system=jikeyun" in text for text in places.values())  # the scan does see the call logs
    staged = [Path(p) for p in places if p.startswith(str(staging))]
    assert len(staged) >= 10 and {p.parent.name for p in staged} == {"extract", "transform", "filter", "load"}
    found = {place: leaks(text) for place, text in places.items() if leaks(text)}
    assert found == {}
