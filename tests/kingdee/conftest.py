"""Fixtures of the Kingdee tests: a started sandbox and ``kingdee_default`` pointing at it (a JSON env var)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import pytest

from jikeyun_kingdee.hooks.kingdee import KingdeeHook
from jikeyun_kingdee.sandbox.kingdee import KingdeeSandbox


@pytest.fixture
def sandbox() -> Iterator[KingdeeSandbox]:
    with KingdeeSandbox(password="s3cret-pw") as server:
        yield server


@pytest.fixture
def connect(sandbox: KingdeeSandbox, monkeypatch: pytest.MonkeyPatch) -> Callable[..., KingdeeHook]:
    """Point ``kingdee_default`` at the sandbox with the given auth mode and return a fresh hook."""

    def _connect(auth: str = "password", *, secret: str | None = None, retry_delay: float = 0.01,
                 **extra: object) -> KingdeeHook:
        if secret is None:
            secret = sandbox.password if auth == "password" else sandbox.app_secret
        conn = {
            "conn_type": "kingdee", "host": f"{sandbox.url}/k3cloud/", "login": sandbox.username, "password": secret,
            "extra": {"acct_id": sandbox.acct_id, "lcid": 2052, "auth": auth, "app_id": sandbox.app_id,
                      "org_num": 0, "timeout": 5, **extra},
        }
        monkeypatch.setenv("AIRFLOW_CONN_KINGDEE_DEFAULT", json.dumps(conn))
        return KingdeeHook(retry_delay=retry_delay)

    return _connect


@pytest.fixture
def hook(connect: Callable[..., KingdeeHook]) -> KingdeeHook:
    return connect("password")

