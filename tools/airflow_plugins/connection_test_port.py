"""Airflow plugin: the UI's Test button works on connections without a port (Airflow 3.3.0 to 3.3.2).

The connections list posts ``"port": 0`` for a connection whose port is empty, and those releases' ``POST
/api/v2/connections/test`` takes 0 for another destination than the stored empty port, so Test answers HTTP 400
"The host or port to test differs from the stored connection" for every connection without a port — every Jikeyun
and Kingdee connection (their forms have no port field). Upstream fixed it in the API by treating port 0 like a blank
one (apache/airflow pull request 73298). This plugin does the same one step earlier: an api-server middleware drops
``"port": 0`` from the test request's JSON body before the route reads it. Nothing addresses port 0, so the change
only ever affects this bug, and it is harmless on a release with the fix.

Used by docker-compose.yaml (mounted as /opt/airflow/plugins) and by the real-deployment tests (plugins_folder).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, ClassVar

from airflow.plugins_manager import AirflowPlugin

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

TEST_PATH = "/api/v2/connections/test"


def without_port_zero(body: bytes) -> bytes:
    """The request body with a ``"port": 0`` member removed; any other body unchanged.

    :param body: raw JSON body of a connection test request
    """
    try:
        payload = json.loads(body)
    except ValueError:
        return body
    if not (isinstance(payload, dict) and type(payload.get("port")) is int and payload["port"] == 0):
        return body
    del payload["port"]
    return json.dumps(payload).encode()


class PortlessConnectionTest:
    """ASGI middleware rewriting the body of ``POST .../api/v2/connections/test`` with :func:`without_port_zero`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or not scope["path"].endswith(TEST_PATH):
            await self.app(scope, receive, send)
            return
        chunks = []
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away: let the app see it
                await self.app(scope, _replay(message, receive), send)
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = without_port_zero(b"".join(chunks))
        headers = [(k, v) for k, v in scope["headers"] if k.lower() != b"content-length"]
        headers.append((b"content-length", str(len(body)).encode()))
        request: Message = {"type": "http.request", "body": body, "more_body": False}
        await self.app({**scope, "headers": headers}, _replay(request, receive), send)


def _replay(first: Message, receive: Receive) -> Receive:
    """A ``receive`` that answers ``first`` once, then defers to the real one."""
    pending = [first]

    async def replay() -> Message:
        return pending.pop() if pending else await receive()

    return replay


class ConnectionTestPortPlugin(AirflowPlugin):
    name = "connection_test_port"
    fastapi_root_middlewares: ClassVar[list[dict[str, Any]]] = [
        {"middleware": PortlessConnectionTest, "args": [], "kwargs": {}, "name": "Test button on portless connections"},
    ]
