"""Jikeyun (吉客云 / Jackyun ERP) open API hook: a thin signed-call client — signing, rate limit, retries, typed
errors and one log line per call.

Protocol notes for maintainers: docs/protocol/jikeyun.md. Every call is a form-encoded POST of ``method, appkey,
version, contenttype, timestamp, bizcontent, sign`` to one gateway URL; the answer is the envelope
``{"code": 200, "msg", "subCode", "result": {"data", "contextId"}}``; :meth:`JikeyunHook.call` returns
``result.data``. Reading a source page by page is :mod:`jikeyun_kingdee.source_paging`'s job, through ``call``.

Connection (conn_type ``jikeyun``): host = gateway URL (empty: the public gateway), login = appkey,
password = appsecret; extras ``version`` (default ``v1.0``), ``token`` (ISV apps only), ``max_calls_per_second``
(client-side rate limit), ``timeout`` (seconds, default 60). These extras are removed from the HTTP headers that
HttpHook would otherwise build from them.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
import threading
import time
from collections.abc import Callable
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
from jikeyun_kingdee.records import BEIJING
from jikeyun_kingdee.records import beijing_time as beijing_time

if TYPE_CHECKING:
    from requests import PreparedRequest, Response, Session

#: extras of this connection type; never sent as HTTP headers
CONNECTION_EXTRAS = ("version", "token", "max_calls_per_second", "timeout")
UNSIGNED_PARAMS = ("sign", "token", "contextid")
THROTTLE_SUB_CODE = "0859999999"
THROTTLE_WORDS = ("限流", "频繁", "频率", "稍后", "throttl", "too many", "rate limit")
#: sub-codes that no retry can fix: sign error, unknown appkey, bad token, API not subscribed, bad parameters
FATAL_SUB_CODES = {
    "0858030801": "sign error",
    "0858030802": "appkey does not exist",
    "0858030803": "token invalid or expired",
    "0130020310": "app not found or API not subscribed",
    "0050030002": "business parameter missing or out of range",
}
#: the day's or month's calls of the method are used up (额度不足); elsewhere the same sub-code has been seen
#: meaning "the app is not enabled for the open platform" (该应用未开通开放平台) — then its message says so
QUOTA_SUB_CODE = "0130000609"
NOT_ENABLED_WORDS = ("未开通", "未启用", "未开启", "not enabled")

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
    """Never retried: sign error, unknown appkey, API not subscribed, app not enabled, bad parameters."""


class JikeyunQuotaExhausted(JikeyunError):
    """The method's daily or monthly call quota is used up (subCode ``0130000609``, 额度不足). Never retried by
    the hook — no retry within the quota period can succeed — and not fatal for the scheme: the calls come back
    with the next quota period.

    :attr:`server_time`: the gateway's clock when it refused (its ``Date`` header), ``None`` without one: the
    quota's day is the server's Beijing day, so the wait for its reset is reckoned from it.
    """

    server_time: datetime | None = None


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
    elif sub_code == QUOTA_SUB_CODE and any(word in msg.lower() for word in NOT_ENABLED_WORDS):
        error = JikeyunFatalError
    elif sub_code == QUOTA_SUB_CODE:
        error, msg = JikeyunQuotaExhausted, msg or "quota exhausted"
    elif sub_code in FATAL_SUB_CODES:
        error, msg = JikeyunFatalError, msg or FATAL_SUB_CODES[sub_code]
    raise error(method, msg or "unknown error", code=code, sub_code=sub_code or None, context_id=context_id)


def window_bounds(bizcontent: dict[str, Any]) -> str | None:
    """The window bounds a request carries, for its log line: ``start~end`` of every pair of parameters named
    alike but for ``Start``/``End`` or ``start``/``end`` (``gmtModifiedStart``/``gmtModifiedEnd``,
    ``startModified``/``endModified``, ``startDateModifiedSku``/``endDateModifiedSku``…), pairs joined by ``,``;
    ``None`` without one."""
    bounds = []
    for name, start in bizcontent.items():
        end_name = re.sub("start", "end", re.sub("Start", "End", name, count=1), count=1)
        if end_name != name and end_name in bizcontent:
            bounds.append(f"{start}~{bizcontent[end_name]}".replace(" ", "T"))
    return ",".join(bounds) or None


def http_date(value: str | None) -> datetime | None:
    """An HTTP ``Date`` header as an aware datetime, ``None`` when absent or unreadable."""
    if not value:
        return None
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return moment if moment.tzinfo is not None else None


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


# ------------------------------------------------------------------------------------------------- hook
class JikeyunHook(ApiHook[JikeyunSettings]):
    """Jikeyun open API: signed, retried, rate-limited calls (paged reads: :mod:`jikeyun_kingdee.source_paging`).

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
        with logged_call(self.log, "jikeyun", api_method, page=bizcontent.get("pageIndex"),
                         page_size=bizcontent.get("pageSize"), window=window_bounds(bizcontent),
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
        try:
            return classify_envelope(api_method, envelope)
        except JikeyunQuotaExhausted as exc:
            exc.server_time = http_date(response.headers.get("Date"))
            raise

    def _wait(self, retry_state: tenacity.RetryCallState) -> float:
        """Exponential back-off with jitter; a longer ``Retry-After`` wins."""
        backoff = tenacity.wait_exponential_jitter(
            initial=self.retry_delay, max=self.retry_delay_max, jitter=self.retry_delay
        )(retry_state)
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        return max(backoff, getattr(exc, "retry_after", None) or 0.0)

    def test_connection(self) -> tuple[bool, str]:
        """The UI's Test button: one signed ``erp.warehouse.get`` of one record, no retries."""
        try:
            self.call("erp.warehouse.get", {"pageIndex": 0, "pageSize": 1}, retry_limit=1)
        except Exception as exc:  # the UI shows the message; typed errors never contain the secret
            return False, str(exc)
        return True, f"Jikeyun answered erp.warehouse.get as appkey {self.settings.appkey}"
