"""One structured log line and the API metrics per call, shared by both hooks: what was called, how much, how long,
which attempt (metrics: :func:`jikeyun_kingdee.metrics.emit_api_call`)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Protocol

from jikeyun_kingdee.metrics import emit_api_call


class InfoLog(Protocol):
    """What the call log needs of a logger: ``logging.Logger`` and Airflow 3's structured task logger both fit."""

    def info(self, msg: Any, /, *args: Any) -> Any: ...


@contextmanager
def logged_call(log: InfoLog, system: str, operation: str, **fields: Any) -> Iterator[dict[str, Any]]:
    """Log ``api_call system=… operation=… <fields> rows=… latency_ms=… outcome=…`` when the call ends, and send the
    call, its latency and (``attempt`` > 1) the retry as metrics.

    The caller may set ``rows`` (or any other field) on the yielded dict once the answer is known. Only pass
    non-secret fields: page, window, batch size, attempt.
    """
    record: dict[str, Any] = dict(fields)
    started = time.perf_counter()
    outcome = "ok"
    try:
        yield record
    except BaseException as exc:
        outcome = type(exc).__name__
        raise
    finally:
        seconds = time.perf_counter() - started
        details = " ".join(f"{key}={value}" for key, value in record.items() if value is not None)
        log.info("api_call system=%s operation=%s %s latency_ms=%d outcome=%s",
                 system, operation, details, seconds * 1000, outcome)
        emit_api_call(system, operation, seconds, outcome, attempt=record.get("attempt"))
