"""tools/airflow_plugins/connection_test_port.py: what its middleware changes in a request, and what it leaves.

No deployment needed: the middleware wraps a stand-in ASGI app that records what it received.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
from typing import Any

import pytest
import yaml

from tests.support import REPO

spec = importlib.util.spec_from_file_location(
    "connection_test_port", REPO / "tools" / "airflow_plugins" / "connection_test_port.py")
assert spec is not None and spec.loader is not None
plugin = importlib.util.module_from_spec(spec)
spec.loader.exec_module(plugin)

UI_BODY = {"conn_type": "jikeyun", "connection_id": "jikeyun_ui", "host": "http://127.0.0.1:8801",
           "login": "20260101", "password": "***", "port": 0, "schema": "", "extra": "{}"}


def through_middleware(method: str, path: str, body: bytes, chunk: int = 0) -> tuple[bytes, dict[bytes, bytes]]:
    """Send one request through the middleware; the body and headers the wrapped app saw."""
    seen: dict[str, Any] = {}

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        parts = []
        while True:
            message = await receive()
            parts.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        seen.update(body=b"".join(parts), headers=dict(scope["headers"]))

    pieces = [body[i:i + chunk] for i in range(0, len(body), chunk)] if chunk else [body]
    messages = [{"type": "http.request", "body": p, "more_body": i < len(pieces) - 1} for i, p in enumerate(pieces)]

    async def receive() -> dict[str, Any]:
        return messages.pop(0)

    async def send(message: dict[str, Any]) -> None:
        pass

    scope = {"type": "http", "method": method, "path": path,
             "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]}
    asyncio.run(plugin.PortlessConnectionTest(app)(scope, receive, send))
    return seen["body"], seen["headers"]


@pytest.mark.parametrize("chunk", [0, 7])
def test_port_zero_is_dropped_from_a_connection_test(chunk: int) -> None:
    body, headers = through_middleware("POST", "/api/v2/connections/test", json.dumps(UI_BODY).encode(), chunk)
    assert json.loads(body) == {k: v for k, v in UI_BODY.items() if k != "port"}
    assert headers[b"content-length"] == str(len(body)).encode()


@pytest.mark.parametrize(("method", "path", "payload"), [
    ("POST", "/api/v2/connections/test", dict(UI_BODY, port=5432)),  # a real port is compared as before
    ("POST", "/api/v2/connections/test", dict(UI_BODY, port=None)),
    ("POST", "/api/v2/connections", UI_BODY),  # creating a connection: not the test route
    ("PATCH", "/api/v2/connections/test", UI_BODY),
])
def test_everything_else_passes_unchanged(method: str, path: str, payload: dict[str, Any]) -> None:
    raw = json.dumps(payload).encode()
    assert through_middleware(method, path, raw)[0] == raw


def test_a_body_that_is_not_json_passes_unchanged() -> None:
    assert plugin.without_port_zero(b"port=0") == b"port=0"
    assert plugin.without_port_zero(b"[0]") == b"[0]"
    assert plugin.without_port_zero(b'{"port": false}') == b'{"port": false}'


def test_the_plugin_registers_the_middleware() -> None:
    (entry,) = plugin.ConnectionTestPortPlugin.fastapi_root_middlewares
    assert entry["middleware"] is plugin.PortlessConnectionTest


def test_docker_compose_enables_the_test_button_with_the_plugin() -> None:
    compose = yaml.safe_load((REPO / "docker-compose.yaml").read_text(encoding="utf-8"))
    api_server = compose["services"]["airflow-apiserver"]
    assert api_server["environment"]["AIRFLOW__CORE__TEST_CONNECTION"] == "${AIRFLOW_TEST_CONNECTION:-Enabled}"
    assert "${AIRFLOW_PROJ_DIR:-.}/tools/airflow_plugins:/opt/airflow/plugins" in api_server["volumes"]
    assert "AIRFLOW_TEST_CONNECTION=Enabled" in (REPO / ".env.example").read_text(encoding="utf-8").splitlines()
