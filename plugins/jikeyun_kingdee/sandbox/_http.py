"""Shared plumbing for the loopback API sandboxes: a threaded HTTP server, scripted faults, call counters.

Each sandbox (Jikeyun, Kingdee) subclasses :class:`SandboxServer` and implements :meth:`SandboxServer.handle`
(the protocol) and optionally :meth:`SandboxServer.control` (its own scripting commands). Generic transport
faults — HTTP status codes, latency, dropped connections, non-JSON bodies — are applied here, before the protocol,
so both sandboxes fail the same way. Everything is scriptable in-process (``server.faults``) and over HTTP at
``POST /_sandbox/<command>`` (see ``python -m jikeyun_kingdee.sandbox control --help``).

Answers leave in one write (status line, headers and body together) on a socket with ``TCP_NODELAY``: a client
that keeps its connection alive, as the hooks do, would otherwise wait for a delayed ACK (about 40 ms) before the
body of every answer is sent (Nagle's algorithm holding the second write). :func:`round_trip_ms` measures what a
kept-alive call costs, for benchmarks to print next to their figures.
"""

from __future__ import annotations

import json
import logging
import statistics
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

import requests

if TYPE_CHECKING:
    from typing_extensions import Self

log = logging.getLogger(__name__)

CONTROL_PREFIX = "/_sandbox/"


@dataclass
class Reply:
    """One HTTP answer of a sandbox."""

    status: int = 200
    body: Any = None  # dict/list → JSON; str/bytes → sent as is
    headers: dict[str, str] = field(default_factory=dict)
    cookies: list[str] = field(default_factory=list)  # full Set-Cookie values

    def encode(self) -> bytes:
        if isinstance(self.body, bytes):
            return self.body
        if isinstance(self.body, str):
            return self.body.encode("utf-8")
        return json.dumps(self.body, ensure_ascii=False).encode("utf-8")


@dataclass
class Request:
    """What a sandbox handler sees of one HTTP request."""

    method: str
    path: str
    headers: dict[str, str]  # lower-cased names
    body: bytes
    cookies: dict[str, str]


