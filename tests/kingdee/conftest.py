"""Fixtures of the Kingdee tests: a started sandbox and ``kingdee_default`` pointing at it (a JSON env var), per test
(``sandbox``, ``hook``) or shared by a test module and reset before each test (``kingdee``, ``kingdee_hook``)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import pytest

from jikeyun_kingdee.hooks.kingdee import KingdeeHook
from jikeyun_kingdee.sandbox.kingdee import KingdeeSandbox

from tests.support.sandboxes import connected_kingdee


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



@pytest.fixture(scope="module")
def module_sandbox() -> Iterator[tuple[KingdeeSandbox, dict]]:
    """One sandbox for the whole module, with its default settings, and ``kingdee_default`` pointing at it."""
    with pytest.MonkeyPatch.context() as patch, connected_kingdee(patch, "s3cret-pw") as server:
        yield server, server.configure()


@pytest.fixture
def kingdee(module_sandbox: tuple[KingdeeSandbox, dict]) -> KingdeeSandbox:
    """The module's sandbox as if new: seeded records only, default settings, no faults, no counts."""
    server, defaults = module_sandbox
    server.reset()
    server.configure(**defaults)
    return server


@pytest.fixture
def kingdee_hook(kingdee: KingdeeSandbox) -> KingdeeHook:
    return KingdeeHook(retry_delay=0.01)
