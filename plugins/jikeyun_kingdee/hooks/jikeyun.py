"""Jikeyun (吉客云 / Jackyun ERP) open API hook: signed calls, typed errors, retries, paging, loss-proof windows.

Protocol notes for maintainers: docs/protocol/jikeyun.md. Every call is a form-encoded POST of ``method, appkey,
version, contenttype, timestamp, bizcontent, sign`` to one gateway URL; the answer is the envelope
``{"code": 200, "msg", "subCode", "result": {"data", "contextId"}}``. Pages are 0-based ``pageIndex`` ×
``pageSize`` (at most 200); there is no total count, a short page ends a list.

Connection (conn_type ``jikeyun``): host = gateway URL (empty: the public gateway), login = appkey,
password = appsecret; extras ``version`` (default ``v1.0``), ``token`` (ISV apps only), ``max_calls_per_second``
(client-side rate limit), ``timeout`` (seconds, default 60). These extras are removed from the HTTP headers that
HttpHook would otherwise build from them.

Windows (:meth:`JikeyunHook.iter_window`) are read by keyset paging on the modification time: each request asks
for ``[cursor, window end]`` and the next one starts at the second of the last record received, so a record
modified while the window is read never shifts the pages still to come (plain offset paging then loses the record
behind it). Records of the boundary seconds that were already received come again and are dropped by identity (a
16-byte digest of the record's JSON). Only the digests that a later request may meet again are kept — the last
two seconds, or the page being overlapped and a bulk second being paged — and only those records are digested,
so memory and CPU stay flat in the window's size. Whether the server sorts by modification time is not
documented: it is read from the pages.

* **Sorted server**, n records in the window, page size P: ⌈(n+1)/P⌉ calls, plus what the records of each page's
  last two seconds cost, which the next request returns again (the one-second widening): about one record a page
  for sparse data, within 1.1 × ⌈(n+1)/P⌉ as long as a page spans more than a few seconds.
* **Bulk second** (a bulk action or an import gives hundreds or thousands of records one ``gmtModified``): when
  the cursor cannot move, the same request is paged by offset, each page starting two records before the end of
  the previous one (a page size a little below P makes ``pageIndex × pageSize`` land there): about one call per
  P - 3 records, and nothing is re-read. A modification moves a record to a later time, so between two calls
  records can only leave the answer, shifting the rest towards its start; the first record of each page must
  therefore be one of the previous page — then nothing slipped between the two, even if one record left. If not,
  everything up to the previous page's last record is still read, so the cursor moves to its second; when that
  is no progress (one bulk second), the request is read again from its first page, at most
  ``STABLE_READ_PASSES`` times before a :class:`JikeyunError`.
* **Unsorted server** (a page whose times go down): the window is read by bisection. A time range is complete
  when one request returns a short page; a full page splits it (just below its last record when that page is
  sorted, else in the middle) down to one second, where offset pages are re-read until two passes agree. Cost
  ``2F + 1`` calls, F = ranges that answered a full page; when the window's first page shows the server unsorted,
  it is the bisection's first answer, so the read costs what bisection alone costs. When a later page shows it,
  the pages before only looked sorted (an order by an id that grows with time, say), so the whole window is
  bisected and records read before may be yielded a second time (downstream de-duplicates by key).
* The cursor moves only once the pages prove the sort: a random order would come out that sorted with a chance
  below one in a million (a page of one second's ties proves nothing and is paged by offset as above). Pages
  smaller than ``KEYSET_MIN_PAGE_SIZE`` bisect. Any random order, and the sandbox's unsorted mode, are caught;
  what no page can rule out is a server ordering by something merely correlated with time that puts an older
  record behind newer ones and never lets a later page show it. Keyset paging assumes the order of sorted-looking
  pages is the server's order by time.

Every request is widened by one second at each end, so nothing is lost whether the server treats either end as
inclusive or exclusive or compares at second or millisecond precision — the gateway documents neither. The widening
may return records of the neighbouring seconds; they are yielded too (the next window may yield them again).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import threading
import time
from collections import Counter
from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

import pendulum
import requests
import tenacity
from pydantic import BaseModel, ConfigDict, Field, SecretStr
from requests.auth import AuthBase

from jikeyun_kingdee.compat import AirflowException
from jikeyun_kingdee.hooks.base import ApiHook
from jikeyun_kingdee.hooks.base import is_retryable as is_retryable
from jikeyun_kingdee.hooks.call_log import logged_call
from jikeyun_kingdee.provider_info import GATEWAY_URL as GATEWAY_URL
from jikeyun_kingdee.provider_info import connection_form_methods
from jikeyun_kingdee.records import BEIJING, Warehouse, parse_jikeyun_time

if TYPE_CHECKING:
    from requests import PreparedRequest, Response, Session

TIME_FORMAT = "YYYY-MM-DD HH:mm:ss"
MAX_PAGE_SIZE = 200
#: first second considered when a window has no start ("all warehouses")
HISTORY_START = pendulum.datetime(2000, 1, 1, tz=BEIJING)
#: extras of this connection type; never sent as HTTP headers
CONNECTION_EXTRAS = ("version", "token", "max_calls_per_second", "timeout")
UNSIGNED_PARAMS = ("sign", "token", "contextid")
THROTTLE_SUB_CODE = "0859999999"
THROTTLE_WORDS = ("限流", "频繁", "频率", "稍后", "throttl", "too many", "rate limit")
#: sub-codes that no retry can fix: sign error, unknown appkey, bad token, API not subscribed, quota, bad parameters
FATAL_SUB_CODES = {
    "0858030801": "sign error",
    "0858030802": "appkey does not exist",
    "0858030803": "token invalid or expired",
    "0130020310": "app not found or API not subscribed",
    "0130000609": "quota exhausted or app not enabled",
    "0050030002": "business parameter missing or out of range",
}
DEFAULT_PAGE_SIZE = MAX_PAGE_SIZE
#: re-reads of one request before a read gives up because the records keep changing
STABLE_READ_PASSES = 5
#: records an offset page re-reads of the one before it: with two, one record may leave the answer between calls
CHAIN_OVERLAP = 2
#: a page proves that the server sorts by time when a random order would be that sorted with at most this chance
SORT_PROOF_CHANCE = 1e-6
#: smaller pages overlap poorly (the offsets of pages up to 12 records cannot always start 2 before an end): bisect
KEYSET_MIN_PAGE_SIZE = 20


# --------------------------------------------------------------------------------------------------- errors
class JikeyunError(AirflowException):
    """A failed Jikeyun call. Carries the upstream code and message, never a secret.

    :param method: the API method, e.g. ``erp.warehouse.get``.
    :param msg: Jikeyun's ``msg`` or a transport description.
    :param code: envelope ``code`` (``None`` for transport failures).
    :param sub_code: envelope ``subCode``.
    :param context_id: ``result.contextId`` for Jikeyun support.
    :param http_status: HTTP status when the failure was at HTTP level.
    """

    retryable = False

    def __init__(
        self,
        method: str,
        msg: str,
        *,
        code: Any = None,
        sub_code: str | None = None,
        context_id: str | None = None,
        http_status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.method, self.msg, self.code, self.sub_code = method, msg, code, sub_code
        self.context_id, self.http_status, self.retry_after = context_id, http_status, retry_after
        parts = [f"Jikeyun {method} failed: {msg}"]
        parts += [f"{k}={v}" for k, v in (("code", code), ("subCode", sub_code), ("contextId", context_id),
                                           ("http", http_status)) if v not in (None, "")]
        super().__init__(" ".join(parts))


class JikeyunRetryableError(JikeyunError):
    """Transient: throttling, HTTP 429/5xx, timeouts, dropped connections, a body that is not the JSON envelope."""

    retryable = True


class JikeyunThrottledError(JikeyunRetryableError):
    """Jikeyun throttled the call (subCode ``0859999999`` or a throttling message)."""


class JikeyunFatalError(JikeyunError):
    """Never retried: sign error, unknown appkey, API not subscribed, bad parameters, quota exhausted."""


# ------------------------------------------------------------------------------------------- pure functions
def sign(params: dict[str, Any], secret: str) -> str:
    """Jikeyun MD5 signature: sorted ``key+value`` pairs (without sign/token/contextid and nulls) wrapped in the
    secret, lower-cased, MD5, lowercase hex.

    :param params: the request parameters as sent (``bizcontent`` as the exact JSON string).
    :param secret: the appsecret.
    """
    body = "".join(f"{k}{params[k]}" for k in sorted(params) if k not in UNSIGNED_PARAMS and params[k] is not None)
    return hashlib.md5((secret + body + secret).lower().encode("utf-8")).hexdigest()


def compact_json(value: Any) -> str:
    """``bizcontent`` as Jikeyun clients send it: compact separators, UTF-8 (no ``\\u`` escapes)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def beijing_time(moment: datetime | float) -> str:
    """``yyyy-MM-dd HH:mm:ss`` in Beijing time, from an aware datetime or epoch seconds."""
    if isinstance(moment, datetime):
        if moment.tzinfo is None:
            raise ValueError("Jikeyun windows need timezone-aware datetimes")
        return pendulum.instance(moment).in_timezone(BEIJING).format(TIME_FORMAT)
    return pendulum.from_timestamp(moment, tz=BEIJING).format(TIME_FORMAT)


