"""Fixtures for DAG tests: both sandboxes over real HTTP, connections from env, staging and ledger in tmp."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from jikeyun_kingdee.sandbox.jikeyun import JikeyunSandbox
from jikeyun_kingdee.sandbox.kingdee import KingdeeSandbox

from tests.support.dag_timeline import (
    DAG_ID,
    JIKEYUN_SECRET,
    KINGDEE_APP_SECRET,
    KINGDEE_PASSWORD,
    MODIFIED_FROM,
    MODIFIED_TO,
)


@pytest.fixture
def jikeyun(monkeypatch: pytest.MonkeyPatch) -> Iterator[JikeyunSandbox]:
    sandbox = JikeyunSandbox(appsecret=JIKEYUN_SECRET, warehouses=1000, seed=11,
                             modified_from=MODIFIED_FROM, modified_to=MODIFIED_TO)
    with sandbox:
        monkeypatch.setenv("AIRFLOW_CONN_JIKEYUN_DEFAULT", json.dumps({
            "conn_type": "jikeyun", "host": sandbox.url, "login": sandbox.appkey, "password": JIKEYUN_SECRET,
            "extra": {"max_calls_per_second": 200},
        }))
        yield sandbox


@pytest.fixture
def kingdee(monkeypatch: pytest.MonkeyPatch) -> Iterator[KingdeeSandbox]:
    sandbox = KingdeeSandbox(password=KINGDEE_PASSWORD, app_secret=KINGDEE_APP_SECRET)
    with sandbox:
        monkeypatch.setenv("AIRFLOW_CONN_KINGDEE_DEFAULT", json.dumps({
            "conn_type": "kingdee", "host": f"{sandbox.url}/k3cloud/", "login": "webapi", "password": KINGDEE_PASSWORD,
            "extra": {"acct_id": sandbox.acct_id, "auth": "password"},
        }))
        yield sandbox


@pytest.fixture
def staging(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "staging"
    monkeypatch.setenv("AIRFLOW__JIKEYUN_KINGDEE__STAGING_BASE", f"file://{folder}")
    monkeypatch.setenv(
        "AIRFLOW_CONN_JIKEYUN_KINGDEE_LEDGER", json.dumps({"conn_type": "sqlite", "host": str(tmp_path / "ledger.db")})
    )
    return folder


@pytest.fixture(scope="session")
def warehouse_dag(airflow_db):
    from tests.support.airflow_compat import load_dag_bag

    bag = load_dag_bag(str(Path(__file__).resolve().parents[2] / "dags"))
    assert not bag.import_errors, bag.import_errors
    return bag.get_dag(DAG_ID)
