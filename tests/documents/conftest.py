"""Fixtures of the sales outbound scheme's DAG tests: one pair of sandboxes over real HTTP (warehouses, goods and
trades in Jikeyun), one staging folder and ledger, and the DAG bag, shared by the tests of a module (they form one
timeline of hourly windows)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from jikeyun_kingdee.sandbox.jikeyun import JikeyunSandbox
from jikeyun_kingdee.sandbox.kingdee import KingdeeSandbox

from tests.support import REPO
from tests.support.goods import keep_to_the_unit_table
from tests.support.sandboxes import connected_jikeyun, connected_kingdee, local_staging
from tests.support.trades import JIKEYUN_SECRET, KINGDEE_PASSWORD, MODIFIED_FROM, MODIFIED_TO


@pytest.fixture(scope="module")
def module_env() -> Iterator[pytest.MonkeyPatch]:
    with pytest.MonkeyPatch.context() as patch:
        yield patch


@pytest.fixture(scope="module")
def jikeyun(module_env: pytest.MonkeyPatch) -> Iterator[JikeyunSandbox]:
    """20 warehouses and 40 goods; SKUs of units the schemes do not map get 件 (at their own time)."""
    with connected_jikeyun(module_env, JIKEYUN_SECRET, warehouses=20, goods=40, seed=43,
                           modified_from=MODIFIED_FROM, modified_to=MODIFIED_TO) as sandbox:
        keep_to_the_unit_table(sandbox)
        yield sandbox


@pytest.fixture(scope="module")
def kingdee(module_env: pytest.MonkeyPatch) -> Iterator[KingdeeSandbox]:
    with connected_kingdee(module_env, KINGDEE_PASSWORD) as sandbox:
        yield sandbox


@pytest.fixture(scope="module")
def staging(tmp_path_factory: pytest.TempPathFactory, module_env: pytest.MonkeyPatch) -> Path:
    return local_staging(tmp_path_factory.mktemp("documents"), module_env)


@pytest.fixture(scope="module")
def dags(airflow_db, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The shipped schemes' DAGs, the document's wait for the base-data runs cut to one look (``wait_minutes: 0``):
    the tests run the base-data DAGs when their timeline needs them, not for every window (tests/dags/test_order.py
    tests the wait). The DAG file reads that folder meanwhile (Airflow 3's dag.test() parses it again)."""
    import yaml

    from tests.support.airflow_compat import load_dag_bag

    folder = tmp_path_factory.mktemp("schemes")
    for path in (REPO / "include" / "schemes").glob("*.yaml"):
        scheme = yaml.safe_load(path.read_text(encoding="utf-8"))
        if scheme.get("base_data"):
            scheme["base_data"]["wait_minutes"] = 0
        (folder / path.name).write_text(yaml.safe_dump(scheme, allow_unicode=True), encoding="utf-8")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("JIKEYUN_KINGDEE_SCHEMES", str(folder))
        bag = load_dag_bag(str(REPO / "dags"))
        assert not bag.import_errors, bag.import_errors
        yield bag.dags
