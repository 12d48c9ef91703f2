"""What the Jikeyun sandbox's gateway (``jikeyun.py``) and its API modules (``jikeyun_goods.py``,
``jikeyun_trades.py``) share: sub-codes, the failure answer, Beijing time on the wire, the window bounds, the
sandbox's clock and long ids.

Like the rest of the sandbox it imports nothing of the client side (hooks, records): it stands for the server.
"""

from __future__ import annotations

import calendar
import itertools
import json
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any, TypeVar

import pendulum

BEIJING = pendulum.timezone("Asia/Shanghai")
#: China has kept UTC+8 all year since 1991: record times are formatted with this fixed offset (fast for 100k rows)
BEIJING_OFFSET_S = 8 * 3600
WIRE_TIME = "%Y-%m-%d %H:%M:%S"

SIGN_ERROR, NO_APPKEY, NOT_SUBSCRIBED = "0858030801", "0858030802", "0130020310"
QUOTA_EXHAUSTED, BAD_PARAMETER, THROTTLED = "0130000609", "0050030002", "0859999999"
# No source gives the sub-code of an expired timestamp; this one is made up and marked as such in msg.
TIMESTAMP_EXPIRED = "0858030899"

DEFAULT_FROM = datetime(2025, 1, 1, tzinfo=BEIJING)
DEFAULT_TO = datetime(2026, 1, 1, tzinfo=BEIJING)
#: ids grow with their creation time, as Jikeyun's snowflake-style long ids do (an [I]: their layout is not public)
_ID_EPOCH_MS = 1_420_070_400_000  # 2015-01-01 UTC
_ID_SEQUENCE_BITS = 22
_DAY_MS = 86_400_000
_OPEN = -(1 << 62)  # before any time
_T = TypeVar("_T")


class ApiFailure(Exception):
    """A business failure: answered as ``{"code": 0, "subCode": sub_code, "msg": "[sub_code]msg"}``."""

    def __init__(self, sub_code: str, msg: str) -> None:
        super().__init__(msg)
        self.sub_code, self.msg = sub_code, msg


def bad_parameter(msg: str) -> ApiFailure:
    return ApiFailure(BAD_PARAMETER, msg)


def epoch_ms(moment: datetime) -> int:
    return round(moment.timestamp() * 1000)