def window_seconds(window_start: datetime | None, window_end: datetime | None, now: datetime) -> tuple[int, int]:
    """The whole epoch seconds ``[lo, hi]`` whose records a half-open window ``[start, end)`` needs.

    ``None`` start means all history (:data:`HISTORY_START`), ``None`` end means ``now``. ``hi < lo`` for an
    empty window.
    """
    start = window_start or HISTORY_START
    end = window_end or now
    for moment in (start, end):
        if moment.tzinfo is None:
            raise ValueError("Jikeyun windows need timezone-aware datetimes")
    if end < start:
        raise ValueError(f"window ends before it starts: [{start}, {end})")
    return math.floor(start.timestamp()), math.ceil(end.timestamp()) - 1


def split_second(seconds: list[int | None], first: int, last: int) -> int | None:
    """Where to split a full sub-window ``[first, last]`` (the last second of the left part), guided by its page.

    When the page is sorted by modification time, it holds the earliest records, so everything before the second
    of its last record, minus the one-second widening, is already known and ``[first, that - 2]`` should answer a
    short page. ``None`` (halve instead) when the page is unsorted, has unreadable times, or the split would not
    make progress. Only the cost depends on this, never correctness.
    """
    last_second = seconds[-1] if seconds else None
    if last_second is None or not is_time_ordered(seconds):
        return None
    split = last_second - 2
    return split if first <= split < last else None