class Faults:
    """Scripted transport faults, consumed one per request (thread-safe).

    ``status``: a list of HTTP status codes for the next requests (e.g. ``[500, 502]``), with optional
    ``retry_after`` seconds sent on 429/503. ``drop``: close the next N connections without an answer.
    ``garbage``: answer the next N requests with HTTP 200 and a non-JSON body. ``latency``: sleep this many
    seconds before each of the next ``latency_count`` requests (``None`` = every request).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with getattr(self, "_lock", threading.Lock()):
            self.status: list[int] = []
            self.retry_after: float | None = None
            self.drop = 0
            self.garbage = 0
            self.latency = 0.0
            self.latency_count: int | None = None

    def update(self, **spec: Any) -> None:
        with self._lock:
            for key, value in spec.items():
                if not hasattr(self, key) or key.startswith("_"):
                    raise ValueError(f"unknown fault {key!r}")
                setattr(self, key, list(value) if key == "status" else value)

    def take(self) -> tuple[str, Any, float]:
        """Return (kind, argument, latency) for the next request; kind is '' for no fault."""
        with self._lock:
            delay = 0.0
            if self.latency and (self.latency_count is None or self.latency_count > 0):
                delay = float(self.latency)
                if self.latency_count is not None:
                    self.latency_count -= 1
            if self.drop > 0:
                self.drop -= 1
                return "drop", None, delay
            if self.status:
                return "status", self.status.pop(0), delay
            if self.garbage > 0:
                self.garbage -= 1
                return "garbage", None, delay
            return "", None, delay

    def as_dict(self) -> dict[str, Any]:
        with self._lock:
            return {k: v for k, v in vars(self).items() if not k.startswith("_")}


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # TCP_NODELAY: nothing waits for the client's delayed ACK

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    def _read(self) -> Request:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        cookies: dict[str, str] = {}
        for part in (self.headers.get("Cookie") or "").split(";"):
            if "=" in part:
                name, _, value = part.strip().partition("=")
                cookies[name] = value
        headers = {k.lower(): v for k, v in self.headers.items()}
        return Request(self.command, self.path, headers, body, cookies)

    def _send(self, reply: Reply) -> None:
        """Status line, headers and body in one write (see the module docstring)."""
        payload = reply.encode()
        content_type = "application/json; charset=utf-8"
        if isinstance(reply.body, (str, bytes)):
            content_type = "text/plain; charset=utf-8"
        date = reply.headers.pop("Date", None) or self.date_time_string()  # a sandbox with its own clock sets it
        headers = [("Server", self.version_string()), ("Date", date),
                   ("Content-Type", reply.headers.pop("Content-Type", content_type)), *reply.headers.items(),
                   *(("Set-Cookie", cookie) for cookie in reply.cookies), ("Content-Length", str(len(payload)))]
        phrase = self.responses.get(reply.status, ("",))[0]
        head = "".join(f"{name}: {value}\r\n" for name, value in headers)
        self.log_request(reply.status)
        self.wfile.write(f"{self.protocol_version} {reply.status} {phrase}\r\n{head}\r\n".encode("latin-1") + payload)

    def _dispatch(self) -> None:
        sandbox = self.server.sandbox
        request = self._read()
        if request.path.startswith(CONTROL_PREFIX):
            command = request.path[len(CONTROL_PREFIX) :].strip("/")
            try:
                payload = json.loads(request.body or b"{}")
                self._send(Reply(body={"ok": True, "result": sandbox.run_control(command, payload)}))
            except (ValueError, KeyError, TypeError) as exc:
                self._send(Reply(status=400, body={"ok": False, "error": str(exc)}))
            return
        kind, argument, delay = sandbox.faults.take()
        if delay:
            time.sleep(delay)
        if kind == "drop":
            sandbox.count("fault:drop")
            self.close_connection = True
            try:
                self.connection.shutdown(2)
            finally:
                self.connection.close()
            return
        if kind == "status":
            sandbox.count(f"fault:http{argument}")
            headers = {}
            if sandbox.faults.retry_after is not None and argument in (429, 503):
                headers["Retry-After"] = str(sandbox.faults.retry_after)
            self._send(Reply(status=argument, body="<html><body>upstream error</body></html>", headers=headers))
            return
        if kind == "garbage":
            sandbox.count("fault:garbage")
            self._send(Reply(status=200, body="<html>502 Bad Gateway (not JSON)</html>"))
            return
        try:
            reply = sandbox.handle(request)
        except Exception as exc:  # a sandbox bug must show as a 500, not hang the client
            log.exception("sandbox handler failed")
            reply = Reply(status=500, body=f"sandbox error: {exc}")
        self._send(reply)

    do_POST = _dispatch
    do_GET = _dispatch


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    sandbox: SandboxServer


class SandboxServer:
    """A real HTTP server on loopback, run in a background thread.

    :param host: address to bind; loopback only by default.
    :param port: 0 picks a free port (see :attr:`url`).
    """

    name = "sandbox"

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port
        self.faults = Faults()
        self.calls: Counter[str] = Counter()
        self._calls_lock = threading.Lock()
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- protocol, implemented by each sandbox ------------------------------------------------------------
    def handle(self, request: Request) -> Reply:
        raise NotImplementedError

    def control(self, command: str, payload: dict[str, Any]) -> Any:
        """Sandbox-specific scripting commands; raise KeyError for an unknown command."""
        raise KeyError(f"unknown sandbox command {command!r}")

    # -- shared -----------------------------------------------------------------------------------------
    def count(self, operation: str, n: int = 1) -> None:
        with self._calls_lock:
            self.calls[operation] += n

    def run_control(self, command: str, payload: dict[str, Any]) -> Any:
        if command == "faults":
            self.faults.update(**payload)
            return self.faults.as_dict()
        if command == "reset-faults":
            self.faults.reset()
            return self.faults.as_dict()
        if command == "calls":
            with self._calls_lock:
                return dict(self.calls)
        if command == "reset-calls":
            with self._calls_lock:
                self.calls.clear()
            return {}
        if command == "ping":  # the cheapest answer: for round-trip measurements
            return "pong"
        return self.control(command, payload)

    @property
    def url(self) -> str:
        if self._httpd is None:
            raise RuntimeError(f"{self.name} sandbox is not started")
        return f"http://{self.host}:{self._httpd.server_address[1]}"

    def start(self) -> Self:
        httpd = _Server((self.host, self.port), _Handler)
        httpd.sandbox = self
        self._httpd = httpd
        # a short poll interval: stop() returns within 50 ms instead of 500 (tests start and stop many sandboxes)
        self._thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"{self.name}-sandbox", daemon=True)
        self._thread.start()
        log.info("%s sandbox listening on %s", self.name, self.url)
        return self

    def serve_forever(self) -> None:
        """Run in the foreground (command line) until interrupted."""
        if self._httpd is None:
            self.start()
        assert self._thread is not None
        try:
            while self._thread.is_alive():
                self._thread.join(0.5)
        except KeyboardInterrupt:
            pass
        finally:
            self.stop()

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def round_trip_ms(url: str, n: int = 50) -> float:
    """Median milliseconds of ``n`` calls of a sandbox's ``ping`` command on one kept-alive connection.

    :param url: the sandbox's base URL (:attr:`SandboxServer.url`).
    :param n: calls measured, after one that opens the connection.
    """
    times = []
    with requests.Session() as session:
        session.post(f"{url}{CONTROL_PREFIX}ping", json={}, timeout=10).raise_for_status()
        for _ in range(n):
            began = time.perf_counter()
            session.post(f"{url}{CONTROL_PREFIX}ping", json={}, timeout=10).raise_for_status()
            times.append((time.perf_counter() - began) * 1000)
    return statistics.median(times)
