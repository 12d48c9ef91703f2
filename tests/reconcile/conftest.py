"""Fixtures of the reconcile tests: both sandboxes over real HTTP, a webhook receiver for the drift alert, staging
and ledger in tmp, and the scheme's two DAGs (sync and reconcile) built from a copy of the shipped scheme whose
alerts go to the receiver."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from jikeyun_kingdee.sandbox.jikeyun import JikeyunSandbox
from jikeyun_kingdee.sandbox.kingdee import KingdeeSandbox

from tests.support import REPO
from tests.support.alerting import WebhookReceiver
from tests.support.reconcile import (
    JIKEYUN_SECRET,
    KINGDEE_PASSWORD,
    MODIFIED_FROM,
    MODIFIED_TO,
    WAREHOUSES,
    WECOM_KEY,
)
from tests.support.sandboxes import connected_jikeyun, connected_kingdee, local_staging


@pytest.fixture
def jikeyun(monkeypatch: pytest.MonkeyPatch) -> Iterator[JikeyunSandbox]:
    with connected_jikeyun(monkeypatch, JIKEYUN_SECRET, warehouses=WAREHOUSES, seed=23,
                           modified_from=MODIFIED_FROM, modified_to=MODIFIED_TO) as sandbox:
        yield sandbox


@pytest.fixture
def kingdee(monkeypatch: pytest.MonkeyPatch) -> Iterator[KingdeeSandbox]:
    with connected_kingdee(monkeypatch, KINGDEE_PASSWORD) as sandbox:
        yield sandbox


@pytest.fixture
def webhook(monkeypatch: pytest.MonkeyPatch) -> Iterator[WebhookReceiver]:
    """The scheme's WeCom robot (``alert_wecom``) is this receiver."""
    with WebhookReceiver() as receiver:
        monkeypatch.setenv("AIRFLOW_CONN_ALERT_WECOM", json.dumps(
            {"conn_type": "http", "host": receiver.url, "password": WECOM_KEY}))
        yield receiver


@pytest.fixture
def staging(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return local_staging(tmp_path, monkeypatch)


@pytest.fixture(scope="session")
def scheme_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shipped warehouse scheme, its alerts sent to the ``alert_wecom`` robot (without a deadline)."""
    folder = tmp_path_factory.mktemp("schemes")
    scheme = yaml.safe_load((REPO / "include" / "schemes" / "warehouse_I0134.yaml").read_text(encoding="utf-8"))
    # no deadline: Airflow 3.3's dag.test() cannot run a DAG whose Deadline Alert is live (a channel makes it so)
    scheme["alerting"] = {**scheme.get("alerting", {}), "wecom_conn_id": "alert_wecom", "deadline_minutes": None}
    (folder / "warehouse_I0134.yaml").write_text(yaml.safe_dump(scheme, allow_unicode=True), encoding="utf-8")
    return folder


@pytest.fixture(scope="session")
def dags(airflow_db, scheme_folder: Path) -> dict:
    """Both DAGs of the scheme, recorded as coming from the repository's DAG file (dag.test() needs that)."""
    from jikeyun_kingdee.dag_factory import build_dags
    from jikeyun_kingdee.pools import ensure_pools
    from jikeyun_kingdee.scheme import load_scheme

    ensure_pools([load_scheme(scheme_folder / "warehouse_I0134.yaml")])  # what a deployment does after migrating
    return build_dags(scheme_folder, dags_file=str(REPO / "dags" / "jikeyun_kingdee_schemes.py"))