def is_time_ordered(seconds: list[int | None]) -> bool:
    """Every time readable and none earlier than the one before it (equal times in any order)."""
    previous = -math.inf
    for second in seconds:
        if second is None or second < previous:
            return False
        previous = second
    return True


def sort_evidence(seconds: Counter[int]) -> float:
    """How improbable it is that records of these seconds come sorted by chance: the natural log of the number of
    their distinct orders (a server whose order has nothing to do with time sorts them with chance ``exp(-x)``)."""
    total = sum(seconds.values())
    return math.lgamma(total + 1) - sum(math.lgamma(count + 1) for count in seconds.values())


def chain_page(end: int, page_size: int, overlap: int = CHAIN_OVERLAP) -> tuple[int, int]:
    """``(pageIndex, pageSize)`` of the next offset page after records ``[0, end)`` of one request: it starts at
    least ``overlap`` records before ``end`` and reaches as far as possible. Offsets are multiples of the page
    size, so a slightly smaller page usually starts where the larger one cannot.

    :raises ValueError: when no page of at most ``page_size`` records does (tiny pages).
    """
    best_index, best_size, best_end = 0, 0, end
    for size in range(page_size, 0, -1):
        if end - overlap + size <= best_end:
            break  # no smaller page can reach further
        index = (end - overlap) // size
        if (index + 1) * size > best_end:
            best_index, best_size, best_end = index, size, (index + 1) * size
    if not best_size:
        raise ValueError(f"no page of at most {page_size} records starts {overlap} before {end} and reaches past it")
    return best_index, best_size


def record_key(record: Any) -> str:
    """Identity of one record version: its canonical JSON (the same record twice is one; a changed record is new)."""
    return json.dumps(record, sort_keys=True, ensure_ascii=False, default=str)


def record_digest(record: Any) -> bytes:
    """:func:`record_key` in 16 bytes, for remembering many records."""
    return hashlib.blake2b(record_key(record).encode("utf-8"), digest_size=16).digest()


def classify_envelope(method: str, envelope: Any) -> dict[str, Any]:
    """Return ``result.data`` (a dict) of a successful envelope, or raise the matching typed error."""
    if not isinstance(envelope, dict) or "code" not in envelope:
        raise JikeyunRetryableError(method, "answer is JSON but not a Jikeyun envelope")
    code, msg = envelope.get("code"), str(envelope.get("msg") or "")
    sub_code = str(envelope.get("subCode") or "")
    result: dict[str, Any] = envelope["result"] if isinstance(envelope.get("result"), dict) else {}
    context_id = result.get("contextId")
    if str(code).strip() == "200":  # number or string; subCode varies by namespace on success and is ignored
        data = result.get("data")
        if isinstance(data, str):  # omsapi-business.* sends data as a JSON string
            data = json.loads(data) if data.strip() else None
        return data if isinstance(data, dict) else {} if data is None else {"data": data}
    error: type[JikeyunError] = JikeyunError
    if sub_code == THROTTLE_SUB_CODE or any(word in msg.lower() for word in THROTTLE_WORDS):
        error, msg = JikeyunThrottledError, msg or "throttled"
    elif sub_code in FATAL_SUB_CODES:
        error, msg = JikeyunFatalError, msg or FATAL_SUB_CODES[sub_code]
    raise error(method, msg or "unknown error", code=code, sub_code=sub_code or None, context_id=context_id)


