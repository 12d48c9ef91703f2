"""One structured log line per API call, shared by both hooks: what was called, how much, how long, which attempt."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


@contextmanager
def logged_call(log: logging.Logger, system: str, operation: str, **fields: Any) -> Iterator[dict[str, Any]]:
    """Log ``api_call system=… operation=… <fields> rows=… latency_ms=… outcome=…`` when the call ends.

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
        details = " ".join(f"{key}={value}" for key, value in record.items() if value is not None)
        log.info("api_call system=%s operation=%s %s latency_ms=%d outcome=%s",
                 system, operation, details, (time.perf_counter() - started) * 1000, outcome)
