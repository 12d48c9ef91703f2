"""Kingdee Cloud Galaxy (金蝶云星空, K3Cloud) WebAPI hook.

Every call is ``POST {host}/{Service}.common.kdsvc`` with a JSON body; the session lives in cookies, so one
:class:`requests.Session` is kept for the hook's lifetime. Three ways to authenticate (connection extra ``auth``):
``password`` (ValidateUser), ``app_secret`` (LoginByAppSecret) and ``signature`` (the stateless SDK-v8 header
signature, :class:`KingdeeSignatureAuth`).

Retries are only where they are safe: reads, logins and state transitions that a replay cannot duplicate (Submit,
Audit, UnAudit). A write whose outcome is unknown (timeout, lost connection, 5xx after sending) is never resent
blindly: BatchSave looks the numbers up first, Forbid/Enable read the records' ``FForbidStatus`` first.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import itertools
import json
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import quote, urlsplit

import requests
from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator
from requests.auth import AuthBase
from urllib3.exceptions import NewConnectionError

from jikeyun_kingdee.compat import AirflowException
from jikeyun_kingdee.hooks.base import ApiHook
from jikeyun_kingdee.hooks.base import is_retryable as is_retryable
from jikeyun_kingdee.hooks.call_log import logged_call
from jikeyun_kingdee.kingdee_forms import (
    DOCUMENT_STATUS,
    ENABLE,
    ENABLED,
    FORBID,
    FORBID_STATUS,
    FORBIDDEN,
    equals_filter,
    in_filter,
)
from jikeyun_kingdee.provider_info import connection_form_methods

if TYPE_CHECKING:
    from requests import PreparedRequest, Response

SERVICE_PREFIX = {
    "auth": "Kingdee.BOS.WebApi.ServicesStub.AuthService.",
    "form": "Kingdee.BOS.WebApi.ServicesStub.DynamicFormService.",
}
AUTH_OPERATIONS = frozenset({"ValidateUser", "LoginByAppSecret", "LoginBySign"})
# Writes that are never resent blindly when their outcome is unknown: saves may create records twice, and an
# ExcuteOperation (Forbid, Enable, ...) is checked by status before it is sent again. Submit, Audit and UnAudit
# cannot duplicate data (a replay answers "already audited"), so they are replayed like reads.
CHECKED_OPERATIONS = frozenset({"Save", "BatchSave", "ExcuteOperation"})
MSG_SESSION_LOST = 1
MSG_VALIDATION = 11
SECRET_XOR_KEY = b"0054f397c6234378b09ca7d3e5debce7"  # ROT13 of the SDK's "0054s397p6234378o09pn7q3r5qropr7"
# ExecuteBillQuery's ``Limit``: today's doc caps it at 10000, an older version at 2000, and servers of that age
# refuse more. 2000 is safe for both; a larger limit is asked only when the scheme says so, and the hook falls back
# to 2000 when the server refuses it. A server might instead cut a page silently to its cap: a page of exactly one
# of these sizes, shorter than asked, is therefore taken as cut, not as the last page (one call more at worst).
SAFE_QUERY_LIMIT = 2000
KNOWN_SERVER_LIMITS = frozenset({2000, 10000})


# -- errors -------------------------------------------------------------------------------------------------
class RowError(BaseModel):
    """One ``Errors[]`` entry of a ResponseStatus."""

    index: int | None = None
    field: str | None = None
    message: str = ""


class KingdeeError(AirflowException):
    """A Kingdee call failed; carries the upstream ``MsgCode``, ``ErrorCode`` and row messages (never secrets).

    ``retryable`` (class attribute) says whether :func:`is_retryable` lets the hook send the call again.

    :param message: summary
    :param msg_code: Kingdee ``MsgCode`` (1 session lost, 4 exception, 9 unknown field, 11 validation, ...)
    :param error_code: Kingdee ``ErrorCode`` (usually 500 on failure)
    :param errors: the row messages
    """

    retryable = False

    def __init__(
        self,
        message: str,
        *,
        msg_code: int | None = None,
        error_code: int | None = None,
        errors: list[RowError] | None = None,
    ) -> None:
        self.msg_code = msg_code
        self.error_code = error_code
        self.errors = errors or []
        detail = "; ".join(f"[{e.index}] {e.field or '-'}: {e.message}" for e in self.errors[:5])
        super().__init__(f"{message} (MsgCode={msg_code}, ErrorCode={error_code}){': ' + detail if detail else ''}")


class KingdeeAuthError(KingdeeError):
    """Login refused (wrong data centre, user, password, app id or secret)."""


class KingdeeSessionLost(KingdeeError):
    """MsgCode 1: 会话信息已丢失，请重新登录 (session lost or credentials not accepted)."""


class KingdeeTransportError(KingdeeError):
    """No usable answer: connection failure, timeout, HTTP 429/5xx or a body that is not JSON."""

    retryable = True

    def __init__(self, message: str, *, status: int | None = None) -> None:
        self.status = status
        super().__init__(message, error_code=status)


class KingdeeHTTPRefused(KingdeeTransportError):
    """An HTTP error status other than 429/5xx (e.g. ``Fail to verify thirty passport`` for a wrong data centre)."""

    retryable = False


class KingdeeOutcomeUnknown(KingdeeTransportError):
    """A checked write (save, ExcuteOperation) was sent but no reliable answer came back: it may have been applied."""

    retryable = False


# -- SDK v8 header signature (pure functions) ---------------------------------------------------------------
def decode_client_secret(secret_part: str) -> str:
    """Decode the 32-character part of an AppID into the key of ``X-Api-Signature`` (SDK ``DecodeAppSecret``).

    :param secret_part: the text after ``_`` in the AppID
    """
    if len(secret_part) != 32:
        return ""
    try:
        raw = base64.b64decode(secret_part, validate=True)
    except binascii.Error:
        return ""
    return base64.b64encode(bytes(b ^ k for b, k in zip(raw, SECRET_XOR_KEY, strict=False))).decode("ascii")


def hmac_hex_base64(message: str, key: str) -> str:
    """HMAC-SHA256, lower-case hex digest, then base64 of the hex text (the SDK's ``HmacSHA256``)."""
    digest = hmac.new(key.encode("utf-8"), message.encode("utf-8"), hashlib.sha256).hexdigest()
    return base64.b64encode(digest.encode("ascii")).decode("ascii")


def signature_headers(
    url: str,
    *,
    acct_id: str,
    username: str,
    app_id: str,
    app_secret: str,
    lcid: int = 2052,
    org_num: int = 0,
    timestamp: str | None = None,
    nonce: str | None = None,
) -> dict[str, str]:
    """Build the SDK-v8 signature headers for one request.

    :param url: full request URL or its path (``/k3cloud/...common.kdsvc``)
    :param timestamp: seconds since the epoch as text; now if omitted
    :param nonce: defaults to the timestamp, as the Python SDK does
    """
    ts = timestamp or str(int(time.time()))
    nonce = nonce or ts
    path = quote(urlsplit(url).path or url, safe="", encoding="utf-8")
    parts = app_id.split("_")
    client_id, client_secret = (parts[0], decode_client_secret(parts[1])) if len(parts) == 2 else ("", "")
    string_to_sign = f"POST\n{path}\n\nx-api-nonce:{nonce}\nx-api-timestamp:{ts}\n"
    app_data = f"{acct_id},{username},{lcid},{org_num}"
    return {
        "X-Api-ClientID": client_id,
        "X-Api-Auth-Version": "2.0",
        "x-api-timestamp": ts,
        "x-api-nonce": nonce,
        "x-api-signheaders": "x-api-timestamp,x-api-nonce",
        "X-Api-Signature": hmac_hex_base64(string_to_sign, client_secret),
        "X-Kd-Appkey": app_id,
        "X-Kd-Appdata": base64.b64encode(app_data.encode("utf-8")).decode("ascii"),
        "X-Kd-Signature": hmac_hex_base64(app_id + app_data, app_secret),
    }


class KingdeeSignatureAuth(AuthBase):
    """``requests`` auth that signs every request with the SDK-v8 headers (no login call needed)."""

    def __init__(self, *, acct_id: str, username: str, app_id: str, app_secret: str, lcid: int, org_num: int):
        self.acct_id, self.username, self.app_id, self.lcid, self.org_num = acct_id, username, app_id, lcid, org_num
        self._app_secret = app_secret

    def __call__(self, request: PreparedRequest) -> PreparedRequest:
        request.headers.update(signature_headers(
            request.url or "", acct_id=self.acct_id, username=self.username, app_id=self.app_id,
            app_secret=self._app_secret, lcid=self.lcid, org_num=self.org_num))
        return request

    def __repr__(self) -> str:  # never show the secret
        return f"KingdeeSignatureAuth(acct_id={self.acct_id!r}, username={self.username!r})"


# -- connection and results ---------------------------------------------------------------------------------
class KingdeeSettings(BaseModel):
    """The connection, validated once. ``secret`` is the password or the app secret, depending on ``auth``."""

    server_url: str
    username: str = Field(min_length=1)
    secret: str = Field(min_length=1, repr=False)
    acct_id: str = Field(min_length=1)
    lcid: int = 2052
    auth: Literal["password", "app_secret", "signature"] = "password"
    app_id: str = ""
    org_num: int = 0
    timeout: float = 120.0

    @field_validator("server_url")
    @classmethod
    def _ends_with_slash(cls, value: str) -> str:
        if "://" not in value:
            value = f"http://{value}"
        return value if value.endswith("/") else value + "/"

    @model_validator(mode="after")
    def _app_id_when_needed(self) -> KingdeeSettings:
        if self.auth != "password" and not self.app_id:
            raise ValueError(f"auth {self.auth!r} needs the extra 'app_id'")
        return self


OWN_EXTRAS = tuple(k for k in KingdeeSettings.model_fields if k not in ("server_url", "username", "secret"))


class RowResult(BaseModel):
    """Outcome of one row (by ``DIndex``) of a BatchSave, or one record of Submit/Audit/UnAudit/ExcuteOperation."""

    index: int
    ok: bool
    id: int | None = None
    number: str | None = None
    field: str | None = None
    message: str | None = None
    document_status: str | None = None  # FDocumentStatus after a save, when the server echoed it (NeedReturnData)


def response_status(reply: Any) -> dict | None:
    """The ``ResponseStatus`` of a reply, also when ExecuteBillQuery wraps it as ``[[{"Result": ...}]]``."""
    while isinstance(reply, list) and reply and isinstance(reply[0], (list, dict)):
        reply = reply[0]
    if isinstance(reply, dict) and isinstance(reply.get("Result"), dict):
        status = reply["Result"].get("ResponseStatus")
        return status if isinstance(status, dict) else None
    return None


def _row_errors(status: dict) -> list[RowError]:
    return [
        RowError(index=e.get("DIndex"), field=e.get("FieldName") or None, message=str(e.get("Message") or ""))
        for e in status.get("Errors") or []
    ]


def error_from_status(status: dict, operation: str) -> KingdeeError:
    """A typed error for a failed ResponseStatus."""
    msg_code = status.get("MsgCode")
    kind = KingdeeSessionLost if msg_code == MSG_SESSION_LOST else KingdeeError
    return kind(f"Kingdee {operation} failed", msg_code=msg_code, error_code=status.get("ErrorCode"),
                errors=_row_errors(status))


def row_results(
    status: dict, count: int, *, id_order: list[int] | None = None, number_order: list[str] | None = None
) -> list[RowResult]:
    """Map a ResponseStatus to one result per input row by ``DIndex``.

    :param status: the ResponseStatus
    :param count: number of rows (models, or records of a Submit/Audit/ExcuteOperation call)
    :param id_order: for operations by ids, the ids in request order (a success is placed by its ``Id``)
    :param number_order: for operations by numbers, the numbers in request order (placed by ``Number``)
    """
    results: dict[int, RowResult] = {}
    for i, entity in enumerate(status.get("SuccessEntitys") or []):
        index = entity.get("DIndex")
        entity_id = int(entity["Id"]) if entity.get("Id") not in (None, "") else None
        if id_order is not None and entity_id in id_order:
            index = id_order.index(entity_id)
        elif number_order is not None and str(entity.get("Number")) in number_order:
            index = number_order.index(str(entity.get("Number")))
        index = i if index is None else int(index)
        results[index] = RowResult(index=index, ok=True, id=entity_id, number=entity.get("Number"))
    for error in _row_errors(status):  # an error wins over a success reported for the same row
        if error.index is not None and 0 <= error.index < count:
            prior = results.get(error.index)
            results[error.index] = RowResult(index=error.index, ok=False, id=prior.id if prior else None,
                                             field=error.field, message=error.message)
    return [results.get(i, RowResult(index=i, ok=False, message="Kingdee returned no result for this row"))
            for i in range(count)]


def returned_data(reply: Any, results: list[RowResult], number_field: str) -> list[RowResult]:
    """Add the ``NeedReturnData`` of a BatchSave (asked with ``NeedReturnFields``) to the successful rows.

    Entries are matched by number when they carry it, else by the order of the successes. A server that echoes
    nothing leaves ``document_status`` empty (the caller then reads the status itself).
    """
    data = reply.get("Result", {}).get("NeedReturnData") if isinstance(reply, dict) else None
    if not isinstance(data, list):
        return results
    entries = [entry for entry in data if isinstance(entry, dict)]
    by_number = {str(e[number_field]): e for e in entries if e.get(number_field) not in (None, "")}
    successes = [r for r in results if r.ok]
    updated = {}
    for position, result in enumerate(successes):
        entry = by_number.get(str(result.number)) if by_number else (
            entries[position] if len(entries) == len(successes) else None)
        status = next((v for k, v in (entry or {}).items() if k.lower() == "fdocumentstatus"), None)
        if status not in (None, ""):
            updated[result.index] = result.model_copy(update={"document_status": str(status)})
    return [updated.get(r.index, r) for r in results]


# -- the hook -------------------------------------------------------------------------------------------------
class KingdeeHook(ApiHook[KingdeeSettings]):
    """Kingdee Cloud Galaxy WebAPI.

    Connection: ``host`` server URL including ``/k3cloud/``; ``login`` user; ``password`` the password (auth
    ``password``) or the app secret (``app_secret``, ``signature``). Extras: ``acct_id`` (required), ``lcid`` (2052),
    ``auth``, ``app_id``, ``org_num`` (0), ``timeout`` (seconds).

    :param kingdee_conn_id: Airflow connection id
    :param retry_limit: attempts for safe retries (transport errors, 5xx), the first included
    :param retry_delay: first back-off wait in seconds (exponential, capped at 30 s)
    """

    conn_name_attr = "kingdee_conn_id"
    default_conn_name = "kingdee_default"
    conn_type = "kingdee"
    hook_name = "Kingdee Cloud Galaxy"
    api_name = "Kingdee"
    own_extras = (*OWN_EXTRAS, "auth_type")

    # the connection form on Airflow 2.x and 3.1 (3.2+ reads the provider info)
    get_connection_form_widgets, get_ui_field_behaviour = connection_form_methods()

    def __init__(
        self,
        kingdee_conn_id: str = default_conn_name,
        *,
        retry_limit: int = 3,
        retry_delay: float = 1.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(kingdee_conn_id, retry_limit=retry_limit, retry_delay=retry_delay, **kwargs)
        self.kingdee_conn_id = kingdee_conn_id
        self.query_limit: int | None = None  # learnt: the most rows this server gives one ExecuteBillQuery
        self._logged_in = False

    # -- connection ------------------------------------------------------------------------------------
    def read_settings(self, conn: Any) -> KingdeeSettings:
        extra = conn.extra_dejson
        host = conn.host or ""
        if conn.port and "://" in host:
            parts = urlsplit(host)
            host = parts._replace(netloc=f"{parts.hostname}:{conn.port}").geturl()
        try:
            return KingdeeSettings(server_url=host, username=conn.login or "", secret=conn.password or "",
                                   **{k: extra[k] for k in OWN_EXTRAS if extra.get(k) not in (None, "")})
        except ValidationError as exc:  # the message lists field names, never values (include_input=False)
            raise AirflowException(
                f"Kingdee connection {self.kingdee_conn_id!r} is invalid: "
                + "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors(include_input=False))
            ) from None

    def _extract_auth(self, connection: Any) -> Any | None:
        """HttpHook would send login/password as Basic auth; Kingdee only ever gets the signature auth."""
        s = self.settings
        if s.auth != "signature":
            return None
        return KingdeeSignatureAuth(acct_id=s.acct_id, username=s.username, app_id=s.app_id,
                                    app_secret=s.secret, lcid=s.lcid, org_num=s.org_num)

    def session_options(self) -> dict[str, Any]:
        return {"timeout": self.settings.timeout}

    def configure_session(self, session: requests.Session) -> None:
        """JSON bodies; the session cookie lives as long as the session."""
        session.headers["Content-Type"] = "application/json"
        session.headers["Accept-Charset"] = "utf-8"
        self.base_url = self.settings.server_url  # host may lack the scheme; settings normalised it

    def close(self) -> None:
        """Close the HTTP session (a new one with a new login is made on the next call)."""
        super().close()
        self._logged_in = False

    def check_response(self, response: Response) -> None:
        """Classify HTTP failures here: HttpHook would wrap 429/5xx into a plain AirflowException."""
        if response.status_code in (200, 206):
            return
        retryable = response.status_code == 429 or response.status_code >= 500
        kind = KingdeeTransportError if retryable else KingdeeHTTPRefused
        raise kind(f"Kingdee HTTP {response.status_code}: {response.text[:200]}", status=response.status_code)

    # -- calls -------------------------------------------------------------------------------------------
    def _logged_send(self, operation: str, body: dict, *, attempt: int = 1, replay: int = 1) -> Any:
        """:meth:`_send` with one structured log line: operation, form, rows sent, latency, attempt (no secret)."""
        data: dict[str, Any] = body["data"] if isinstance(body.get("data"), dict) else {}
        model, ids = data.get("Model"), data.get("Ids")
        records = data.get("Numbers") or (ids.split(",") if isinstance(ids, str) and ids else None)
        rows = len(model) if isinstance(model, list) else len(records) if isinstance(records, list) else None
        with logged_call(self.log, "kingdee", operation, form=body.get("formid") or data.get("FormId"),
                         op=body.get("opNumber"), rows=rows, attempt=attempt, replay=replay if replay > 1 else None):
            return self._send(operation, body)

    def _send(self, operation: str, body: dict) -> Any:
        """One HTTP request; raises typed errors; returns the decoded JSON body."""
        prefix = SERVICE_PREFIX["auth" if operation in AUTH_OPERATIONS else "form"]
        checked = operation in CHECKED_OPERATIONS
        self.call_counts[operation] += 1
        try:
            response = self.run(f"{prefix}{operation}.common.kdsvc", json=body)
        except KingdeeTransportError as exc:
            if checked and exc.status is not None and exc.status >= 500:
                raise KingdeeOutcomeUnknown(f"Kingdee {operation}: HTTP {exc.status} after sending",
                                            status=exc.status) from None
            raise
        except requests.ConnectionError as exc:
            sent = not isinstance(exc, requests.ConnectTimeout) and not _refused(exc)
            if checked and sent:
                raise KingdeeOutcomeUnknown(
                    f"Kingdee {operation}: connection lost after sending ({type(exc).__name__})") from None
            raise KingdeeTransportError(f"Kingdee {operation}: {type(exc).__name__}") from None
        except requests.Timeout as exc:
            if checked:
                raise KingdeeOutcomeUnknown(f"Kingdee {operation}: no answer within the timeout") from None
            raise KingdeeTransportError(f"Kingdee {operation}: {type(exc).__name__}") from None
        text = response.text
        if text.startswith("response_error:"):
            raise KingdeeError(f"Kingdee {operation}: {text[len('response_error:'):].strip()[:300]}")
        try:
            return json.loads(text)
        except ValueError:
            if checked:
                raise KingdeeOutcomeUnknown(f"Kingdee {operation}: answer is not JSON") from None
            raise KingdeeTransportError(f"Kingdee {operation}: answer is not JSON: {text[:100]!r}") from None

    def _login(self) -> None:
        s = self.settings
        if s.auth == "signature":
            self._logged_in = True  # every request is signed; the server opens a session by itself
            return
        if s.auth == "password":
            operation = "ValidateUser"
            body = {"acctID": s.acct_id, "username": s.username, "password": s.secret, "lcid": s.lcid}
        else:
            operation = "LoginByAppSecret"
            body = {"acctID": s.acct_id, "username": s.username, "appid": s.app_id, "appsecret": s.secret,
                    "lcid": s.lcid}
        reply = self._logged_send(operation, body)
        if not isinstance(reply, dict) or reply.get("LoginResultType") != 1:
            message = reply.get("Message") if isinstance(reply, dict) else None
            raise KingdeeAuthError(f"Kingdee {operation} refused for user {s.username!r} in data centre "
                                   f"{s.acct_id!r}: {message or 'LoginResultType is not 1'}")
        self._logged_in = True
        self.log.info("Kingdee: logged in as %s to data centre %s (%s)", s.username, s.acct_id, operation)

    def _call_once(self, operation: str, body: dict, attempt: int = 1) -> Any:
        """Log in if needed, send, and on session loss log in again and replay once."""
        for replay in (1, 2):
            if not self._logged_in:
                self._login()
            reply = self._logged_send(operation, body, attempt=attempt, replay=replay)
            status = response_status(reply)
            if not (status and status.get("MsgCode") == MSG_SESSION_LOST):
                return reply
            self._logged_in = False
            self.get_conn().cookies.clear()
            if replay == 1:
                self.log.warning("Kingdee %s: session lost (MsgCode 1); logging in again and replaying once",
                                 operation)
        raise error_from_status(status or {}, operation)

    def call(self, operation: str, body: dict) -> Any:
        """Call ``DynamicFormService.<operation>`` with retries of what is safe.

        :param operation: e.g. ``BatchSave``, ``ExecuteBillQuery``
        :param body: the JSON body (SDK-v8 named shape)
        """
        retrying = self.retrying(operation)
        attempts = itertools.count(1)
        return retrying(lambda: self._call_once(operation, body, next(attempts)))

    # -- operations --------------------------------------------------------------------------------------
    def batch_save(
        self,
        form_id: str,
        models: list[dict],
        *,
        pk_field: str | None = None,
        number_field: str = "FNumber",
        scope: str | None = None,
        auto_submit_and_audit: bool = False,
        status_field: str = DOCUMENT_STATUS,
        **options: Any,
    ) -> list[RowResult]:
        """BatchSave; one result per model, by ``DIndex``.

        If the outcome is unknown (timeout, lost connection or 5xx after sending) and ``pk_field`` is given,
        the numbers are looked up first and only the rows not saved are sent again; without ``pk_field``
        :class:`KingdeeOutcomeUnknown` is raised.

        :param form_id: e.g. ``BD_STOCK``
        :param models: the Model data packages
        :param pk_field: query key of the primary key (``FStockId``), enables the check after an unknown outcome
        :param number_field: the business key used for that check
        :param scope: a FilterString that narrows that check to where the numbers are unique (the organisation)
        :param auto_submit_and_audit: send ``IsAutoSubmitAndAudit`` (save, submit and audit in one transaction; a
            row whose submit or audit fails is not saved and comes back as a row error). The rows' status is asked
            back (``NeedReturnFields``) into :attr:`RowResult.document_status`, so a server that ignores the flag
            shows as rows not audited
        :param status_field: the document status field asked back
        :param options: further ``data`` parameters (``NeedUpDateFields``, ``NeedReturnFields``, ...)
        """
        if not models:
            return []
        if auto_submit_and_audit:
            asked = [f for f in options.get("NeedReturnFields") or [] if f not in (number_field, status_field)]
            options = {**options, "IsAutoSubmitAndAudit": True,
                       "NeedReturnFields": [number_field, status_field, *asked]}
        try:
            reply = self.call("BatchSave", {"formid": form_id, "data": {**options, "Model": models}})
        except KingdeeOutcomeUnknown:
            if pk_field is None:
                raise
            return self._save_after_unknown_outcome(form_id, models, pk_field, number_field, status_field, scope,
                                                    options)
        return returned_data(reply, self._row_results("BatchSave", reply, len(models)), number_field)

    def _save_after_unknown_outcome(
        self, form_id: str, models: list[dict], pk_field: str, number_field: str, status_field: str,
        scope: str | None, options: dict,
    ) -> list[RowResult]:
        numbers = [m.get(number_field) for m in models if not m.get(pk_field) and m.get(number_field)]
        where = in_filter(number_field, numbers) if numbers else ""
        if where and scope:
            where += f" and {scope}"
        self.log.warning("Kingdee BatchSave outcome unknown; checking %d numbers before resending", len(numbers))
        keys = [pk_field, number_field, status_field]
        saved = {str(r[number_field]): r for r in self.query(form_id, keys, where)} if where else {}
        results: dict[int, RowResult] = {}
        resend: list[int] = []
        for i, model in enumerate(models):
            number = str(model.get(number_field))
            if not model.get(pk_field) and number in saved:
                record = saved[number]
                results[i] = RowResult(index=i, ok=True, id=int(record[pk_field]), number=number,
                                       document_status=record.get(status_field) or None)
            else:
                resend.append(i)  # not saved yet, or an update by primary key (resending it is idempotent)
        again = self.batch_save(form_id, [models[i] for i in resend], number_field=number_field,
                                status_field=status_field, **options)
        for j, result in enumerate(again):
            results[resend[j]] = result.model_copy(update={"index": resend[j]})
        return [results[i] for i in range(len(models))]

    def _row_results(self, operation: str, reply: Any, count: int, *, id_order: list[int] | None = None,
                     number_order: list[str] | None = None) -> list[RowResult]:
        status = response_status(reply)
        if status is None:
            raise KingdeeError(f"Kingdee {operation}: unexpected answer {str(reply)[:200]}")
        if not status.get("IsSuccess") and status.get("MsgCode") not in (0, MSG_VALIDATION, None):
            raise error_from_status(status, operation)  # the call as a whole failed, not single rows
        if not status.get("IsSuccess") and not status.get("Errors") and not status.get("SuccessEntitys"):
            raise error_from_status(status, operation)
        return row_results(status, count, id_order=id_order, number_order=number_order)

    def _records_operation(
        self, operation: str, form_id: str, numbers: list[str] | None, ids: list[int] | None, extra: dict | None = None
    ) -> list[RowResult]:
        if not numbers and not ids:
            return []
        data: dict[str, Any] = {}
        if ids:
            data["Ids"] = ",".join(str(i) for i in ids)
        else:
            data["Numbers"] = [str(n) for n in numbers or []]
        body = {"formid": form_id, **(extra or {}), "data": data}
        reply = self.call(operation, body)
        return self._row_results(operation, reply, len(ids or numbers or []), id_order=list(ids) if ids else None,
                                 number_order=None if ids else data["Numbers"])

    def submit(self, form_id: str, numbers: list[str] | None = None, ids: list[int] | None = None) -> list[RowResult]:
        """Submit records by ids (preferred) or numbers; one result per record."""
        return self._records_operation("Submit", form_id, numbers, ids)

    def audit(self, form_id: str, numbers: list[str] | None = None, ids: list[int] | None = None) -> list[RowResult]:
        """Audit records by ids or numbers; one result per record."""
        return self._records_operation("Audit", form_id, numbers, ids)

    def unaudit(self, form_id: str, numbers: list[str] | None = None, ids: list[int] | None = None) -> list[RowResult]:
        """UnAudit records by ids or numbers; one result per record."""
        return self._records_operation("UnAudit", form_id, numbers, ids)

    def execute_operation(
        self, form_id: str, op_number: str, numbers: list[str] | None = None, ids: list[int] | None = None
    ) -> list[RowResult]:
        """``ExcuteOperation`` (the SDK's spelling, kept on the wire), e.g. ``Forbid`` / ``Enable``.

        Body ``{"formid", "opNumber", "data": {"Numbers": [...]}}`` (or ``"Ids": "1,2"``); one result per record.
        An unknown outcome raises :class:`KingdeeOutcomeUnknown` (:meth:`forbid` and :meth:`enable` settle it).
        """
        return self._records_operation("ExcuteOperation", form_id, numbers, ids, {"opNumber": op_number})

    def forbid(
        self, form_id: str, numbers: list[str] | None = None, *, ids: list[int] | None = None,
        pk_field: str | None = None, number_field: str = "FNumber",
    ) -> list[RowResult]:
        """Forbid (禁用, ``FForbidStatus`` A → B) records by numbers or ids; one result per record.

        After an unknown outcome the records' ``FForbidStatus`` is read: those already forbidden are done, the
        others are sent once more. Ids need ``pk_field`` (e.g. ``FStockId``) for that check.
        """
        return self._set_forbid_status(form_id, FORBID, FORBIDDEN, numbers, ids, pk_field, number_field)

    def enable(
        self, form_id: str, numbers: list[str] | None = None, *, ids: list[int] | None = None,
        pk_field: str | None = None, number_field: str = "FNumber",
    ) -> list[RowResult]:
        """Enable (反禁用, ``FForbidStatus`` B → A) records by numbers or ids; one result per record.

        An unknown outcome is settled as in :meth:`forbid`.
        """
        return self._set_forbid_status(form_id, ENABLE, ENABLED, numbers, ids, pk_field, number_field)

    def _set_forbid_status(
        self, form_id: str, op_number: str, wanted: str, numbers: list[str] | None, ids: list[int] | None,
        pk_field: str | None, number_field: str,
    ) -> list[RowResult]:
        try:
            return self.execute_operation(form_id, op_number, numbers, ids)
        except KingdeeOutcomeUnknown:
            key_field = pk_field if ids else number_field
            if key_field is None:
                raise
        keys = [str(k) for k in (ids or numbers or [])]
        self.log.warning("Kingdee %s outcome unknown; reading %s of %d records before resending",
                         op_number, FORBID_STATUS, len(keys))
        fields = list(dict.fromkeys([key_field, pk_field or key_field, number_field, FORBID_STATUS]))
        found = {str(r[key_field]): r for r in self.query(form_id, fields, in_filter(key_field, ids or keys))}
        results: dict[int, RowResult] = {}
        resend: list[int] = []
        for i, key in enumerate(keys):
            record = found.get(key)
            if record is not None and record.get(FORBID_STATUS) == wanted:
                record_id = record.get(pk_field) if pk_field else None
                results[i] = RowResult(index=i, ok=True, id=int(record_id) if record_id is not None else None,
                                       number=str(record.get(number_field)))
            else:
                resend.append(i)
        if resend:
            again = self.execute_operation(
                form_id, op_number, numbers=None if ids else [keys[i] for i in resend],
                ids=[int(ids[i]) for i in resend] if ids else None)
            for j, result in enumerate(again):
                results[resend[j]] = result.model_copy(update={"index": resend[j]})
        return [results[i] for i in range(len(keys))]

    def _query_pages(self, data: dict, limit: int) -> Iterator[list]:
        """ExecuteBillQuery pages by ``StartRow``, tolerant of the server's row limit (see ``SAFE_QUERY_LIMIT``)."""
        start = int(data.get("StartRow") or 0)
        top = int(data.get("TopRowCount") or 0)
        limit = max(1, min(limit, self.query_limit or limit))
        while True:
            try:
                reply = self.call("ExecuteBillQuery", {"data": {**data, "StartRow": start, "Limit": limit}})
                status = response_status(reply)
                if status is not None or not isinstance(reply, list):
                    raise error_from_status(status or {}, "ExecuteBillQuery")
            except KingdeeError as exc:
                if limit <= SAFE_QUERY_LIMIT or isinstance(exc, (KingdeeTransportError, KingdeeSessionLost)):
                    raise
                self.log.warning("Kingdee ExecuteBillQuery: Limit %d refused (%s); using %d from now on",
                                 limit, exc, SAFE_QUERY_LIMIT)
                self.query_limit = limit = SAFE_QUERY_LIMIT
                continue
            got = len(reply)
            done = bool(top) and start + got >= top
            if not done and got < limit and got in KNOWN_SERVER_LIMITS:  # known before the caller sees the page
                self.log.warning("Kingdee ExecuteBillQuery: asked %d rows, got %d; taking %d as the server's limit",
                                 limit, got, got)
                self.query_limit = limit = got
            yield reply
            start += got
            if done or got < limit:
                return

    def query_pages(
        self, form_id: str, field_keys: list[str] | str, filter_string: str = "", **options: Any
    ) -> Iterator[list[dict]]:
        """ExecuteBillQuery page by page; each 2-D row becomes a dict keyed by the field keys.

        :param form_id: e.g. ``BD_STOCK``
        :param field_keys: list or comma-separated text (``FStockId,FNumber,FUseOrgId.FNumber``)
        :param filter_string: SQL-like FilterString (:mod:`jikeyun_kingdee.kingdee_forms`)
        :param options: ``OrderString``, ``TopRowCount``, ``Limit`` (rows a page, default 2000), ``StartRow``
        """
        keys = [k.strip() for k in field_keys.split(",")] if isinstance(field_keys, str) else list(field_keys)
        limit = int(options.pop("Limit", SAFE_QUERY_LIMIT))
        data = {"FormId": form_id, "FieldKeys": ",".join(keys), "FilterString": filter_string,
                "OrderString": "", "TopRowCount": 0, **options}
        for page in self._query_pages(data, limit):
            yield [dict(zip(keys, row, strict=False)) for row in page]

    def query(self, form_id: str, field_keys: list[str] | str, filter_string: str = "", **options: Any) -> list[dict]:
        """ExecuteBillQuery, all pages (:meth:`query_pages`) as one list."""
        return [row for page in self.query_pages(form_id, field_keys, filter_string, **options) for row in page]

    def organisation_exists(self, number: str) -> bool:
        """Whether an organisation (ORG_Organizations) with this number exists."""
        return bool(self.query("ORG_Organizations", ["FOrgID", "FNumber"], equals_filter("FNumber", number)))

    def form_exists(self, form_id: str) -> bool:
        """Whether the business object (form) is known to the server.

        An unknown form answers MsgCode 4 "标识为“X”的业务对象不存在"; a known form without the probe field answers
        MsgCode 9 (unknown field). Both texts are tolerated loosely, as the exact wording is not documented.
        """
        try:
            self.query(form_id, ["FNumber"], TopRowCount=1, Limit=1)
        except KingdeeError as exc:
            text = " ".join(e.message for e in exc.errors)
            if ("业务对象" in text and "不存在" in text) or "business object" in text.lower():
                return False
            if exc.msg_code == 9 or "字段" in text:
                return True
            raise
        return True

    def test_connection(self) -> tuple[bool, str]:
        """Log in (or sign) and read one organisation."""
        try:
            self.query("ORG_Organizations", ["FNumber"], TopRowCount=1, Limit=1)
        except Exception as exc:
            return False, str(exc)
        return True, f"Connected to Kingdee data centre {self.settings.acct_id} as {self.settings.username}"


def _refused(exc: requests.ConnectionError) -> bool:
    """Whether the connection was refused or never opened (so the request was never sent)."""
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return isinstance(reason, NewConnectionError)
