"""Both sandboxes started for a test, with the ``jikeyun_default``/``kingdee_default`` connections (environment JSON)
pointing at them, and the staging base and ledger in the test's tmp folder."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from jikeyun_kingdee.sandbox.jikeyun import JikeyunSandbox
from jikeyun_kingdee.sandbox.kingdee import KingdeeSandbox


@contextmanager
def connected_jikeyun(monkeypatch: pytest.MonkeyPatch, appsecret: str, **sandbox: Any) -> Iterator[JikeyunSandbox]:
    with JikeyunSandbox(appsecret=appsecret, **sandbox) as server:
        monkeypatch.setenv("AIRFLOW_CONN_JIKEYUN_DEFAULT", json.dumps({
            "conn_type": "jikeyun", "host": server.url, "login": server.appkey, "password": appsecret,
            "extra": {"max_calls_per_second": 200},
        }))
        yield server


@contextmanager
def connected_kingdee(monkeypatch: pytest.MonkeyPatch, password: str, **sandbox: Any) -> Iterator[KingdeeSandbox]:
    with KingdeeSandbox(password=password, **sandbox) as server:
        monkeypatch.setenv("AIRFLOW_CONN_KINGDEE_DEFAULT", json.dumps({
            "conn_type": "kingdee", "host": f"{server.url}/k3cloud/", "login": "webapi", "password": password,
            "extra": {"acct_id": server.acct_id, "auth": "password"},
        }))
        yield server


def local_staging(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Staging files under ``tmp_path/staging`` and the sync ledger in ``tmp_path/ledger.db``."""
    folder = tmp_path / "staging"
    monkeypatch.setenv("AIRFLOW__JIKEYUN_KINGDEE__STAGING_BASE", f"file://{folder}")
    monkeypatch.setenv("AIRFLOW_CONN_JIKEYUN_KINGDEE_LEDGER",
                       json.dumps({"conn_type": "sqlite", "host": str(tmp_path / "ledger.db")}))
    return folder