def retry_after_seconds(value: str | None) -> float | None:
    """``Retry-After`` header as seconds (delta-seconds or an HTTP date)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
        except (TypeError, ValueError):
            return None


# ------------------------------------------------------------------------------------------- I/O helpers
class JikeyunSettings(BaseModel):
    """The Jikeyun connection, validated once."""

    model_config = ConfigDict(frozen=True, hide_input_in_errors=True)

    appkey: str = Field(min_length=1)
    appsecret: SecretStr
    version: str = "v1.0"
    token: SecretStr | None = None
    max_calls_per_second: float | None = Field(default=None, gt=0)
    timeout: float = Field(default=60.0, gt=0)


class JikeyunAuth(AuthBase):
    """Signs a prepared form request: adds appkey, version, contenttype, a fresh Beijing timestamp and ``sign``.

    Runs on every (re)try, so each attempt carries a fresh timestamp.
    """

    def __init__(self, settings: JikeyunSettings, clock: Callable[[], datetime] | None = None) -> None:
        self.settings = settings
        self.clock = clock or (lambda: pendulum.now(BEIJING))

    def __call__(self, request: PreparedRequest) -> PreparedRequest:
        body = request.body.decode("utf-8") if isinstance(request.body, bytes) else request.body or ""
        params = dict(parse_qsl(body, keep_blank_values=True))
        params.update(
            appkey=self.settings.appkey,
            version=self.settings.version,
            contenttype="json",
            timestamp=beijing_time(self.clock()),
        )
        params["sign"] = sign(params, self.settings.appsecret.get_secret_value())
        if self.settings.token is not None:
            params["token"] = self.settings.token.get_secret_value()
        request.prepare_body(data=params, files=None)
        return request

    def __repr__(self) -> str:
        return f"JikeyunAuth(appkey={self.settings.appkey!r})"


class RateLimiter:
    """Client-side pacing shared by all calls of one hook: at most ``calls_per_second``, evenly spaced.

    :param calls_per_second: ``None`` disables the limit.
    """

    def __init__(self, calls_per_second: float | None, sleep: Callable[[float], None] = time.sleep) -> None:
        self.interval = 1.0 / calls_per_second if calls_per_second else 0.0
        self._sleep = sleep
        self._next = 0.0
        self._lock = threading.Lock()

    def acquire(self) -> float:
        """Wait for the next free slot; return the seconds waited."""
        if not self.interval:
            return 0.0
        with self._lock:
            now = time.monotonic()
            slot = max(now, self._next)
            self._next = slot + self.interval
        if slot > now:
            self._sleep(slot - now)
        return slot - now


def record_second(record: Any, field: str) -> int | None:
    """The whole epoch second of a record's modification time, ``None`` when missing or unreadable (a malformed
    record is staged raw and rejected later, never fatal here)."""
    try:
        moment = parse_jikeyun_time(record.get(field)) if isinstance(record, dict) else None
    except ValueError:
        return None
    return None if moment is None else math.floor(moment.timestamp())


def _check_page_size(page_size: int) -> None:
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise ValueError(f"page_size must be 1..{MAX_PAGE_SIZE}, not {page_size}")


def _forget_before(recent: dict[bytes, int], second: int) -> None:
    """Drop the digests of records older than ``second``: no later request returns them."""
    for digest in [digest for digest, received in recent.items() if received < second]:
        del recent[digest]


def _remember(
    recent: dict[bytes, int], page: list[dict[str, Any]], seconds: list[int], digests: list[bytes | None],
    chosen: Iterable[int],
) -> set[bytes]:
    """Put the chosen records of a page into ``recent`` (digest → second), computing digests not known yet; return
    the page's known digests."""
    for i in chosen:
        digest = digests[i]
        if digest is None:
            digests[i] = digest = record_digest(page[i])
        recent[digest] = seconds[i]
    return {digest for digest in digests if digest is not None}


@dataclass(frozen=True)
class _Window:
    """What stays the same over the requests of one window read."""

    api_method: str
    list_key: str
    page_size: int
    bizcontent: dict[str, Any]
    start_field: str
    end_field: str
    modified_field: str

    def seconds(self, first: int, last: int) -> dict[str, Any]:
        """The request for the records of the whole seconds ``[first, last]``, widened by one second at each end."""
        return {**self.bizcontent, self.start_field: beijing_time(first - 1), self.end_field: beijing_time(last + 1)}


@dataclass(frozen=True)
class _Handover:
    """Where bisection takes over a window read: from second ``start``, with its first answer if already read."""

    start: int
    first_page: list[dict[str, Any]] | None
    how: str