def wire_time(ms: int) -> str:
    """Epoch ms as ``yyyy-MM-dd HH:mm:ss`` Beijing time (what Jikeyun sends and takes)."""
    return time.strftime(WIRE_TIME, time.gmtime(ms // 1000 + BEIJING_OFFSET_S))


def parse_wire_time(value: str) -> int:
    """``yyyy-MM-dd HH:mm:ss`` Beijing time as epoch ms. :raises ValueError: any other text."""
    return (calendar.timegm(time.strptime(value, WIRE_TIME)) - BEIJING_OFFSET_S) * 1000


def parse_bound(value: Any, *, epoch_ms_too: bool) -> int | None:
    """A window bound as epoch ms: ``None``/``""`` is no bound; a Beijing-time string; with ``epoch_ms_too`` also
    an epoch-ms number or string of digits. :raises ValueError: anything else."""
    if value in (None, ""):
        return None
    if epoch_ms_too and ((isinstance(value, int) and not isinstance(value, bool)) or str(value).isdigit()):
        return int(value)
    if not isinstance(value, str):
        raise ValueError(f"not a time: {value!r}")
    return parse_wire_time(value)


def parse_id_list(value: Any) -> list[str]:
    """An id or code list as clients send it: a JSON array, a JSON array in a string (the official example does
    that), or comma-separated text. Items come back as trimmed strings."""
    if value in (None, ""):
        return []
    if isinstance(value, str) and value.strip().startswith("["):
        value = json.loads(value)
    items = value if isinstance(value, list) else str(value).split(",")
    return [str(item).strip().strip("“”\"") for item in items if str(item).strip()]


@dataclass(frozen=True)
class Bounds:
    """Whether a window's start and end are inclusive; the real semantics are unknown (docs/protocol/jikeyun.md)."""


    start_inclusive: bool = True
    end_inclusive: bool = True

    def closed(self, start: int | None, end: int | None, step: int = 1) -> tuple[int, int]:
        """The window ``[start, end]`` (epoch ms, ``None`` = open) as inclusive bounds on values that are multiples
        of ``step`` ms (1 for epoch-ms times, 1000 for times in whole seconds), so filters compare ``lo <= v <= hi``.
        """
        low = _OPEN if start is None else start if self.start_inclusive else start + step
        high = -_OPEN if end is None else end if self.end_inclusive else end - step
        return low, high


Check = Callable[[dict[str, Any]], bool]
"""One filter of a query, tested on a record; a scan runs only the filters a request sent."""


def field_in(field: str, values: set[Any]) -> Check:
    return lambda record: record.get(field) in values


def field_between(field: str, low: Any, high: Any) -> Check:
    """``low <= value <= high`` (inclusive bounds, :meth:`Bounds.closed`); a missing value is outside."""

    def check(record: dict[str, Any]) -> bool:
        value = record.get(field)
        return value is not None and low <= value <= high

    return check


def flag_is(field: str, value: int) -> Check:
    return lambda record: int(record.get(field) or 0) == value


def text_in(field: str, text: str) -> Check:
    return lambda record: text in (record.get(field) or "")


def passes(record: dict[str, Any], checks: list[Check]) -> bool:
    return all(check(record) for check in checks)


class SandboxClock:
    """The sandbox's own clock: real time plus an offset tests move (``travel``, ``advance``), so a test travels
    to the next Beijing day instead of sleeping. It drives the daily quotas, scroll expiry and the default time of
    scripted edits; the signature's timestamp check stays on real time, because clients sign with the real clock."""

    def __init__(self) -> None:
        self._offset = timedelta(0)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return datetime.now(timezone.utc) + self._offset

    def travel(self, to: datetime) -> datetime:
        """Jump to ``to`` (aware); the clock runs on from there."""
        if to.tzinfo is None:
            raise ValueError("travel needs an aware datetime")
        with self._lock:
            self._offset = to - datetime.now(timezone.utc)
        return self.now()

    def advance(self, delta: timedelta) -> datetime:
        with self._lock:
            self._offset += delta
        return self.now()

    def reset(self) -> datetime:
        with self._lock:
            self._offset = timedelta(0)
        return self.now()

    def beijing_day(self) -> date:
        return pendulum.instance(self.now()).in_timezone(BEIJING).date()


class IdMaker:
    """Unique long ids that grow with the time they are made for (creation time in epoch ms)."""

    def __init__(self, start: int = 0) -> None:
        self._sequence: Iterator[int] = itertools.count(start)
        self._lock = threading.Lock()

    def __call__(self, ms: int) -> int:
        with self._lock:
            sequence = next(self._sequence) % (1 << _ID_SEQUENCE_BITS)
        return (max(ms - _ID_EPOCH_MS, 0) << _ID_SEQUENCE_BITS) | sequence


def beijing_midnight(ms: int) -> int:
    """Epoch ms of the Beijing midnight starting the day of ``ms``."""
    offset = BEIJING_OFFSET_S * 1000
    return (ms + offset) // _DAY_MS * _DAY_MS - offset


def pick(draw: Callable[[], float], items: Sequence[_T]) -> _T:
    """One item, drawn with one ``random()`` float: the generators make one such draw per choice, several times
    faster than ``randrange``/``choice`` for 100k records (and as deterministic for a seed)."""
    return items[int(draw() * len(items))]


def between(draw: Callable[[], float], low: int, high: int) -> int:
    """An integer in ``[low, high)``, drawn like :func:`pick`."""
    return low + int(draw() * (high - low))


def ean13(body: str) -> str:
    """A 12-digit body with its EAN-13 check digit."""
    digits = [int(d) for d in body]
    total = sum(digits[0::2]) + 3 * sum(digits[1::2])
    return body + str(-total % 10)


def to_datetime(value: Any) -> datetime | None:
    """A scripting payload's time (ISO text over HTTP) as an aware datetime."""
    if value is None or isinstance(value, datetime):
        return value
    moment = pendulum.parse(str(value))
    if not isinstance(moment, datetime):
        raise ValueError(f"not a date-time: {value!r}")
    return moment
