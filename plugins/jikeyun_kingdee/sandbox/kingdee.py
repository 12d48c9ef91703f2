"""Kingdee K3Cloud WebAPI sandbox: login flows, header signature, BD_STOCK storage, BatchSave, Submit/Audit,
ExcuteOperation Forbid/Enable and ExecuteBillQuery.

Where the published protocol is unsure, the sandbox does what the evidence suggests and lets a test choose
otherwise (see :class:`KingdeeSandbox`): partial BatchSave results, Save on an audited record, what
``IsAutoSubmitAndAudit`` does on an update, whether a server knows that flag at all, whether ``NeedReturnData``
echoes the asked fields, and what happens to an ExecuteBillQuery ``Limit`` above the server's row limit. Message
texts follow captured real answers where there are any; the others (marked "wording not verified") are the
sandbox's own.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import itertools
import json
import re
import secrets
import threading
import time
import uuid
from collections import Counter
from typing import Any

from jikeyun_kingdee.hooks.kingdee import signature_headers
from jikeyun_kingdee.sandbox._http import Reply, Request, SandboxServer

SESSION_LOST_MESSAGE = "会话信息已丢失，请重新登录"
SERVICE_RE = re.compile(
    r"^/(?:k3cloud/)?kingdee\.bos\.webapi\.servicesstub\.(authservice|dynamicformservice)\.(\w+)\.common\.kdsvc$"
)
OPERATIONS = {name.lower(): name for name in (
    "ValidateUser", "LoginByAppSecret", "LoginBySign", "Save", "BatchSave", "Submit", "Audit", "UnAudit", "View",
    "Delete", "ExecuteBillQuery", "BillQuery", "ExcuteOperation",
)}
# Positional parameter order per operation ({"parameters": [...]} bodies, JSDK / .NET style).
POSITIONAL = {
    "ValidateUser": ("acctid", "username", "password", "lcid"),
    "LoginByAppSecret": ("acctid", "username", "appid", "appsecret", "lcid"),
    "LoginBySign": ("acctid", "username", "appid", "timestamp", "sign", "lcid"),
    "ExecuteBillQuery": ("data",),
    "BillQuery": ("data",),
    "ExcuteOperation": ("formid", "opnumber", "data"),
}
WRITE_STAGES = ("save", "submit", "audit", "unaudit", "forbid", "enable", "delete")  # where fail_rows can strike
AUTO_AUDIT_MODES = ("transaction", "ignore")  # creates with IsAutoSubmitAndAudit: honoured, or flag unknown
AUTO_AUDIT_ON_UPDATE = ("refuse", "transaction", "ignore")
OVER_LIMIT = ("refuse", "truncate")  # ExecuteBillQuery with Limit above the server's row limit
STOCK_PROPERTIES = {"1", "2", "3", "4", "5"}  # 普通, 车间, 供应商, 客户, 第三方仓储
STOCK_FIELDS = ("FStockId", "FNumber", "FName", "FStockProperty", "FAllowMinusQty", "FCreateOrgId", "FUseOrgId",
                "FDescription", "FDocumentStatus", "FForbidStatus")
ORG_FIELDS = ("FOrgID", "FNumber", "FName", "FDocumentStatus", "FForbidStatus")
FORMS = {"BD_STOCK": STOCK_FIELDS, "ORG_Organizations": ORG_FIELDS}


def _status(errors: list[dict] | None = None, successes: list[dict] | None = None, msg_code: int = 11) -> dict:
    errors = errors or []
    return {"ResponseStatus": {
        "ErrorCode": 500 if errors else 0, "IsSuccess": not errors, "Errors": errors,
        "SuccessEntitys": successes or [], "SuccessMessages": [], "MsgCode": msg_code if errors else 0,
    }}


def _error(message: str, *, field: str | None = None, index: int = 0) -> dict:
    return {"FieldName": field, "Message": message, "DIndex": index}


def _failure(message: str, msg_code: int, field: str | None = None) -> dict:
    return {"Result": _status([_error(message, field=field)], msg_code=msg_code)}


def _truthy(value: Any) -> bool:
    return str(value).strip().lower() in ("true", "1")


def _ref_number(value: Any) -> str:
    """A base-data reference ``{"FNumber": x}`` (or a bare number) as the number text."""
    if isinstance(value, dict):
        value = next((v for k, v in value.items() if k.lower() == "fnumber"), "")
    return "" if value is None else str(value)


class KingdeeFault(Exception):
    """A request the sandbox answers with a Kingdee failure body (HTTP 200)."""

    def __init__(self, message: str, msg_code: int, field: str | None = None) -> None:
        super().__init__(message)
        self.msg_code, self.field = msg_code, field


# -- FilterString -------------------------------------------------------------------------------------------
_CLAUSE_RE = re.compile(
    r"^\s*\(?\s*([\w.]+)\s*(?:(=|<>|!=)\s*('(?:[^']|'')*'|-?\d+)|(not\s+in|in)\s*\(([^)]*)\))\s*\)?\s*$", re.I
)
_LITERAL_RE = re.compile(r"'((?:[^']|'')*)'|(-?\d+)")


def _split_and(filter_string: str) -> list[str]:
    """Split on ``and`` outside quotes."""
    parts, current, quoted = [], [], False
    tokens = re.split(r"('|\s+and\s+)", filter_string, flags=re.I)
    for token in tokens:
        if token == "'":
            quoted = not quoted
            current.append(token)
        elif not quoted and re.fullmatch(r"\s+and\s+", token or "", re.I):
            parts.append("".join(current))
            current = []
        else:
            current.append(token or "")
    parts.append("".join(current))
    return [p for p in parts if p.strip()]


def parse_filter(filter_string: str) -> list[tuple[str, str, list[str]]]:
    """Parse the FilterString forms the hook uses: ``F = 'v'``, ``F <> 'v'``, ``F in ('a','b')`` joined by ``and``.

    Returns (field, operator, values) triples; raises :class:`KingdeeFault` for anything else.
    """
    clauses = []
    for part in _split_and(filter_string or ""):
        match = _CLAUSE_RE.match(part)
        if not match:
            raise KingdeeFault(f"过滤条件语法错误（沙箱不支持）：{part.strip()}", 8)
        field, op, literal, in_op, in_list = match.groups()
        source = literal if op else in_list
        values = [q.replace("''", "'") if q or n is None else n for q, n in _LITERAL_RE.findall(source)]
        clauses.append((field, (op or in_op).lower().replace("!=", "<>").replace("  ", " "), values))
    return clauses


def _matches(value: Any, op: str, values: list[str]) -> bool:
    text = "" if value is None else ("true" if value is True else "false" if value is False else str(value))
    hit = text.lower() in {v.lower() for v in values}
    return hit if op in ("=", "in") else not hit


class KingdeeSandbox(SandboxServer):
    """A loopback Kingdee K3Cloud WebAPI with BD_STOCK and ORG_Organizations.

    :param acct_id: data-centre id accepted by logins and signatures
    :param username: the one WebAPI user
    :param password: its password (ValidateUser)
    :param app_id: third-party app id (LoginByAppSecret, header signature)
    :param app_secret: the app secret
    :param organisations: organisation numbers that exist
    :param session_max_requests: a session expires after this many requests (None = never)
    :param session_idle_seconds: a session expires after this idle time (None = never)
    :param reject_save_on_audited: Save on an audited (C) record fails with MsgCode 11 (undocumented upstream)
    :param auto_audit: what ``IsAutoSubmitAndAudit`` does on creates. ``transaction`` (the former doc text): save,
        submit and audit in one transaction, a row whose submit or audit fails is not saved and comes back as a row
        error; ``ignore``: a server that does not know the flag saves the row and leaves it created (A)
    :param auto_audit_on_update: the flag on an update (a save with the primary key). A client comment says it
        must not be true on updates, the doc says nothing: ``refuse`` answers a row error (default), ``transaction``
        saves, submits and audits as on creates, ``ignore`` saves and leaves the status alone
    :param echo_return_fields: answer ``NeedReturnFields`` with ``NeedReturnData`` (one entry per saved row)
    :param query_limit: the most rows one ExecuteBillQuery returns (the older doc: 2000, today's: 10000)
    :param query_over_limit: a ``Limit`` above ``query_limit`` is refused (MsgCode 8, as older servers do) or the
        page is cut to ``query_limit`` silently (``truncate``)
    :param row_latency: seconds added per row written (BatchSave/Save models, Submit/Audit/UnAudit/Forbid/Enable
        records), on top of the per-call ``faults.latency``; for benchmarks
    """

    name = "kingdee"

    def __init__(
        self,
        *,
        acct_id: str = "5db25ac8d2b819",
        username: str = "webapi",
        password: str = "Kingdee@123",
        app_id: str = "204399_72epSbtEQMC92Vwt2d3LRa9LRqSc1tqJ",
        app_secret: str = "fb7d46647ac346dbb5fcd45b65512a45",
        organisations: tuple[str, ...] | list[str] = ("100", "I0134"),
        session_max_requests: int | None = None,
        session_idle_seconds: float | None = None,
        reject_save_on_audited: bool = True,
        auto_audit: str = "transaction",
        auto_audit_on_update: str = "refuse",
        echo_return_fields: bool = True,
        query_limit: int = 2000,
        query_over_limit: str = "refuse",
        row_latency: float = 0.0,
        lcid: int = 2052,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        super().__init__(host=host, port=port)
        self.acct_id, self.username, self.password = acct_id, username, password
        self.app_id, self.app_secret, self.lcid = app_id, app_secret, lcid
        self.session_max_requests = session_max_requests
        self.session_idle_seconds = session_idle_seconds
        self.reject_save_on_audited = reject_save_on_audited
        self._lock = threading.RLock()
        self.auto_audit, self.auto_audit_on_update = auto_audit, auto_audit_on_update
        self.echo_return_fields = echo_return_fields
        self.query_limit, self.query_over_limit = query_limit, query_over_limit
        self.row_latency = row_latency
        self.configure(**self.configure())  # validates the choices above
        self.rows_per_call: list[tuple[str, int]] = []  # (Save | BatchSave, models) per save call
        self.rows_written: Counter[str] = Counter()  # rows sent to writes by operation (ExcuteOperation: Forbid …)
        self._sessions: dict[str, dict[str, float]] = {}
        self._ids = itertools.count(100001)
        self._stocks: dict[int, dict[str, Any]] = {}
        self._orgs: dict[str, int] = {}
        self._failing_rows: dict[tuple[str, str], tuple[str, int | None]] = {}  # (stage, number) → (message, times)
        self._concurrent: list[dict] = []
        self._after_write: list[tuple[int | None, float]] = []
        self.set_organisations(list(organisations))

    # -- scripting -------------------------------------------------------------------------------------
    def stocks(self, org: str | None = None) -> list[dict]:
        """Stored BD_STOCK records (copies), optionally of one use organisation, ordered by id."""
        with self._lock:
            return [dict(r) for _, r in sorted(self._stocks.items()) if org is None or r["FUseOrgId"] == org]

    def set_organisations(self, numbers: list[str]) -> None:
        """Replace the set of existing organisations."""
        with self._lock:
            self._orgs = {str(n): i for i, n in enumerate(numbers, start=1)}

    def count_sessions(self) -> int:
        """Number of sessions opened and not yet expired."""
        with self._lock:
            return len(self._sessions)

    def expire_sessions(self) -> None:
        """Drop every session: the next request without a valid signature gets MsgCode 1."""
        with self._lock:
            self._sessions.clear()

    def fail_rows(
        self, numbers: list[str], message: str = "沙箱脚本：该行校验失败", times: int | None = 1, stage: str = "save"
    ) -> None:
        """Rows with these FNumbers fail at ``stage`` the next ``times`` times (None = until reset).

        ``save``: a validation error of the row (FieldName ``FNumber``). ``submit`` / ``audit``: the Submit or Audit
        of the record fails (FieldName empty) — also inside a save with ``IsAutoSubmitAndAudit``, which then saves
        nothing of that row. ``unaudit`` / ``forbid`` / ``enable``: that operation fails for the record.
        """
        if stage not in WRITE_STAGES:
            raise ValueError(f"stage {stage!r} is not one of {WRITE_STAGES}")
        with self._lock:
            for number in numbers:
                self._failing_rows[(stage, str(number))] = (message, times)

    def configure(self, **settings: Any) -> dict[str, Any]:
        """Change behaviour settings (the constructor's ``auto_audit`` … ``row_latency``); returns them all."""
        choices = {"auto_audit": AUTO_AUDIT_MODES, "auto_audit_on_update": AUTO_AUDIT_ON_UPDATE,
                   "query_over_limit": OVER_LIMIT}
        kinds: dict[str, tuple[type, ...]] = {
            "echo_return_fields": (bool,), "query_limit": (int,), "row_latency": (float, int),
            "reject_save_on_audited": (bool,), "session_max_requests": (int, type(None)),
            "session_idle_seconds": (float, int, type(None))}
        with self._lock:
            for name, value in settings.items():
                if name in choices and value not in choices[name]:
                    raise ValueError(f"{name} must be one of {choices[name]}, not {value!r}")
                if name not in choices and name not in kinds:
                    raise ValueError(f"unknown setting {name!r}; known: {sorted([*choices, *kinds])}")
                if name in kinds and not isinstance(value, kinds[name]):
                    raise ValueError(f"{name}: {value!r} is not {' or '.join(t.__name__ for t in kinds[name])}")
                setattr(self, name, float(value) if name == "row_latency" else value)
            return {name: getattr(self, name) for name in [*choices, *kinds]}

    def edit_stocks(self, numbers: list[str], org: str | None = None, **changes: Any) -> int:
        """Change stored records by hand (as a user in the Kingdee client would): e.g. ``FName``,
        ``FDocumentStatus`` or ``FForbidStatus``; returns how many records changed."""
        unknown = set(changes) - set(STOCK_FIELDS) | ({"FStockId"} & set(changes))
        if unknown:
            raise ValueError(f"cannot edit {sorted(unknown)}")
        with self._lock:
            records = [r for r in self._stocks.values() if r["FNumber"] in set(map(str, numbers))
                       and (org is None or r["FUseOrgId"] == org)]
            for record in records:
                record.update({k: _truthy(v) if k == "FAllowMinusQty" else str(v) for k, v in changes.items()})
            return len(records)

    def delete_stocks(self, numbers: list[str], org: str | None = None) -> int:
        """Delete stored records by hand, whatever their status; returns how many."""
        with self._lock:
            doomed = [i for i, r in self._stocks.items() if r["FNumber"] in set(map(str, numbers))
                      and (org is None or r["FUseOrgId"] == org)]
            for stock_id in doomed:
                del self._stocks[stock_id]
            return len(doomed)

    def add_stocks(self, rows: list[dict], *, status: str = "A", on_next_save: bool = False) -> list[int]:
        """Insert records directly (a concurrent writer); with ``on_next_save`` just before the next Save/BatchSave.

        Rows are BatchSave models (``FUseOrgId`` may be ``{"FNumber": x}`` or the number).
        """
        with self._lock:
            if on_next_save:
                self._concurrent.extend(dict(r, FDocumentStatus=status) for r in rows)
                return []
            return [self._insert(dict(r), status) for r in rows]

    def fault_after_write(self, *, status: int | None = None, delay: float = 0.0, count: int = 1) -> None:
        """The next ``count`` Save/BatchSave/ExcuteOperation calls are applied, then answered late (``delay``) or
        with ``status``."""
        with self._lock:
            self._after_write.extend([(status, float(delay))] * count)

    def reset_counts(self) -> None:
        """Zero the call counters, ``rows_per_call`` and ``rows_written``."""
        with self._lock:
            self.rows_per_call.clear()
            self.rows_written.clear()
        with self._calls_lock:
            self.calls.clear()

    def reset(self) -> None:
        """Forget stocks, sessions, scripted faults and counters."""
        with self._lock:
            self._stocks.clear()
            self._sessions.clear()
            self._failing_rows.clear()
            self._concurrent.clear()
            self._after_write.clear()
        self.faults.reset()
        self.reset_counts()

    def control(self, command: str, payload: dict[str, Any]) -> Any:
        commands = {
            "stocks": lambda: self.stocks(payload.get("org")),
            "expire-sessions": self.expire_sessions,
            "count-sessions": self.count_sessions,
            "fail-rows": lambda: self.fail_rows(**payload),
            "configure": lambda: self.configure(**payload),
            "row-latency": lambda: self.configure(row_latency=float(payload["seconds"]))["row_latency"],
            "edit-stocks": lambda: self.edit_stocks(**payload),
            "delete-stocks": lambda: self.delete_stocks(**payload),
            "rows-written": lambda: dict(self.rows_written),
            "add-stocks": lambda: self.add_stocks(**payload),
            "fault-after-write": lambda: self.fault_after_write(**payload),
            "organisations": lambda: self.set_organisations(payload["numbers"]),
            "rows-per-call": lambda: list(self.rows_per_call),
            "reset": self.reset,
        }
        if command not in commands:
            raise KeyError(f"unknown kingdee sandbox command {command!r}; known: {sorted(commands)}")
        return commands[command]()

    # -- protocol --------------------------------------------------------------------------------------
    def handle(self, request: Request) -> Reply:
        match = SERVICE_RE.match(request.path.split("?")[0].lower())
        operation = OPERATIONS.get(match.group(2)) if match else None
        if match is None or request.method != "POST" or operation is None:
            return Reply(status=404, body="<html>404 - service not found</html>")
        self.count(operation)
        try:
            params = self._parameters(operation, request.body)
        except (ValueError, TypeError) as exc:
            problem = json.dumps({"Message": f"请求数据格式错误: {exc}"}, ensure_ascii=False)
            return Reply(body=f"response_error:{problem}")
        if match.group(1) == "authservice":
            return self._login(operation, params)
        body: Any
        session_id, cookies = self._session_for(request)
        if session_id is None:
            if cookies is None:
                return Reply(status=401, body="Fail to verify thirty passport")  # wrong AcctID; status unverified
            body = _failure(SESSION_LOST_MESSAGE, 1)
            return Reply(body=[[body]] if operation in ("ExecuteBillQuery", "BillQuery") else body, cookies=cookies)
        written = 0
        try:
            with self._lock:
                body = getattr(self, f"_op_{operation.lower()}")(params)
                written = self._count_written(operation, params)
        except KingdeeFault as fault:
            body = _failure(str(fault), fault.msg_code, fault.field)
            if operation in ("ExecuteBillQuery", "BillQuery"):
                body = [[body]]
        if written and self.row_latency:
            time.sleep(self.row_latency * written)
        reply = Reply(body=body, cookies=cookies or [])
        if operation in ("Save", "BatchSave", "ExcuteOperation"):
            reply = self._after_write_fault(reply)
        return reply

    def _count_written(self, operation: str, params: dict[str, Any]) -> int:
        """Rows a write call touched (for ``rows_written`` and ``row_latency``); 0 for reads."""
        data = params.get("data") or {}
        if operation in ("Save", "BatchSave"):
            models = data.get("model")
            rows = len(models) if isinstance(models, list) else 1
        elif operation in ("Submit", "Audit", "UnAudit", "Delete", "ExcuteOperation"):
            ids, numbers = data.get("ids"), data.get("numbers")
            keys = ids.split(",") if isinstance(ids, str) and ids.strip() else ids or numbers or []
            rows = len(keys)
        else:
            return 0
        if operation == "ExcuteOperation":
            operation = str(params.get("opnumber") or "").capitalize()
        self.rows_written[operation] += rows
        return rows

    def _after_write_fault(self, reply: Reply) -> Reply:
        with self._lock:
            if not self._after_write:
                return reply
            status, delay = self._after_write.pop(0)
        self.count("fault:after-write")
        time.sleep(delay)
        return Reply(status=status, body="<html>upstream error after write</html>") if status else reply

    @staticmethod
    def _parameters(operation: str, raw: bytes) -> dict[str, Any]:
        """Accept the three body shapes: named object, ``data`` as a JSON string, positional ``parameters``."""
        body = json.loads(raw or b"{}")
        if not isinstance(body, dict):
            raise ValueError("body is not a JSON object")
        params = {k.lower(): v for k, v in body.items()}
        if "parameters" in params:
            positional = params.pop("parameters")
            if isinstance(positional, str):
                positional = json.loads(positional)
            names = POSITIONAL.get(operation, ("formid", "data"))
            params.update(zip(names, positional, strict=False))
        if isinstance(params.get("data"), str):
            params["data"] = json.loads(params["data"]) if params["data"].strip() else {}
        if isinstance(params.get("data"), dict):
            params["data"] = {k.lower(): v for k, v in params["data"].items()}
        return params

    # -- sessions --------------------------------------------------------------------------------------
    def _new_session(self) -> tuple[str, list[str]]:
        sid = str(uuid.uuid4())
        with self._lock:
            self._sessions[sid] = {"requests": 0, "last": time.monotonic()}
        return sid, [f"kdservice-sessionid={sid}; path=/",
                     f"ASP.NET_SessionId={secrets.token_hex(12)}; path=/; HttpOnly"]

    def _session_alive(self, sid: str) -> bool:
        with self._lock:
            session = self._sessions.get(sid)
            if session is None:
                return False
            now = time.monotonic()
            expired = (self.session_max_requests is not None and session["requests"] >= self.session_max_requests) or (
                self.session_idle_seconds is not None and now - session["last"] > self.session_idle_seconds)
            if expired:
                del self._sessions[sid]
                return False
            session["requests"] += 1
            session["last"] = now
            return True

    def _session_for(self, request: Request) -> tuple[str | None, list[str] | None]:
        """(session id, cookies to set); (None, cookies) = session lost; (None, None) = wrong data centre."""
        sid = request.cookies.get("kdservice-sessionid") or request.headers.get("kdservice-sessionid") \
            or request.headers.get("sid")
        if sid and self._session_alive(sid):
            return sid, []
        verdict = self._verify_signature(request)
        if verdict == "bad-acct":
            return None, None
        if verdict == "ok":  # signed request without a live session: open one silently, as observed on-premises
            sid, cookies = self._new_session()
            self._session_alive(sid)
            return sid, cookies
        _, cookies = self._new_session()  # the real server sets a (useless) SID cookie even then
        return None, cookies

    def _verify_signature(self, request: Request) -> str:
        headers = request.headers
        if "x-kd-signature" not in headers:
            return "absent"
        try:
            acct_id, username, lcid, org_num = base64.b64decode(headers.get("x-kd-appdata", "")).decode().split(",")
        except ValueError:
            return "bad"
        if acct_id != self.acct_id:
            return "bad-acct"
        expected = signature_headers(
            request.path.split("?")[0], acct_id=self.acct_id, username=self.username, app_id=self.app_id,
            app_secret=self.app_secret, lcid=int(lcid) if lcid.isdigit() else 0, org_num=int(org_num or 0),
            timestamp=headers.get("x-api-timestamp", ""), nonce=headers.get("x-api-nonce", ""),
        )
        # Timestamp skew is not checked: on-premises servers were seen to accept ±24 h; the public gateway would not.
        good = (username == self.username and headers.get("x-kd-appkey") == self.app_id
                and all(hmac.compare_digest(headers.get(k.lower(), ""), expected[k])
                        for k in ("X-Kd-Signature", "X-Api-Signature", "X-Api-ClientID")))
        return "ok" if good else "bad"

    def _login(self, operation: str, params: dict[str, Any]) -> Reply:
        acct, user = str(params.get("acctid", "")), str(params.get("username", ""))
        if operation == "ValidateUser":
            good = params.get("password") == self.password
        elif operation == "LoginByAppSecret":
            good = params.get("appid") == self.app_id and params.get("appsecret") == self.app_secret
        else:
            expected = "".join(sorted([acct, user, self.app_id, self.app_secret, str(params.get("timestamp", ""))]))
            good = params.get("appid") == self.app_id and params.get("sign") == _sha256(expected)
        if not (good and acct == self.acct_id and user == self.username):
            return Reply(body={"Message": "用户名或密码错误！", "MessageCode": "", "LoginResultType": 0,
                               "Context": None, "FormId": None})
        sid, cookies = self._new_session()
        context = {"UserLocale": "zh-CN", "DBid": self.acct_id, "SessionId": cookies[1].split(";")[0].split("=")[1],
                   "UserId": 100008, "UserName": self.username, "DataCenterName": "沙箱数据中心",
                   "UserToken": str(uuid.uuid4()), "CurrentOrganizationInfo": {"ID": 1, "Name": "沙箱组织"}}
        return Reply(body={"Message": None, "MessageCode": "CheckPasswordPolicy", "LoginResultType": 1,
                           "Context": context, "KDSVCSessionId": sid, "FormId": None, "IsSuccessByAPI": True},
                     cookies=cookies)

    # -- BD_STOCK storage ------------------------------------------------------------------------------
    @staticmethod
    def _form(params: dict[str, Any], writable: bool = True) -> str:
        form = str(params.get("formid") or (params.get("data") or {}).get("formid") or "")
        if not form:
            raise KingdeeFault("表单标识为空", 5)
        known = {f.lower(): f for f in FORMS}
        if form.lower() not in known:
            # Text as captured from a production server (MsgCode 4); wording per version not verified.
            raise KingdeeFault(f"标识为“{form}”的业务对象不存在，或者被删除。", 4)
        form = known[form.lower()]
        if writable and form != "BD_STOCK":
            raise KingdeeFault(f"沙箱不支持写入 {form}", 12)
        return form

    def _insert(self, model: dict, status: str) -> int:
        stock_id = next(self._ids)
        self._stocks[stock_id] = {
            "FStockId": stock_id, "FNumber": str(model.get("FNumber", "")), "FName": str(model.get("FName", "")),
            "FStockProperty": str(model.get("FStockProperty", "1")),
            "FAllowMinusQty": _truthy(model.get("FAllowMinusQty", False)),
            "FCreateOrgId": _ref_number(model.get("FCreateOrgId")),
            "FUseOrgId": _ref_number(model.get("FUseOrgId") or model.get("FCreateOrgId")),
            "FDescription": str(model.get("FDescription", "")),
            "FDocumentStatus": status, "FForbidStatus": "A",
        }
        return stock_id

    def _validate(self, model: dict, existing: dict | None, batch_numbers: dict[tuple[str, str], int]) -> dict | None:
        """The first validation error of one model (as an Errors[] entry without DIndex), or None."""
        merged = {**(existing or {}), **model}
        number = str(merged.get("FNumber") or "")
        scripted = self._scripted_failure("save", number)
        if scripted:
            return _error(scripted, field="FNumber")
        if existing is None and model.get("FStockId") not in (None, 0, "0", ""):
            return _error(f"内码为{model.get('FStockId')}的仓库不存在", field="FStockId")
        if existing is not None and existing["FDocumentStatus"] == "C" and self.reject_save_on_audited:
            return _error(f"编码为“{existing['FNumber']}”的仓库，数据已审核，不能修改！")
        for field, label in (("FNumber", "编码"), ("FName", "名称"), ("FStockProperty", "仓库属性"),
                             ("FCreateOrgId", "创建组织"), ("FUseOrgId", "使用组织")):
            value = merged.get(field)
            if (_ref_number(value) if field.endswith("OrgId") else str(value or "")).strip() == "":
                return _error(f"字段“{label}”是必填项", field=field)
        for field in ("FCreateOrgId", "FUseOrgId"):
            org = _ref_number(merged[field])
            if org not in self._orgs:
                return _error(f"字段“{field}”的值“{org}”在系统中不存在或未审核", field=field)
        if str(merged["FStockProperty"]) not in STOCK_PROPERTIES:
            return _error(f"仓库属性的值“{merged['FStockProperty']}”不在枚举范围内", field="FStockProperty")
        org = _ref_number(merged["FUseOrgId"])
        own_id = existing["FStockId"] if existing else None
        taken = any(r["FNumber"] == number and r["FUseOrgId"] == org and r["FStockId"] != own_id
                    for r in self._stocks.values()) or (number, org) in batch_numbers
        if taken:
            return _error(f"违反字段唯一性要求：编码唯一。[{number}]在当前系统中已经被使用。", field="FNumber")
        return None

    def _scripted_failure(self, stage: str, number: str) -> str | None:
        """The message of a scripted failure of ``number`` at ``stage`` (consuming one of its times), or None."""
        scripted = self._failing_rows.get((stage, number))
        if not scripted:
            return None
        message, times = scripted
        if times is not None:
            if times <= 1:
                del self._failing_rows[(stage, number)]
            else:
                self._failing_rows[(stage, number)] = (message, times - 1)
        return message

    def _approval_failure(self, number: str) -> str | None:
        """Inside a save with IsAutoSubmitAndAudit: the message of a failing submit or audit (wording not verified)."""
        for stage, label in (("submit", "提交"), ("audit", "审核")):
            message = self._scripted_failure(stage, number)
            if message:
                return f"{label}失败：{message}"
        return None

    def _save_models(self, params: dict[str, Any], operation: str) -> tuple[list[dict], list[dict]]:
        self._form(params)
        data = params.get("data") or {}
        models = data.get("model")
        models = [models] if operation == "Save" and isinstance(models, dict) else models
        if not isinstance(models, list) or not models:
            raise KingdeeFault("data数据包中的参数Model的值不能为空。", 8)
        self.rows_per_call.append((operation, len(models)))
        for row in self._concurrent:  # a concurrent writer got there first
            self._insert(row, row.pop("FDocumentStatus", "A"))
        self._concurrent.clear()
        update_fields = data.get("needupdatefields") or []
        flag = _truthy(data.get("isautosubmitandaudit", False))
        successes, errors = [], []
        batch_numbers: dict[tuple[str, str], int] = {}
        for index, model in enumerate(models):
            model = dict((model or {}).items())
            pk = model.get("FStockId")
            existing = self._stocks.get(int(str(pk))) if str(pk or "0").isdigit() and int(str(pk or 0)) else None
            if existing is not None and update_fields:
                model = {k: v for k, v in model.items() if k in update_fields or k == "FStockId"}
            error = self._validate(model, existing, batch_numbers)
            mode = (self.auto_audit if existing is None else self.auto_audit_on_update) if flag else "ignore"
            if error is None and mode == "refuse":
                error = _error("更新时不能启用IsAutoSubmitAndAudit（沙箱：措辞未经核实）")
            if error is None and mode == "transaction":  # save, submit and audit commit or roll back together
                failed = self._approval_failure(str({**(existing or {}), **model}.get("FNumber") or ""))
                error = _error(failed) if failed else None
            if error is not None:
                errors.append(error | {"DIndex": index})
                continue
            if existing is None:
                stock_id = self._insert(model, "C" if mode == "transaction" else "A")
            else:
                stock_id = existing["FStockId"]
                for key, value in model.items():
                    if key in ("FCreateOrgId", "FUseOrgId"):
                        existing[key] = _ref_number(value)
                    elif key == "FAllowMinusQty":
                        existing[key] = _truthy(value)
                    elif key in STOCK_FIELDS and key not in ("FStockId", "FDocumentStatus", "FForbidStatus"):
                        existing[key] = str(value)
                if mode == "transaction":
                    existing["FDocumentStatus"] = "C"
            record = self._stocks[stock_id]
            batch_numbers[(record["FNumber"], record["FUseOrgId"])] = index
            successes.append({"Id": stock_id, "Number": record["FNumber"], "DIndex": index})
        return successes, errors

    def _return_data(self, params: dict[str, Any], successes: list[dict]) -> list[dict]:
        """``NeedReturnData``: the asked ``NeedReturnFields`` of each saved row (``{}`` each when not asked)."""
        fields = (params.get("data") or {}).get("needreturnfields") or []
        if not self.echo_return_fields or not fields:
            return [{} for _ in successes]
        known = {k.lower(): k for k in STOCK_FIELDS}
        return [{f: self._stocks[s["Id"]].get(known.get(str(f).lower(), ""), None) for f in fields} for s in successes]

    def _op_batchsave(self, params: dict[str, Any]) -> dict:
        successes, errors = self._save_models(params, "BatchSave")
        return {"Result": {**_status(errors, successes), "NeedReturnData": self._return_data(params, successes)}}

    def _op_save(self, params: dict[str, Any]) -> dict:
        successes, errors = self._save_models(params, "Save")
        first = successes[0] if successes else {"Id": "", "Number": ""}
        return {"Result": {**_status(errors, successes), "Id": first["Id"], "Number": first["Number"],
                           "NeedReturnData": self._return_data(params, successes) or [{}]}}

    def _targets(self, params: dict[str, Any]) -> list[tuple[str, dict | None]]:
        """(key as requested, record or None) for ``Ids`` (comma text or list) or ``Numbers``."""
        self._form(params)
        data = params.get("data") or {}
        ids = data.get("ids")
        if ids not in (None, "", []):
            keys = [str(i).strip() for i in (ids.split(",") if isinstance(ids, str) else ids) if str(i).strip()]
            return [(k, self._stocks.get(int(k)) if k.isdigit() else None) for k in keys]
        numbers = [str(n) for n in data.get("numbers") or []]
        if not numbers:
            raise KingdeeFault("data数据包中的参数Numbers或Ids的值不能为空。", 8)
        # A number is unique per use organisation only: ``UseOrgId`` (its internal id, or here also its number)
        # narrows the search; without it the sandbox takes the first record with the number.
        org = str(data.get("useorgid") or "")
        by_number: dict[str, dict] = {}
        for _, record in sorted(self._stocks.items()):
            if not org or org in (record["FUseOrgId"], str(self._orgs.get(record["FUseOrgId"]))):
                by_number.setdefault(record["FNumber"], record)
        return [(n, by_number.get(n)) for n in numbers]

    def _transition(self, params: dict[str, Any], allowed: dict[str, str], stage: str, field: str,
                    refusals: dict[str, str]) -> dict:
        """Move ``field`` of each target record along ``allowed``; a row error per record that cannot move.

        :param refusals: status → the message's tail when a record in that status cannot move
        """
        successes, errors = [], []
        for index, (key, record) in enumerate(self._targets(params)):
            if record is None:
                errors.append(_error(f"单据“{key}”不存在或已被删除", index=index))
                continue
            scripted = self._scripted_failure(stage, record["FNumber"])
            if scripted:
                errors.append(_error(scripted, index=index))
            elif record[field] not in allowed:
                state = refusals.get(record[field], "当前状态不允许此操作。")
                errors.append(_error(f"编码为“{record['FNumber']}”的仓库，{state}", index=index))
            else:
                record[field] = allowed[record[field]]
                successes.append({"Id": record["FStockId"], "Number": record["FNumber"], "DIndex": index})
        return {"Result": _status(errors, successes)}

    def _op_submit(self, params: dict[str, Any]) -> dict:
        return self._transition(params, {"Z": "B", "A": "B", "D": "B"}, "submit", "FDocumentStatus",
                                {"C": "单据已经审核！", "B": "单据已经提交！"})

    def _op_audit(self, params: dict[str, Any]) -> dict:
        return self._transition(params, {"B": "C"}, "audit", "FDocumentStatus",
                                {"C": "单据已经审核！", "A": "单据未提交，不能审核。", "D": "单据未提交，不能审核。"})

    def _op_unaudit(self, params: dict[str, Any]) -> dict:
        return self._transition(params, {"C": "D"}, "unaudit", "FDocumentStatus", {})

    def _op_excuteoperation(self, params: dict[str, Any]) -> dict:
        """Forbid (禁用, FForbidStatus A → B) and Enable (反禁用, B → A); refusal texts: wording not verified."""
        op = str(params.get("opnumber") or "").lower()
        if op == "forbid":
            return self._transition(params, {"A": "B"}, "forbid", "FForbidStatus", {"B": "数据已禁用，不能重复禁用。"})
        if op == "enable":
            return self._transition(params, {"B": "A"}, "enable", "FForbidStatus", {"A": "数据未禁用，不能反禁用。"})
        raise KingdeeFault(f"操作标识“{params.get('opnumber')}”不存在（沙箱仅支持Forbid/Enable）", 3)

    def _op_delete(self, params: dict[str, Any]) -> dict:
        result = self._transition(params, {"Z": "X", "A": "X", "D": "X"}, "delete", "FDocumentStatus",
                                  {"C": "单据已经审核，不能删除！", "B": "单据已经提交，不能删除！"})
        for stock_id in [i for i, r in self._stocks.items() if r["FDocumentStatus"] == "X"]:
            del self._stocks[stock_id]
        return result

    def _op_view(self, params: dict[str, Any]) -> dict:
        data = params.get("data") or {}
        params = dict(params, data={"ids": str(data["id"])} if data.get("id") else {"numbers": [data.get("number")]})
        _, record = self._targets(params)[0]
        if record is None:
            raise KingdeeFault("指定的数据不存在", 10)
        view = {"Id": record["FStockId"], "Number": record["FNumber"],
                "Name": [{"Key": self.lcid, "Value": record["FName"]}],
                "StockProperty": record["FStockProperty"], "AllowMinusQty": record["FAllowMinusQty"],
                "CreateOrgId": {"Number": record["FCreateOrgId"]}, "UseOrgId": {"Number": record["FUseOrgId"]},
                "DocumentStatus": record["FDocumentStatus"], "ForbidStatus": record["FForbidStatus"]}
        return {"Result": {"ResponseStatus": None, "Result": view}}

    # -- queries ---------------------------------------------------------------------------------------
    def _rows(self, form: str) -> list[dict[str, Any]]:
        if form == "ORG_Organizations":
            return [{"FOrgID": i, "FNumber": n, "FName": f"组织{n}", "FDocumentStatus": "C", "FForbidStatus": "A"}
                    for n, i in self._orgs.items()]
        rows = []
        for record in self._stocks.values():
            row = dict(record)
            for ref in ("FCreateOrgId", "FUseOrgId"):
                row[f"{ref}.FNumber"] = record[ref]
                row[ref] = self._orgs.get(record[ref], 0)
            rows.append(row)
        return rows

    def _query(self, params: dict[str, Any]) -> tuple[list[str], list[dict[str, Any]]]:
        data = params.get("data") or {}
        form = self._form({"formid": data.get("formid")}, writable=False)
        keys = [k.strip() for k in str(data.get("fieldkeys") or "").split(",") if k.strip()]
        if not keys:
            raise KingdeeFault("data数据包中的参数FieldKeys的值不能为空。", 8)
        rows = self._rows(form)
        columns = {k.lower(): k for k in (rows[0] if rows else {**dict.fromkeys(FORMS[form]), **{
            f"{r}.FNumber": 0 for r in ("FCreateOrgId", "FUseOrgId") if form == "BD_STOCK"}})}
        clauses = parse_filter(str(data.get("filterstring") or "")) if not isinstance(
            data.get("filterstring"), list) else []  # the array filter form is not simulated
        for name in keys + [c[0] for c in clauses]:
            if name.lower() not in columns:
                raise KingdeeFault(f"元数据中标识为{name}的字段不存在", 9)
        rows = [r for r in rows if all(_matches(r[columns[f.lower()]], op, v) for f, op, v in clauses)]
        order = str(data.get("orderstring") or "").split()
        if order and order[0].lower() in columns:
            rows.sort(key=lambda r: str(r[columns[order[0].lower()]]),
                      reverse=len(order) > 1 and order[1].lower() == "desc")
        start = int(data.get("startrow") or 0)
        limit = int(data.get("limit") or 0) or self.query_limit  # no Limit: the server's row limit
        if limit > self.query_limit:
            if self.query_over_limit == "refuse":  # wording not verified
                raise KingdeeFault(f"参数Limit的值不能超过{self.query_limit}。", 8)
            limit = self.query_limit
        top = int(data.get("toprowcount") or 0)
        rows = rows[:top] if top else rows
        return [columns[k.lower()] for k in keys], rows[start:start + limit]

    def _op_executebillquery(self, params: dict[str, Any]) -> list[list[Any]]:
        keys, rows = self._query(params)
        return [[r[k] for k in keys] for r in rows]

    def _op_billquery(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        keys, rows = self._query(params)
        return [{k: r[k] for k in keys} for r in rows]


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Command-line options of ``serve kingdee``."""
    parser.add_argument("--acct-id", default="5db25ac8d2b819")
    parser.add_argument("--username", default="webapi")
    parser.add_argument("--password", default="Kingdee@123")
    parser.add_argument("--app-id", default="204399_72epSbtEQMC92Vwt2d3LRa9LRqSc1tqJ")
    parser.add_argument("--app-secret", default="fb7d46647ac346dbb5fcd45b65512a45")
    parser.add_argument("--organisations", default="100,I0134", help="comma-separated organisation numbers")
    parser.add_argument("--session-max-requests", type=int, default=None)
    parser.add_argument("--session-idle-seconds", type=float, default=None)
    parser.add_argument("--allow-save-on-audited", action="store_true", help="accept Save on audited records")
    parser.add_argument("--auto-audit", choices=AUTO_AUDIT_MODES, default="transaction",
                        help="IsAutoSubmitAndAudit on creates: one transaction, or a server that ignores the flag")
    parser.add_argument("--auto-audit-on-update", choices=AUTO_AUDIT_ON_UPDATE, default="refuse")
    parser.add_argument("--query-limit", type=int, default=2000, help="most rows one ExecuteBillQuery returns")
    parser.add_argument("--query-over-limit", choices=OVER_LIMIT, default="refuse")
    parser.add_argument("--row-latency", type=float, default=0.0, help="seconds added per row written")


def build_server(args: argparse.Namespace) -> KingdeeSandbox:
    """A sandbox from the parsed command line."""
    return KingdeeSandbox(
        acct_id=args.acct_id, username=args.username, password=args.password, app_id=args.app_id,
        app_secret=args.app_secret, organisations=[o for o in args.organisations.split(",") if o],
        session_max_requests=args.session_max_requests, session_idle_seconds=args.session_idle_seconds,
        reject_save_on_audited=not args.allow_save_on_audited, auto_audit=args.auto_audit,
        auto_audit_on_update=args.auto_audit_on_update, query_limit=args.query_limit,
        query_over_limit=args.query_over_limit, row_latency=args.row_latency,
    )