# ------------------------------------------------------------------------------------------------- hook
class JikeyunHook(ApiHook[JikeyunSettings]):
    """Jikeyun open API: signed, retried, rate-limited calls and paged, windowed, loss-proof reads.

    :param jikeyun_conn_id: Airflow connection of type ``jikeyun``.
    :param retry_limit: attempts per call, first one included.
    :param retry_delay: first back-off in seconds (doubles each retry, with jitter).
    :param retry_delay_max: longest single back-off in seconds (a longer ``Retry-After`` is still honoured).
    :param retry_deadline: no retry is scheduled that would start more than this many seconds after the first
        attempt (also bounds how long a ``Retry-After`` is honoured).
    """

    conn_name_attr = "jikeyun_conn_id"
    default_conn_name = "jikeyun_default"
    conn_type = "jikeyun"
    hook_name = "Jikeyun"
    default_host = GATEWAY_URL
    api_name = "Jikeyun"
    own_extras = CONNECTION_EXTRAS

    # the connection form on Airflow 2.x and 3.1 (3.2+ reads the provider info)
    get_connection_form_widgets, get_ui_field_behaviour = connection_form_methods()

    def __init__(
        self,
        jikeyun_conn_id: str = default_conn_name,
        *,
        retry_limit: int = 6,
        retry_delay: float = 1.0,
        retry_delay_max: float = 30.0,
        retry_deadline: float = 300.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(jikeyun_conn_id, retry_limit=retry_limit, retry_delay=retry_delay, **kwargs)
        self.jikeyun_conn_id = jikeyun_conn_id
        self.retry_delay_max = retry_delay_max
        self.retry_deadline = retry_deadline

    # -- connection ----------------------------------------------------------------------------------
    def read_settings(self, conn: Any) -> JikeyunSettings:
        extra = conn.extra_dejson
        return JikeyunSettings(
            appkey=conn.login or "",
            appsecret=SecretStr(conn.password or ""),
            **{k: extra[k] for k in CONNECTION_EXTRAS if extra.get(k) not in (None, "")},
        )

    @cached_property
    def rate_limiter(self) -> RateLimiter:
        return RateLimiter(self.settings.max_calls_per_second)

    def configure_session(self, session: Session) -> None:
        """Every request of the session is signed."""
        session.auth = JikeyunAuth(self.settings)

    # -- one call --------------------------------------------------------------------------------------
    def call(self, api_method: str, bizcontent: dict[str, Any], *, retry_limit: int | None = None) -> dict[str, Any]:
        """Call one Jikeyun API method with retries; return ``result.data``.

        :param api_method: e.g. ``erp.warehouse.get``.
        :param bizcontent: business parameters, sent as compact JSON.
        :param retry_limit: overrides the hook's ``retry_limit`` for this call.
        :raises JikeyunError: a typed error (retryable ones only after the retries are spent).
        """
        stop_after = retry_limit or self.retry_limit
        retrying = self.retrying(
            api_method,
            stop=tenacity.stop_after_attempt(stop_after) | tenacity.stop_before_delay(self.retry_deadline),
            wait=self._wait,
        )
        attempt_numbers = itertools.count(1)
        return retrying(lambda: self._post(api_method, bizcontent, next(attempt_numbers)))

    def _post(self, api_method: str, bizcontent: dict[str, Any], attempt: int) -> dict[str, Any]:
        self.rate_limiter.acquire()
        self.call_counts[api_method] += 1
        window = [bizcontent[k] for k in ("gmtModifiedStart", "gmtModifiedEnd") if k in bizcontent]
        with logged_call(self.log, "jikeyun", api_method, page=bizcontent.get("pageIndex"),
                         page_size=bizcontent.get("pageSize"), window="~".join(window).replace(" ", "T") or None,
                         attempt=attempt) as call:
            data = self._post_once(api_method, compact_json(bizcontent))
            call["rows"] = next((len(v) for v in data.values() if isinstance(v, list)), None)
            return data

    def _post_once(self, api_method: str, bizcontent: str) -> dict[str, Any]:
        try:
            response: Response = self.run(
                data={"method": api_method, "bizcontent": bizcontent},
                extra_options={"check_response": False, "timeout": self.settings.timeout},
            )
        except requests.Timeout as exc:
            raise JikeyunRetryableError(api_method, f"timeout: {type(exc).__name__}") from None
        except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError) as exc:
            raise JikeyunRetryableError(api_method, f"connection failed: {type(exc).__name__}") from None
        status = response.status_code
        if status == 429 or status >= 500:
            raise JikeyunRetryableError(
                api_method, f"HTTP {status}", http_status=status,
                retry_after=retry_after_seconds(response.headers.get("Retry-After")),
            )
        if status >= 400:
            raise JikeyunFatalError(api_method, f"HTTP {status}", http_status=status)
        try:
            envelope = response.json()
        except ValueError:
            raise JikeyunRetryableError(api_method, "answer is not JSON", http_status=status) from None
        return classify_envelope(api_method, envelope)

    def _wait(self, retry_state: tenacity.RetryCallState) -> float:
        """Exponential back-off with jitter; a longer ``Retry-After`` wins."""
        backoff = tenacity.wait_exponential_jitter(
            initial=self.retry_delay, max=self.retry_delay_max, jitter=self.retry_delay
        )(retry_state)
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        return max(backoff, getattr(exc, "retry_after", None) or 0.0)

    # -- paging ----------------------------------------------------------------------------------------
    def iter_pages(
        self, api_method: str, bizcontent: dict[str, Any], list_key: str, page_size: int = DEFAULT_PAGE_SIZE
    ) -> Iterator[list[dict[str, Any]]]:
        """Page through any Jikeyun query API (0-based ``pageIndex``); stop on a short or empty page.

        Plain offset paging: a record modified between two pages can shift another past both. Use
        :meth:`iter_window` where a modification-time window exists.

        :param list_key: where the records are in ``result.data``, e.g. ``warehouseInfo``.
        :param page_size: 1..200.
        """
        _check_page_size(page_size)
        page_index = 0
        while True:
            page = self._page(api_method, {**bizcontent, "pageIndex": page_index, "pageSize": page_size}, list_key)
            if page:
                yield page
            if len(page) < page_size:
                return
            page_index += 1

    def _page(self, api_method: str, bizcontent: dict[str, Any], list_key: str) -> list[dict[str, Any]]:
        records = self.call(api_method, bizcontent).get(list_key) or []
        if not isinstance(records, list):
            raise JikeyunRetryableError(api_method, f"result.data.{list_key} is not a list")
        return records

    def iter_window(
        self,
        api_method: str,
        list_key: str,
        *,
        window_start: datetime | None,
        window_end: datetime | None,
        page_size: int = DEFAULT_PAGE_SIZE,
        start_field: str = "gmtModifiedStart",
        end_field: str = "gmtModifiedEnd",
        modified_field: str = "gmtModified",
        bizcontent: dict[str, Any] | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Every record modified in ``[window_start, window_end)``, raw as Jikeyun sent it, none lost.

        Keyset paging on the modification time, or bisection on a server that does not sort (see the module
        docstring). A record is yielded once per read (unless a server that seemed to sort turns out not to);
        records of the neighbouring second at either end may be yielded too, so consecutive windows may both
        yield them. A record modified while the window is read is
        yielded in one of its versions or, if the modification moved it out of the window, belongs to a later one.

        :param window_start: aware datetime; ``None`` = from :data:`HISTORY_START`.
        :param window_end: aware datetime, exclusive; ``None`` = now.
        :param page_size: 1..200; the largest page costs the fewest calls.
        :param modified_field: the record's modification time (epoch ms or a string); a record outside the
            requested times means the server ignored the window fields, so a wrong field name fails fast.
        :param bizcontent: further business parameters, e.g. ``{"includeDeleteAndBlockup": 1}``.
        """
        _check_page_size(page_size)
        lo, hi = window_seconds(window_start, window_end, pendulum.now("UTC"))
        window = _Window(api_method, list_key, page_size, bizcontent or {}, start_field, end_field, modified_field)
        calls_before = self.call_counts[api_method]
        summary: dict[str, Any] = {"records": 0, "how": "empty window"}
        for record in self._read_window(window, lo, hi, summary):
            summary["records"] += 1
            yield record
        self.log.info(
            "Jikeyun %s window [%s, %s]: %d records in %d calls (%s)", api_method, beijing_time(lo), beijing_time(hi),
            summary["records"], self.call_counts[api_method] - calls_before, summary["how"],
        )

    def _read_window(self, window: _Window, lo: int, hi: int, summary: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """Keyset paging over the seconds ``[lo, hi]``, handing over to bisection if the server does not sort."""
        if hi < lo:
            return
        recent: dict[bytes, int] = {}
        handover: _Handover | None = _Handover(lo, None, "bisection")
        if window.page_size >= KEYSET_MIN_PAGE_SIZE:
            summary["how"] = "keyset"
            handover = yield from self._read_keyset(window, lo, hi, recent)
        if handover is not None:
            summary["how"] = handover.how
            yield from self._read_bisecting(window, handover.start, hi, recent, handover.first_page)

    def _read_keyset(
        self, window: _Window, lo: int, hi: int, recent: dict[bytes, int]
    ) -> Generator[dict[str, Any], None, _Handover | None]:
        """Keyset paging over ``[lo, hi]``; return ``None`` when done, or where bisection must take over.

        :param recent: digest → second of the records received that the next request may return again; the
            caller reads what is left in it when bisection takes over.
        """
        cursor, passes, proven = lo, 0, False
        newest = lo - 2  # the latest second received so far: only records up to it can be repeats
        while True:  # one request [cursor, hi], paged from its first page
            query = window.seconds(cursor, hi)
            index, size, end, previous_last = 0, window.page_size, 0, cursor
            previous: set[bytes] = set()
            chain_seconds: Counter[int] = Counter()
            while True:
                page = self._page(window.api_method, {**query, "pageIndex": index, "pageSize": size}, window.list_key)
                seconds = self._page_seconds(window.api_method, page, window.modified_field, cursor - 1, hi + 2)
                if end and (not page or record_digest(page[0]) not in previous):
                    # More records left the answer between two calls than the pages overlap: records behind the
                    # previous page may have slipped past this one. Everything up to the previous page's last
                    # record is read, so a sorted server continues from its second; else read the answer again.
                    self.log.info("Jikeyun %s: the answer to %s shifted between pages; reading on from %s",
                                  window.api_method, query,
                                  beijing_time(max(cursor, previous_last) if proven else cursor))
                    if proven and previous_last > cursor:
                        cursor, passes = previous_last, 0
                        _forget_before(recent, cursor - 1)
                    else:
                        passes += 1
                        if passes >= STABLE_READ_PASSES:
                            raise JikeyunError(window.api_method,
                                               f"records of {query} kept changing over {passes} reads")
                    break
                if not is_time_ordered(seconds):
                    return self._unsorted(window, lo, cursor, page if cursor == lo and index == 0 else None)
                ordered = [second for second in seconds if second is not None]
                # digests (the costly part) only of records that may repeat one received before
                digests = [record_digest(r) if t <= newest else None for r, t in zip(page, ordered, strict=True)]
                for record, digest, second in zip(page, digests, ordered, strict=True):
                    if digest is not None and digest in recent:
                        if digest not in previous:
                            chain_seconds[second] += 1
                        continue
                    chain_seconds[second] += 1
                    if digest is not None:
                        recent[digest] = second
                    yield record
                if len(page) < size:
                    return None
                offset, end, last = index * size, (index + 1) * size, ordered[-1]
                newest = max(newest, last)
                proven = proven or sort_evidence(chain_seconds) >= -math.log(SORT_PROOF_CHANCE)
                try:
                    index, size = chain_page(end, window.page_size)
                except ValueError:  # no page size fits the overlap here; the read so far is sound either way
                    _remember(recent, page, ordered, digests, range(len(page)))
                    return _Handover(cursor, None, f"keyset, bisection from {beijing_time(cursor)} (page offsets)")
                # the next request returns this page's last two seconds again, or starts inside this page
                boundary = [i for i, second in enumerate(ordered) if second >= last - 1]
                reread = sum(1 for t in recent.values() if t >= last - 1) + sum(digests[i] is None for i in boundary)
                if proven and last > cursor and window.page_size - reread >= (index + 1) * size - end:
                    cursor, passes = last, 0  # seconds before the last record's are complete
                    _forget_before(recent, cursor - 1)
                    _remember(recent, page, ordered, digests, boundary)
                    break
                # chained: the next page starts inside this one. On a sorted server only its overlap and the last
                # two seconds can come again (a shift past the overlap moves the cursor, see above); otherwise a
                # shift reads the request again from its first page, so all of it must be known.
                overlap = range(max(0, index * size - offset), len(page))
                chosen = sorted({*boundary, *overlap}) if proven else range(len(page))
                previous, previous_last = _remember(recent, page, ordered, digests, chosen), last
                if proven:
                    _forget_before(recent, ordered[0] - 1)

    def _unsorted(self, window: _Window, lo: int, cursor: int, first_page: list[dict[str, Any]] | None) -> _Handover:
        """Where bisection starts once a page is not sorted by time."""
        if cursor == lo:
            return _Handover(lo, first_page, "bisection: the server does not sort by time")
        # Pages looked sorted, then one did not: the order only looked like time order (an id that grows with time,
        # say), so what keyset paging skipped as older is not proven read. Bisect the whole window; records read
        # before may come a second time (they are not remembered, to keep memory flat).
        self.log.warning("Jikeyun %s: a page is not sorted by time after %s; reading the whole window by bisection",
                         window.api_method, beijing_time(cursor))
        return _Handover(lo, None, f"keyset until {beijing_time(cursor)}, then bisection of the whole window")

    def _read_bisecting(
        self, window: _Window, first: int, hi: int, received: dict[bytes, int],
        first_page: list[dict[str, Any]] | None,
    ) -> Iterator[dict[str, Any]]:
        """Bisection over ``[first, hi]`` (see the module docstring), for a server that does not sort.

        :param received: digest → second of records already yielded that these requests may return again.
            Records of the edge seconds of each completed range are added: only those can come again (from the
            neighbour range, through the one-second widening), so only those are digested.
        :param first_page: the answer to the first request, page 0 of ``[first, hi]``, when already read.
        """
        seen = set(received)
        seen_from = min(received.values(), default=math.inf)
        pending = [(first, hi, True)]
        while pending:
            first, last, guided = pending.pop()
            query = window.seconds(first, last)
            if first_page is None:
                page = self._page(window.api_method, {**query, "pageIndex": 0, "pageSize": window.page_size},
                                  window.list_key)
            else:
                page, first_page = first_page, None
            seconds = self._page_seconds(window.api_method, page, window.modified_field, first - 1, last + 2)
            if len(page) < window.page_size:
                records = page
            elif first < last:
                split = split_second(seconds, first, last) if guided else None
                if split is None:  # halve; the left half is read first, so records come roughly in time order
                    pending += [((first + last) // 2 + 1, last, False), (first, (first + last) // 2, False)]
                else:  # the left part is expected to be short; if it is not, it falls back to halving
                    pending += [(split + 1, last, True), (first, split, False)]
                continue
            else:
                records = self._read_stable(window, query)
            edges = {first - 1, first, last, last + 1}
            for record in records:
                second = record_second(record, window.modified_field)
                if second is None or second in edges or second >= seen_from:
                    digest = record_digest(record)
                    if digest in seen:
                        continue
                    seen.add(digest)
                yield record

    def _read_stable(self, window: _Window, query: dict[str, Any]) -> list[dict[str, Any]]:
        """Offset-page one dense second until two consecutive passes return the same records; return the union.

        A pass disturbed by a concurrent modification differs from the next one, so two equal passes mean one of
        them saw the second unshifted.
        """
        union: dict[bytes, dict[str, Any]] = {}
        previous: set[bytes] | None = None
        for _ in range(STABLE_READ_PASSES):
            pages = self.iter_pages(window.api_method, query, window.list_key, window.page_size)
            current = {record_digest(record): record for page in pages for record in page}
            union.update(current)
            if current.keys() == previous:
                return list(union.values())
            previous = set(current)
        raise JikeyunError(window.api_method, f"records of {query} kept changing over {STABLE_READ_PASSES} reads")

    @staticmethod
    def _page_seconds(api_method: str, page: list[dict[str, Any]], field: str, lo: int, hi: int) -> list[int | None]:
        """Modification times of a page in whole epoch seconds (``None`` where unreadable); fails when a record
        lies outside ``[lo, hi)``: the server ignored the window (a wrong field name would otherwise read on)."""
        seconds = [record_second(record, field) for record in page]
        for record, second in zip(page, seconds, strict=True):
            if second is not None and not lo <= second < hi:
                raise JikeyunError(
                    api_method, f"server ignored the time window: {field}={record.get(field)} outside "
                    f"[{beijing_time(lo)}, {beijing_time(hi)}); check the window field names"
                )
        return seconds

    def iter_warehouses(
        self,
        window_start: datetime | None = None,
        window_end: datetime | None = None,
        page_size: int = DEFAULT_PAGE_SIZE,
        include_blocked_and_deleted: bool = True,
    ) -> Iterator[Warehouse]:
        """Warehouses modified in ``[window_start, window_end)`` (both ``None``: all), as :class:`Warehouse`.

        :param include_blocked_and_deleted: send ``includeDeleteAndBlockup: 1`` (default) so blocked-up and deleted
            warehouses come too: the DAG filters on ``isBlockup`` itself and must see a warehouse become blocked.
        """
        extra = {"includeDeleteAndBlockup": 1} if include_blocked_and_deleted else {}
        for record in self.iter_window(
            "erp.warehouse.get", "warehouseInfo", window_start=window_start, window_end=window_end,
            page_size=page_size, bizcontent=extra,
        ):
            yield Warehouse.model_validate(record)

    def test_connection(self) -> tuple[bool, str]:
        """The UI's Test button: one signed ``erp.warehouse.get`` of one record, no retries."""
        try:
            self.call("erp.warehouse.get", {"pageIndex": 0, "pageSize": 1}, retry_limit=1)
        except Exception as exc:  # the UI shows the message; typed errors never contain the secret
            return False, str(exc)
        return True, f"Jikeyun answered erp.warehouse.get as appkey {self.settings.appkey}"
