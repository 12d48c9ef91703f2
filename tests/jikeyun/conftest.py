"""Fixtures: a started Jikeyun sandbox and an ``AIRFLOW_CONN_JIKEYUN_DEFAULT`` (JSON) pointing at it."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from jikeyun_kingdee.sandbox.jikeyun import JikeyunSandbox

SandboxFactory = Callable[..., JikeyunSandbox]


@pytest.fixture
def make_sandbox() -> Iterator[SandboxFactory]:
    """Start sandboxes with any constructor arguments; all are stopped after the test."""
    started: list[JikeyunSandbox] = []

    def start(**kwargs: Any) -> JikeyunSandbox:
        sandbox = JikeyunSandbox(**kwargs).start()
        started.append(sandbox)
        return sandbox

    yield start
    for sandbox in started:
        sandbox.stop()


@pytest.fixture
def sandbox(make_sandbox: SandboxFactory) -> JikeyunSandbox:
    """1,000 generated warehouses."""
    return make_sandbox()


@pytest.fixture
def connect(monkeypatch: pytest.MonkeyPatch) -> Callable[..., dict[str, Any]]:
    """Point an Airflow connection (``AIRFLOW_CONN_<ID>``, JSON form) at a sandbox; overrides replace fields."""

    def point(sandbox: JikeyunSandbox, conn_id: str = "jikeyun_default", **overrides: Any) -> dict[str, Any]:
        extra = {"version": "v1.0", "timeout": 5, **overrides.pop("extra", {})}
        conn = {"conn_type": "jikeyun", "host": f"{sandbox.url}/open/openapi/do", "login": sandbox.appkey,
                "password": sandbox.appsecret, "extra": extra, **overrides}
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))
        return conn

    return point


@pytest.fixture
def jikeyun_conn(connect: Callable[..., dict[str, Any]], sandbox: JikeyunSandbox) -> dict[str, Any]:
    """``jikeyun_default`` pointing at :func:`sandbox`."""
    return connect(sandbox)


@pytest.fixture
def make_hook() -> Callable[..., Any]:
    """JikeyunHook with short back-off (4 attempts, 10-50 ms waits) so fault tests stay quick."""
    from jikeyun_kingdee.hooks.jikeyun import JikeyunHook

    def build(conn_id: str = "jikeyun_default", **kwargs: Any) -> JikeyunHook:
        options = {"retry_limit": 4, "retry_delay": 0.01, "retry_delay_max": 0.05, "retry_deadline": 10}
        return JikeyunHook(conn_id, **{**options, **kwargs})

    return build
