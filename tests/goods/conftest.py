"""Fixtures of the goods scheme's DAG tests: one pair of sandboxes over real HTTP, one staging folder and ledger,
and the DAG bag, shared by the tests of a module (they form one timeline of hourly windows)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from jikeyun_kingdee.sandbox.jikeyun import JikeyunSandbox
from jikeyun_kingdee.sandbox.kingdee import KingdeeSandbox

from tests.support import REPO
from tests.support.goods import (
    GOODS,
    JIKEYUN_SECRET,
    KINGDEE_PASSWORD,
    MODIFIED_FROM,
    MODIFIED_TO,
    keep_to_the_unit_table,
)
from tests.support.sandboxes import connected_jikeyun, connected_kingdee, local_staging


@pytest.fixture(scope="module")
def module_env() -> Iterator[pytest.MonkeyPatch]:
    """Environment changes (connections, staging) that last for the module."""
    with pytest.MonkeyPatch.context() as patch:
        yield patch


@pytest.fixture(scope="module")
def jikeyun(module_env: pytest.MonkeyPatch) -> Iterator[JikeyunSandbox]:
    """A catalogue of :data:`GOODS` goods; SKUs of units the scheme does not map (双, 袋) get 件, at their own
    modification time, so that only the test about unmapped units meets one."""
    with connected_jikeyun(module_env, JIKEYUN_SECRET, warehouses=0, goods=GOODS, seed=31,
                           modified_from=MODIFIED_FROM, modified_to=MODIFIED_TO) as sandbox:
        keep_to_the_unit_table(sandbox)
        yield sandbox


@pytest.fixture(scope="module")
def kingdee(module_env: pytest.MonkeyPatch) -> Iterator[KingdeeSandbox]:
    with connected_kingdee(module_env, KINGDEE_PASSWORD) as sandbox:
        yield sandbox


@pytest.fixture(scope="module")
def staging(tmp_path_factory: pytest.TempPathFactory, module_env: pytest.MonkeyPatch) -> Path:
    return local_staging(tmp_path_factory.mktemp("goods"), module_env)


@pytest.fixture(scope="session")
def dags(airflow_db) -> dict[str, Any]:
    from tests.support.airflow_compat import load_dag_bag

    bag = load_dag_bag(str(REPO / "dags"))
    assert not bag.import_errors, bag.import_errors
    return bag.dags

