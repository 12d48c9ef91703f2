"""Jikeyun (吉客云 / Jackyun ERP) open API hook: signed calls, typed errors, retries, paging, loss-proof windows.

Protocol: /work/shared/reference/jikeyun-open-api.md. Every call is a form-encoded POST of ``method, appkey, version,
contenttype, timestamp, bizcontent, sign`` to one gateway URL; the answer is the envelope
``{"code": 200, "msg", "subCode", "result": {"data", "contextId"}}``.

Connection (conn_type ``jikeyun``): host = gateway URL (empty: the public gateway), login = appkey,
password = appsecret; extras ``version`` (default ``v1.0``), ``token`` (ISV apps only), ``max_calls_per_second``
(client-side rate limit), ``timeout`` (seconds, default 60). These extras are removed from the HTTP headers that
HttpHook would otherwise build from them.

Loss-proof windows (:meth:`JikeyunHook.iter_window`): offset paging loses a record when another record of the window
is modified between two page reads (the pages behind it shift by one). Instead, a window is read by bisection:
a sub-window is *complete* when one single request (``pageIndex`` 0) returns a short page — one request is one
consistent snapshot. A full page splits the sub-window in two, down to one second; a second that still holds a full
page is paged and re-read until two passes agree. Every query is widened by one second at each end, so no record is
lost whether the server treats either end as inclusive or exclusive, or compares at second or millisecond precision.
Correctness needs nothing but the window filter; the split point only changes the cost. It is taken just below the
last record of the full page when the page comes sorted by modification time (then the left part is short), else
the middle. Cost: ``2F + 1`` calls, F = sub-windows that answered a full page. Sorted answers: F ≈ N / P, so about
``2N/P + 1`` calls (offset paging: ``floor(N/P) + 1``); halving: about ``2 * 2**ceil(log2(N / P)) - 1`` plus one
call per halving level above the data's time span.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
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

from airflow.providers.http.hooks.http import HttpHook

from jikeyun_kingdee.compat import AirflowException
from jikeyun_kingdee.hooks.call_log import logged_call
from jikeyun_kingdee.provider_info import connection_form_methods
from jikeyun_kingdee.records import Warehouse, parse_jikeyun_time

if TYPE_CHECKING:
    from requests import PreparedRequest, Response, Session

GATEWAY_URL = "https://open.jackyun.com/open/openapi/do"
BEIJING = "Asia/Shanghai"
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
STABLE_READ_PASSES = 5


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


def split_second(seconds: list[float | None], first: int, last: int) -> int | None:
    """Where to split a full sub-window ``[first, last]`` (the last second of the left part), guided by its page.

    When the page is sorted by modification time (as Jikeyun and the sandbox answer), it holds the earliest
    records, so everything before the second of its last record, minus the one-second widening, is already known
    and ``[first, that - 2]`` should answer a short page. ``None`` (halve instead) when the page is unsorted,
    has unreadable times, or the split would not make progress. Only the cost depends on this, never correctness.
    """
    if None in seconds or seconds != sorted(seconds):  # type: ignore[type-var]
        return None
    split = math.floor(seconds[-1]) - 2  # type: ignore[arg-type]
    return split if first <= split < last else None


def record_key(record: dict[str, Any]) -> str:
    """Identity of one record version: its canonical JSON (the same record twice is one; a changed record is new)."""
    return json.dumps(record, sort_keys=True, ensure_ascii=False, default=str)


def classify_envelope(method: str, envelope: Any) -> dict[str, Any]:
    """Return ``result.data`` (a dict) of a successful envelope, or raise the matching typed error."""
    if not isinstance(envelope, dict) or "code" not in envelope:
        raise JikeyunRetryableError(method, "answer is JSON but not a Jikeyun envelope")
    code, msg = envelope.get("code"), str(envelope.get("msg") or "")
    sub_code = str(envelope.get("subCode") or "")
    result = envelope.get("result") if isinstance(envelope.get("result"), dict) else {}
    context_id = result.get("contextId")
    if str(code).strip() == "200":  # number or string; subCode varies by namespace on success and is ignored
        data = result.get("data")
        if isinstance(data, str):  # omsapi-business.* sends data as a JSON string
            data = json.loads(data) if data.strip() else None
        return data if isinstance(data, dict) else {} if data is None else {"data": data}
    details = {"code": code, "sub_code": sub_code or None, "context_id": context_id}
    if sub_code == THROTTLE_SUB_CODE or any(word in msg.lower() for word in THROTTLE_WORDS):
        raise JikeyunThrottledError(method, msg or "throttled", **details)
    if sub_code in FATAL_SUB_CODES:
        raise JikeyunFatalError(method, msg or FATAL_SUB_CODES[sub_code], **details)
    raise JikeyunError(method, msg or "unknown error", **details)


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


def is_retryable(exc: BaseException) -> bool:
    """Retry predicate for tenacity: only the transient Jikeyun failures."""
    return isinstance(exc, JikeyunError) and exc.retryable


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


# ------------------------------------------------------------------------------------------------- hook
class JikeyunHook(HttpHook):
    """Jikeyun open API: signed, retried, rate-limited calls and paged, windowed, loss-proof reads.

    :param jikeyun_conn_id: Airflow connection of type ``jikeyun``.
    :param retry_attempts: attempts per call, first one included.
    :param retry_wait_initial: first back-off in seconds (doubles each retry, with jitter).
    :param retry_wait_max: longest single back-off in seconds (a longer ``Retry-After`` is still honoured).
    :param retry_total_wait: no retry is scheduled that would start more than this many seconds after the first
        attempt (also bounds how long a ``Retry-After`` is honoured).
    """

    conn_name_attr = "jikeyun_conn_id"
    default_conn_name = "jikeyun_default"
    conn_type = "jikeyun"
    hook_name = "Jikeyun"
    default_host = GATEWAY_URL

    # the connection form on Airflow 2.x and 3.1 (3.2+ reads the provider info)
    get_connection_form_widgets, get_ui_field_behaviour = connection_form_methods()

    def __init__(
        self,
        jikeyun_conn_id: str = default_conn_name,
        *,
        retry_attempts: int = 6,
        retry_wait_initial: float = 1.0,
        retry_wait_max: float = 30.0,
        retry_total_wait: float = 300.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(method="POST", http_conn_id=jikeyun_conn_id, **kwargs)
        self.jikeyun_conn_id = jikeyun_conn_id
        self.retry_attempts = retry_attempts
        self.retry_wait_initial = retry_wait_initial
        self.retry_wait_max = retry_wait_max
        self.retry_total_wait = retry_total_wait
        self.call_counts: Counter[str] = Counter()
        self.retry_counts: Counter[str] = Counter()
        self._session: Session | None = None

    # -- connection ----------------------------------------------------------------------------------
    @cached_property
    def settings(self) -> JikeyunSettings:
        """The connection, read and validated once."""
        conn = self.get_connection(self.jikeyun_conn_id)
        extra = conn.extra_dejson
        return JikeyunSettings(
            appkey=conn.login or "",
            appsecret=conn.password or "",
            **{k: extra[k] for k in CONNECTION_EXTRAS if extra.get(k) not in (None, "")},
        )

    @cached_property
    def rate_limiter(self) -> RateLimiter:
        return RateLimiter(self.settings.max_calls_per_second)

    def get_conn(self, headers: dict[Any, Any] | None = None, extra_options: dict[str, Any] | None = None) -> Session:
        """One signed session for the life of the hook (HttpHook would build a new one per call)."""
        if self._session is None:
            session = super().get_conn(headers, extra_options)
            for name in CONNECTION_EXTRAS:  # HttpHook copies unknown extras into headers; these are ours
                session.headers.pop(name, None)
            session.auth = JikeyunAuth(self.settings)
            self._session = session
        return self._session

    # -- one call --------------------------------------------------------------------------------------
    def call(self, method: str, bizcontent: dict[str, Any], *, attempts: int | None = None) -> dict[str, Any]:
        """Call one Jikeyun API method with retries; return ``result.data``.

        :param method: e.g. ``erp.warehouse.get``.
        :param bizcontent: business parameters, sent as compact JSON.
        :param attempts: overrides ``retry_attempts`` for this call.
        :raises JikeyunError: a typed error (retryable ones only after the retries are spent).
        """
        stop_after = attempts or self.retry_attempts
        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception(is_retryable),
            stop=tenacity.stop_after_attempt(stop_after) | tenacity.stop_before_delay(self.retry_total_wait),
            wait=self._wait,
            before_sleep=self._log_retry,
            reraise=True,
        )
        attempts = itertools.count(1)
        return retrying(lambda: self._post(method, bizcontent, next(attempts)))

    def _post(self, method: str, bizcontent: dict[str, Any], attempt: int) -> dict[str, Any]:
        self.rate_limiter.acquire()
        self.call_counts[method] += 1
        window = [bizcontent[k] for k in ("gmtModifiedStart", "gmtModifiedEnd") if k in bizcontent]
        with logged_call(self.log, "jikeyun", method, page=bizcontent.get("pageIndex"), page_size=bizcontent.get("pageSize"),
                         window="~".join(window).replace(" ", "T") or None, attempt=attempt) as call:
            data = self._post_once(method, compact_json(bizcontent))
            call["rows"] = next((len(v) for v in data.values() if isinstance(v, list)), None) if isinstance(data, dict) else None
            return data

    def _post_once(self, method: str, bizcontent: str) -> dict[str, Any]:
        try:
            response: Response = self.run(
                data={"method": method, "bizcontent": bizcontent},
                extra_options={"check_response": False, "timeout": self.settings.timeout},
            )
        except requests.Timeout as exc:
            raise JikeyunRetryableError(method, f"timeout: {type(exc).__name__}") from None
        except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError) as exc:
            raise JikeyunRetryableError(method, f"connection failed: {type(exc).__name__}") from None
        status = response.status_code
        if status == 429 or status >= 500:
            raise JikeyunRetryableError(
                method, f"HTTP {status}", http_status=status,
                retry_after=retry_after_seconds(response.headers.get("Retry-After")),
            )
        if status >= 400:
            raise JikeyunFatalError(method, f"HTTP {status}", http_status=status)
        try:
            envelope = response.json()
        except ValueError:
            raise JikeyunRetryableError(method, "answer is not JSON", http_status=status) from None
        return classify_envelope(method, envelope)

    def _wait(self, retry_state: tenacity.RetryCallState) -> float:
        """Exponential back-off with jitter; a longer ``Retry-After`` wins."""
        backoff = tenacity.wait_exponential_jitter(
            initial=self.retry_wait_initial, max=self.retry_wait_max, jitter=self.retry_wait_initial
        )(retry_state)
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        return max(backoff, getattr(exc, "retry_after", None) or 0.0)

    def _log_retry(self, retry_state: tenacity.RetryCallState) -> None:
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        method = getattr(exc, "method", "?")
        self.retry_counts[method] += 1
        retry_after = getattr(exc, "retry_after", None)
        self.log.warning(
            "Jikeyun %s: retry %d/%d in %.2fs%s because %s",
            method, retry_state.attempt_number, self.retry_attempts - 1, retry_state.upcoming_sleep,
            f" (Retry-After {retry_after:g}s)" if retry_after else "", exc,
        )

    # -- paging ----------------------------------------------------------------------------------------
    def iter_pages(
        self, method: str, bizcontent: dict[str, Any], list_key: str, page_size: int = 50
    ) -> Iterator[list[dict[str, Any]]]:
        """Page through any Jikeyun query API (0-based ``pageIndex``); stop on a short or empty page.

        :param list_key: where the records are in ``result.data``, e.g. ``warehouseInfo``.
        :param page_size: 1..200.
        """
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise ValueError(f"page_size must be 1..{MAX_PAGE_SIZE}, not {page_size}")
        page_index = 0
        while True:
            page = self._page(method, {**bizcontent, "pageIndex": page_index, "pageSize": page_size}, list_key)
            if page:
                yield page
            if len(page) < page_size:
                return
            page_index += 1

    def _page(self, method: str, bizcontent: dict[str, Any], list_key: str) -> list[dict[str, Any]]:
        records = self.call(method, bizcontent).get(list_key) or []
        if not isinstance(records, list):
            raise JikeyunRetryableError(method, f"result.data.{list_key} is not a list")
        return records

    def iter_window(
        self,
        method: str,
        list_key: str,
        *,
        window_start: datetime | None,
        window_end: datetime | None,
        page_size: int = 50,
        start_field: str = "gmtModifiedStart",
        end_field: str = "gmtModifiedEnd",
        modified_field: str = "gmtModified",
        bizcontent: dict[str, Any] | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Every record modified in ``[window_start, window_end)``, raw as Jikeyun sent it, none lost.

        Bisection into single-request sub-windows (see the module docstring); records may repeat across runs at
        the window edges (one second of overlap), never within one run. A record modified while the window is read
        is yielded in its old version or, if it left the window, belongs to a later window.

        :param window_start: aware datetime; ``None`` = from :data:`HISTORY_START`.
        :param window_end: aware datetime, exclusive; ``None`` = now.
        :param modified_field: the record's modification time (epoch ms or a string); used to check that the
            server honours the window fields, so a wrong field name fails fast instead of bisecting forever.
        :param bizcontent: further business parameters, e.g. ``{"includeDeleteAndBlockup": 1}``.
        """
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise ValueError(f"page_size must be 1..{MAX_PAGE_SIZE}, not {page_size}")
        lo, hi = window_seconds(window_start, window_end, pendulum.now("UTC"))
        seen: set[str] = set()
        calls_before = self.call_counts[method]
        pending = [(lo, hi, True)] if hi >= lo else []
        while pending:
            first, last, guided = pending.pop()
            query = {**(bizcontent or {}), start_field: beijing_time(first - 1), end_field: beijing_time(last + 1)}
            page = self._page(method, {**query, "pageIndex": 0, "pageSize": page_size}, list_key)
            seconds = self._page_seconds(method, page, modified_field, first - 1, last + 2)
            if len(page) < page_size:
                records = page
            elif first < last:
                split = split_second(seconds, first, last) if guided else None
                if split is None:  # halve; the left half is read first, so records come roughly in time order
                    pending += [((first + last) // 2 + 1, last, False), (first, (first + last) // 2, False)]
                else:  # the left part is expected to be short; if it is not, it falls back to halving
                    pending += [(split + 1, last, True), (first, split, False)]
                continue
            else:
                records = self._read_stable(method, query, list_key, page_size)
            for record in records:
                key = record_key(record)
                if key not in seen:
                    seen.add(key)
                    yield record
        self.log.info(
            "Jikeyun %s window [%s, %s]: %d records in %d calls",
            method, beijing_time(lo), beijing_time(hi), len(seen), self.call_counts[method] - calls_before,
        )

    def _read_stable(
        self, method: str, query: dict[str, Any], list_key: str, page_size: int
    ) -> list[dict[str, Any]]:
        """Offset-page one dense second until two consecutive passes return the same records; return the union.

        A pass disturbed by a concurrent modification differs from the next one, so two equal passes mean one of
        them saw the second unshifted.
        """
        union: dict[str, dict[str, Any]] = {}
        previous: set[str] | None = None
        for _ in range(STABLE_READ_PASSES):
            current = {record_key(r): r for page in self.iter_pages(method, query, list_key, page_size) for r in page}
            union.update(current)
            if current.keys() == previous:
                return list(union.values())
            previous = set(current)
        raise JikeyunError(method, f"records of {query} kept changing over {STABLE_READ_PASSES} reads")

    @staticmethod
    def _page_seconds(method: str, page: list[dict[str, Any]], field: str, lo: int, hi: int) -> list[float | None]:
        """Modification times of a page in epoch seconds (``None`` where unreadable); fails when the server
        ignored the window (a wrong field name would otherwise bisect down to single seconds)."""
        seconds: list[float | None] = []
        for record in page:
            try:
                moment = parse_jikeyun_time(record.get(field)) if isinstance(record, dict) else None
            except ValueError:
                moment = None  # a malformed record is staged raw and rejected later, never fatal here
            seconds.append(None if moment is None else moment.timestamp())
            if moment is not None and not lo <= moment.timestamp() < hi:
                raise JikeyunError(
                    method, f"server ignored the time window: {field}={record.get(field)} outside "
                    f"[{beijing_time(lo)}, {beijing_time(hi)}); check the window field names"
                )
        return seconds

    def iter_warehouses(
        self,
        window_start: datetime | None = None,
        window_end: datetime | None = None,
        page_size: int = 50,
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
            self.call("erp.warehouse.get", {"pageIndex": 0, "pageSize": 1}, attempts=1)
        except Exception as exc:  # the UI shows the message; typed errors never contain the secret
            return False, str(exc)
        return True, f"Jikeyun answered erp.warehouse.get as appkey {self.settings.appkey}"
