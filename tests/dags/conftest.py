"""Fixtures for DAG tests: both sandboxes over real HTTP, connections from env, staging and ledger in tmp."""

from __future__ import annotations

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
from tests.support.sandboxes import connected_jikeyun, connected_kingdee, local_staging


@pytest.fixture
def jikeyun(monkeypatch: pytest.MonkeyPatch) -> Iterator[JikeyunSandbox]:
    with connected_jikeyun(monkeypatch, JIKEYUN_SECRET, warehouses=1000, seed=11,
                           modified_from=MODIFIED_FROM, modified_to=MODIFIED_TO) as sandbox:
        yield sandbox


@pytest.fixture
def kingdee(monkeypatch: pytest.MonkeyPatch) -> Iterator[KingdeeSandbox]:
    with connected_kingdee(monkeypatch, KINGDEE_PASSWORD, app_secret=KINGDEE_APP_SECRET) as sandbox:
        yield sandbox


@pytest.fixture
def staging(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return local_staging(tmp_path, monkeypatch)


@pytest.fixture(scope="session")
def warehouse_dag(airflow_db):
    from tests.support.airflow_compat import load_dag_bag

    bag = load_dag_bag(str(Path(__file__).resolve().parents[2] / "dags"))
    assert not bag.import_errors, bag.import_errors
    return bag.get_dag(DAG_ID)
