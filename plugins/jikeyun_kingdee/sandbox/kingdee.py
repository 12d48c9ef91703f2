"""Kingdee K3Cloud WebAPI sandbox: login flows, header signature, the forms of :mod:`.kingdee_forms` (BD_STOCK,
BD_MATERIAL, BD_UNIT, BD_Customer, SAL_OUTSTOCK, …), BatchSave, Submit/Audit/UnAudit, ExcuteOperation
Forbid/Enable, Delete, View and ExecuteBillQuery.

Where the published protocol is unsure, the sandbox does what the evidence suggests and lets a test choose
otherwise (see :class:`KingdeeSandbox`): partial BatchSave results, Save on an audited record, what
``IsAutoSubmitAndAudit`` does on an update, whether a server knows that flag at all, whether ``NeedReturnData``
echoes the asked fields, what happens to an ExecuteBillQuery ``Limit`` above the server's row limit, whether a
document's header-only query has one row per entry, whether the coding rule keeps a posted ``FBillNo``, and the
negative-stock interaction (the sandbox keeps no stock). Message texts follow captured real answers where there are
any; the others (marked "wording not verified") are the sandbox's own.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
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
from jikeyun_kingdee.sandbox.kingdee_forms import (
    AUDITED,
    FORMS,
    NORMAL,
    ORGANISATIONS,
    SEEDS,
    Form,
    KingdeeFault,
    Package,
    Problem,
    Store,
    check,
    coerce,
    copy_record,
    customers_of,
    form_named,
    merge,
    read_model,
    truthy,
)
from jikeyun_kingdee.sandbox.kingdee_query import Column, column, select

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
STOCK_INTERACTION = ("off", "refuse")  # auditing a stock document without InterationFlags STK_InvCheckResult
ENTRY_WORDING = ("k3", "k2")  # the captured wordings of an entry row's required-field error
ENTRY_ROWS = ("always", "when_asked")  # a document's query rows: one per entry row always, or when entry keys are asked
# What a WebAPI call gets when the server wants to ask the user (captured, K3); that the negative-stock check asks
# this way is inferred.
INTERACTION = ("AbstractInteractionResult", "AbstractInteractionResult.InteractionContext is null")


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


def _interaction_flags(data: dict[str, Any]) -> set[str]:
    """``InterationFlags`` (sic) as lower-case names: ``"a;b"`` text or a list."""
    flags = data.get("interationflags") or ""
    names = flags if isinstance(flags, list) else re.split(r"[;,]", str(flags))
    return {str(name).strip().lower() for name in names if str(name).strip()}


class KingdeeSandbox(SandboxServer):
    """A loopback Kingdee K3Cloud WebAPI keeping the forms of :data:`~.kingdee_forms.FORMS`.

    Organisations, units, inventory categories, currencies, bill types and (per organisation) customers are seeded
    audited; tests change them with :meth:`seed`, :meth:`edit_records` and the other scripting methods.

    :param acct_id: data-centre id accepted by logins and signatures
    :param username: the one WebAPI user
    :param password: its password (ValidateUser)
    :param app_id: third-party app id (LoginByAppSecret, header signature)
    :param app_secret: the app secret
    :param organisations: organisation numbers that exist
    :param session_max_requests: a session expires after this many requests (None = never)
    :param session_idle_seconds: a session expires after this idle time (None = never)
    :param reject_save_on_audited: Save on an audited (C) record fails with MsgCode 11 (undocumented upstream, for
        base data and documents alike)
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
    :param stock_interaction: auditing a stock document (SAL_OUTSTOCK), explicitly or inside a save with
        ``IsAutoSubmitAndAudit``, without ``InterationFlags: STK_InvCheckResult``: ``off`` passes (default; the
        sandbox keeps no stock, so it cannot know whether stock would go negative), ``refuse`` answers the
        interaction error a real server gives when stock would go negative and the user cannot be asked [I]
    :param entry_wording: the required-field message of an entry row, as captured on ``k3``
        (单据体“明细信息”第1行字段“仓库”是必填项) or ``k2`` (单据体实体【明细信息】第【1】行分录，【仓库】字段必录)
    :param query_entry_rows: a document's ExecuteBillQuery has one row per entry row ``always`` (default; a client
        must de-duplicate header-only look-ups) or only ``when_asked`` for an entry key [?]
    :param manual_bill_numbers: the coding rule keeps a posted ``FBillNo`` (default); False gives every new document
        the rule's own number, as a rule that does not allow manual numbers would [?]
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
        stock_interaction: str = "off",
        entry_wording: str = "k3",
        query_entry_rows: str = "always",
        manual_bill_numbers: bool = True,
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
        self.stock_interaction, self.entry_wording = stock_interaction, entry_wording
        self.query_entry_rows, self.manual_bill_numbers = query_entry_rows, manual_bill_numbers
        self.configure(**self.configure())  # validates the choices above
        self.rows_per_call: list[tuple[str, int]] = []  # (Save | BatchSave, models) per save call
        self.rows_written: Counter[str] = Counter()  # rows sent to writes by operation (ExcuteOperation: Forbid …)
        self._sessions: dict[str, dict[str, float]] = {}
        self._store = Store()
        self._failing_rows: dict[tuple[str, str], tuple[str, int | None]] = {}  # (stage, number) → (message, times)
        self._concurrent: list[tuple[Form, dict]] = []
        self._after_write: list[tuple[int | None, float]] = []
        self.set_organisations(list(organisations))
        self._seed_defaults()

    # -- scripting: records ----------------------------------------------------------------------------
    def records(self, form: str, org: str | None = None) -> list[dict]:
        """Stored records of a form (copies), optionally of one organisation (the form's ``org`` field: the use
        organisation of base data, a document's stock organisation; ignored by forms without one), by id."""
        spec = _scripted_form(form)
        with self._lock:
            return [copy_record(r) for r in self._store.all(spec)
                    if org is None or spec.org is None or r[spec.org] == org]

    def edit_records(self, form: str, numbers: list[str], org: str | None = None, **changes: Any) -> int:
        """Change stored records by hand, as a user in the Kingdee client would: any header or sub-entity field by
        its own key (``FName``, ``FBaseUnitId="Xiang"``), ``FDocumentStatus``, ``FForbidStatus``; returns how many
        records changed."""
        spec = _scripted_form(form)
        fields = {f.key.lower(): f for f in spec.flat_fields}
        statuses = {s.lower(): s for s in spec.statuses}
        unknown = sorted(k for k in changes if k.lower() not in fields and k.lower() not in statuses)
        if unknown:
            raise ValueError(f"cannot edit {unknown}")
        values = {statuses[k.lower()]: str(v) for k, v in changes.items() if k.lower() in statuses}
        values.update({fields[k.lower()].key: coerce(fields[k.lower()], v)[0] for k, v in changes.items()
                       if k.lower() in fields})
        with self._lock:
            records = self._matching(spec, numbers, org)
            for record in records:
                record.update(values)
            self._store.reindex(spec)
            return len(records)

    def delete_records(self, form: str, numbers: list[str], org: str | None = None) -> int:
        """Delete stored records by hand, whatever their status; returns how many."""
        spec = _scripted_form(form)
        with self._lock:
            doomed = [r[spec.pk] for r in self._matching(spec, numbers, org)]
            self._store.remove(spec, doomed)
            return len(doomed)

    def add_records(self, form: str, rows: list[dict], *, status: str = "A", on_next_save: bool = False) -> list[int]:
        """Insert records without any check (a concurrent writer); with ``on_next_save`` just before the next
        Save/BatchSave. Rows are Model packages (references as ``{"FNumber": x}`` or the number; a row's own
        ``FDocumentStatus`` / ``FForbidStatus`` win over ``status`` / 正常)."""
        spec = _scripted_form(form)
        with self._lock:
            if on_next_save:
                self._concurrent.extend((spec, {"FDocumentStatus": status, **r}) for r in rows)
                return []
            return [self._store.add(spec, dict(r), status) for r in rows]

    def seed(self, form: str, rows: list[dict]) -> list[int]:
        """Base data as an administrator leaves it: audited and (unless a row says otherwise) not forbidden; a
        record with the same number (in the same organisation) is replaced. Returns the new ids."""
        spec = _scripted_form(form)
        with self._lock:
            ids = []
            for row in rows:
                record_id = self._store.add(spec, dict(row), AUDITED)
                key = self._store.key(spec, self._store.get(spec, record_id) or {})
                self._store.remove(spec, [r[spec.pk] for r in self._store.all(spec)
                                          if r[spec.pk] != record_id and self._store.key(spec, r) == key])
                ids.append(record_id)
            return ids

    def _matching(self, form: Form, numbers: list[str], org: str | None) -> list[dict]:
        wanted = set(map(str, numbers))
        return [r for r in self._store.all(form) if str(r[form.number]) in wanted
                and (org is None or form.org is None or r[form.org] == org)]

    def _seed_defaults(self) -> None:
        for form, rows in SEEDS.items():
            self.seed(form, rows)
        self._seed_customers()

    def _seed_customers(self) -> None:
        """The default customers of each organisation that has none."""
        customers = _scripted_form("BD_Customer")
        with self._lock:
            served = {r["FUseOrgId"] for r in self._store.all(customers)}
            for organisation in self._store.all(FORMS[ORGANISATIONS]):
                if organisation["FNumber"] not in served:
                    self.seed(customers.form_id, customers_of(organisation["FNumber"]))

    # -- scripting: BD_STOCK, as the tests of the warehouse scheme use it -------------------------------
    def stocks(self, org: str | None = None) -> list[dict]:
        """Stored BD_STOCK records (copies), optionally of one use organisation, ordered by id."""
        return self.records("BD_STOCK", org)

    def edit_stocks(self, numbers: list[str], org: str | None = None, **changes: Any) -> int:
        """:meth:`edit_records` of BD_STOCK: e.g. ``FName``, ``FDocumentStatus`` or ``FForbidStatus``."""
        return self.edit_records("BD_STOCK", numbers, org, **changes)

    def delete_stocks(self, numbers: list[str], org: str | None = None) -> int:
        """:meth:`delete_records` of BD_STOCK."""
        return self.delete_records("BD_STOCK", numbers, org)

    def add_stocks(self, rows: list[dict], *, status: str = "A", on_next_save: bool = False) -> list[int]:
        """:meth:`add_records` of BD_STOCK."""
        return self.add_records("BD_STOCK", rows, status=status, on_next_save=on_next_save)

    # -- scripting: the server -------------------------------------------------------------------------
    def set_organisations(self, numbers: list[str]) -> None:
        """Replace the set of existing organisations (an organisation without customers gets the default ones)."""
        with self._lock:
            self._store.clear(FORMS[ORGANISATIONS])
            for number in numbers:
                self._store.add(FORMS[ORGANISATIONS], {"FNumber": str(number), "FName": f"组织{number}"}, AUDITED)
            self._seed_customers()

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
        """Records with these numbers (``FNumber``, a document's ``FBillNo``; any form) fail at ``stage`` the next
        ``times`` times (None = until reset).

        ``save``: a validation error of the row (FieldName the number field). ``submit`` / ``audit``: the Submit or
        Audit of the record fails (FieldName empty) — also inside a save with ``IsAutoSubmitAndAudit``, which then
        saves nothing of that row. ``unaudit`` / ``forbid`` / ``enable`` / ``delete``: that operation fails.
        """
        if stage not in WRITE_STAGES:
            raise ValueError(f"stage {stage!r} is not one of {WRITE_STAGES}")
        with self._lock:
            for number in numbers:
                self._failing_rows[(stage, str(number))] = (message, times)

    def configure(self, **settings: Any) -> dict[str, Any]:
        """Change behaviour settings (the constructor's ``reject_save_on_audited`` … ``manual_bill_numbers``);
        returns them all."""
        choices = {"auto_audit": AUTO_AUDIT_MODES, "auto_audit_on_update": AUTO_AUDIT_ON_UPDATE,
                   "query_over_limit": OVER_LIMIT, "stock_interaction": STOCK_INTERACTION,
                   "entry_wording": ENTRY_WORDING, "query_entry_rows": ENTRY_ROWS}
        kinds: dict[str, tuple[type, ...]] = {
            "echo_return_fields": (bool,), "query_limit": (int,), "row_latency": (float, int),
            "reject_save_on_audited": (bool,), "session_max_requests": (int, type(None)),
            "session_idle_seconds": (float, int, type(None)), "manual_bill_numbers": (bool,)}
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

    def fault_after_write(self, *, status: int | None = None, delay: float = 0.0, count: int = 1) -> None:
        """The next ``count`` Save/BatchSave/ExcuteOperation calls (any form) are applied, then answered late
        (``delay``) or with ``status``."""
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
        """Forget records (the seeded base data is seeded again; organisations stay), sessions, scripted faults
        and counters."""
        with self._lock:
            for form in FORMS.values():
                if form.form_id != ORGANISATIONS:
                    self._store.clear(form)
            self._seed_defaults()
            self._sessions.clear()
            self._failing_rows.clear()
            self._concurrent.clear()
            self._after_write.clear()
        self.faults.reset()
        self.reset_counts()

    def control(self, command: str, payload: dict[str, Any]) -> Any:
        commands = {
            "records": lambda: self.records(**payload),
            "edit-records": lambda: self.edit_records(**payload),
            "delete-records": lambda: self.delete_records(**payload),
            "add-records": lambda: self.add_records(**payload),
            "seed": lambda: self.seed(**payload),
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

    # -- saves ---------------------------------------------------------------------------------------------
    @staticmethod
    def _form(params: dict[str, Any], writable: bool = True) -> Form:
        name = str(params.get("formid") or (params.get("data") or {}).get("formid") or "")
        if not name:
            raise KingdeeFault("表单标识为空", 5)
        form = form_named(name)
        if form is None:
            # Text as captured from a production server (MsgCode 4); wording per version not verified.
            raise KingdeeFault(f"标识为“{name}”的业务对象不存在，或者被删除。", 4)
        if writable and not form.writable:
            raise KingdeeFault(f"沙箱不支持写入 {form.form_id}", 12)
        return form

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

    def _interaction(self, form: Form, flags: set[str]) -> Problem | None:
        """The negative-stock interaction an audit of ``form`` runs into without ``STK_InvCheckResult``, or None."""
        if form.stock_check and self.stock_interaction == "refuse" and "stk_invcheckresult" not in flags:
            return INTERACTION
        return None

    def _approval_failure(self, form: Form, number: str, flags: set[str]) -> Problem | None:
        """Inside a save with IsAutoSubmitAndAudit: a failing submit or audit (wording not verified), or None."""
        for stage, label in (("submit", "提交"), ("audit", "审核")):
            message = self._scripted_failure(stage, number)
            if message:
                return None, f"{label}失败：{message}"
        return self._interaction(form, flags)

    def _save_models(self, params: dict[str, Any], operation: str) -> tuple[Form, list[dict], list[dict]]:
        form = self._form(params)
        data = params.get("data") or {}
        models = data.get("model")
        models = [models] if operation == "Save" and isinstance(models, dict) else models
        if not isinstance(models, list) or not models:
            raise KingdeeFault("data数据包中的参数Model的值不能为空。", 8)
        self.rows_per_call.append((operation, len(models)))
        for concurrent_form, row in self._concurrent:  # a concurrent writer got there first
            self._store.add(concurrent_form, row)
        self._concurrent.clear()
        update_fields = data.get("needupdatefields") or []
        flag = truthy(data.get("isautosubmitandaudit", False))
        verify = truthy(data.get("isverifybasedatafield", False))
        delete_entries = truthy(data.get("isdeleteentry", True))
        flags = _interaction_flags(data)
        successes: list[dict] = []
        errors: list[dict] = []
        for index, model in enumerate(models):
            package = read_model(form, model if isinstance(model, dict) else {})
            existing = self._store.get(form, package.pk) if package.pk is not None else None
            if existing is not None and update_fields:
                package = package.only(update_fields)
            if form.bill_no_prefix and existing is None and (
                    not self.manual_bill_numbers or not package.values.get(form.number)):
                package.values[form.number] = self._store.bill_number(form)  # the coding rule numbers it
            mode = (self.auto_audit if existing is None else self.auto_audit_on_update) if flag else "ignore"
            record, problems = merge(form, existing, package, delete_entries=delete_entries)
            problems = self._refusals(form, package, existing, record, problems, verify=verify, mode=mode,
                                      flags=flags)
            if problems:
                errors.extend(_error(message, field=field, index=index) for field, message in problems)
                continue
            if existing is None:
                record.update(dict.fromkeys(form.statuses, NORMAL), FDocumentStatus="A")
            if mode == "transaction":
                record["FDocumentStatus"] = AUDITED
            stored = self._store.commit(form, record, existing)
            successes.append({"Id": stored[form.pk], "Number": stored[form.number], "DIndex": index})
        return form, successes, errors

    def _refusals(self, form: Form, package: Package, existing: dict | None, record: dict, problems: list[Problem], *,
                  verify: bool, mode: str, flags: set[str]) -> list[Problem]:
        """Why one package is not saved (nothing when it is), in the order the checks run."""
        number = str(record.get(form.number) or "")
        scripted = self._scripted_failure("save", number)
        if scripted:
            return [(form.number, scripted)]
        if package.pk is not None and existing is None:
            return [(form.pk, f"内码为{package.pk}的{form.label}不存在")]
        if existing is not None and existing["FDocumentStatus"] == AUDITED and self.reject_save_on_audited:
            return [(None, f"{form.number_label}为“{existing[form.number]}”的{form.label}，数据已审核，不能修改！")]
        problems = [*package.problems, *problems,
                    *check(self._store, form, record, verify=verify, wording=self.entry_wording)]
        if problems:
            return problems if form.all_errors else problems[:1]
        if mode == "refuse":
            return [(None, "更新时不能启用IsAutoSubmitAndAudit（沙箱：措辞未经核实）")]
        failed = self._approval_failure(form, number, flags) if mode == "transaction" else None
        return [failed] if failed else []

    def _return_data(self, form: Form, params: dict[str, Any], successes: list[dict]) -> list[dict]:
        """``NeedReturnData``: the asked ``NeedReturnFields`` of each saved row (``{}`` each when not asked). An
        entry's field (``FEntity.FEntryID``) comes back as a list with one object per entry row."""
        fields = [str(f) for f in (params.get("data") or {}).get("needreturnfields") or []]
        if not self.echo_return_fields or not fields:
            return [{} for _ in successes]
        answers = []
        for success in successes:
            record = self._store.get(form, success["Id"]) or {}
            answer: dict[str, Any] = {}
            for name in fields:
                head, _, tail = name.partition(".")
                entry = form.entry(head)
                if entry is not None and tail:
                    rows = answer.setdefault(head, [{} for _ in record[entry.key]])
                    key = f"{entry.key}_{entry.pk}" if tail.lower() == entry.pk.lower() else tail
                    read = column(self._store, form, key)
                    for row, stored in zip(rows, record[entry.key], strict=True):
                        row[tail] = read[0](record, stored) if read else None
                else:
                    read = column(self._store, form, name)
                    answer[name] = read[0](record, None) if read and not read[1] else None
            answers.append(answer)
        return answers

    def _op_batchsave(self, params: dict[str, Any]) -> dict:
        form, successes, errors = self._save_models(params, "BatchSave")
        return {"Result": {**_status(errors, successes), "NeedReturnData": self._return_data(form, params, successes)}}

    def _op_save(self, params: dict[str, Any]) -> dict:
        form, successes, errors = self._save_models(params, "Save")
        first = successes[0] if successes else {"Id": "", "Number": ""}
        return {"Result": {**_status(errors, successes), "Id": first["Id"], "Number": first["Number"],
                           "NeedReturnData": self._return_data(form, params, successes) or [{}]}}

    # -- operations on saved records ---------------------------------------------------------------------
    def _targets(self, params: dict[str, Any]) -> tuple[Form, list[tuple[str, dict | None]]]:
        """The form and (key as requested, record or None) for ``Ids`` (comma text or list) or ``Numbers``."""
        form = self._form(params)
        data = params.get("data") or {}
        ids = data.get("ids")
        if ids not in (None, "", []):
            keys = [str(i).strip() for i in (ids.split(",") if isinstance(ids, str) else ids) if str(i).strip()]
            return form, [(k, self._store.get(form, k)) for k in keys]
        numbers = [str(n) for n in data.get("numbers") or []]
        if not numbers:
            raise KingdeeFault("data数据包中的参数Numbers或Ids的值不能为空。", 8)
        # A base-data number is unique per use organisation only: ``UseOrgId`` (its internal id, or here also its
        # number) narrows the search; without it the sandbox takes the first record with the number.
        org = str(data.get("useorgid") or "")
        orgs = {org} | {o["FNumber"] for o in self._store.all(FORMS[ORGANISATIONS]) if str(o["FOrgID"]) == org}
        by_number: dict[str, dict] = {}
        for record in self._store.all(form):
            if not org or form.org is None or record[form.org] in orgs:
                by_number.setdefault(str(record[form.number]), record)
        return form, [(n, by_number.get(n)) for n in numbers]

    def _transition(self, params: dict[str, Any], allowed: dict[str, str], stage: str, field: str,
                    refusals: dict[str, str], blocked: Problem | None = None) -> dict:
        """Move ``field`` of each target record along ``allowed``; a row error per record that cannot move.

        :param refusals: status → the message's tail when a record in that status cannot move
        :param blocked: the error of every record that could move (an interaction the call did not answer)
        """
        form, targets = self._targets(params)
        successes, errors = [], []
        for index, (key, record) in enumerate(targets):
            if record is None:
                errors.append(_error(f"单据“{key}”不存在或已被删除", index=index))
                continue
            scripted = self._scripted_failure(stage, record[form.number])
            if scripted:
                errors.append(_error(scripted, index=index))
            elif record[field] not in allowed:
                state = refusals.get(record[field], "当前状态不允许此操作。")
                message = f"{form.number_label}为“{record[form.number]}”的{form.label}，{state}"
                errors.append(_error(message, index=index))
            elif blocked:
                errors.append(_error(blocked[1], field=blocked[0], index=index))
            else:
                record[field] = allowed[record[field]]
                successes.append({"Id": record[form.pk], "Number": record[form.number], "DIndex": index})
        return {"Result": _status(errors, successes)}

    def _op_submit(self, params: dict[str, Any]) -> dict:
        return self._transition(params, {"Z": "B", "A": "B", "D": "B"}, "submit", "FDocumentStatus",
                                {"C": "单据已经审核！", "B": "单据已经提交！"})

    def _op_audit(self, params: dict[str, Any]) -> dict:
        blocked = self._interaction(self._form(params), _interaction_flags(params.get("data") or {}))
        refusals = {"C": "单据已经审核！", "A": "单据未提交，不能审核。", "D": "单据未提交，不能审核。"}
        return self._transition(params, {"B": "C"}, "audit", "FDocumentStatus", refusals, blocked)

    def _op_unaudit(self, params: dict[str, Any]) -> dict:
        return self._transition(params, {"C": "D"}, "unaudit", "FDocumentStatus", {})

    def _op_excuteoperation(self, params: dict[str, Any]) -> dict:
        """Forbid (禁用, FForbidStatus A → B) and Enable (反禁用, B → A) of base data; refusal texts: wording not
        verified."""
        op = str(params.get("opnumber") or "").lower()
        if op in ("forbid", "enable") and self._form(params).base_data:
            if op == "forbid":
                return self._transition(params, {"A": "B"}, op, "FForbidStatus", {"B": "数据已禁用，不能重复禁用。"})
            return self._transition(params, {"B": "A"}, op, "FForbidStatus", {"A": "数据未禁用，不能反禁用。"})
        raise KingdeeFault(f"操作标识“{params.get('opnumber')}”不存在（沙箱仅支持基础资料的Forbid/Enable）", 3)

    def _op_delete(self, params: dict[str, Any]) -> dict:
        result = self._transition(params, {"Z": "X", "A": "X", "D": "X"}, "delete", "FDocumentStatus",
                                  {"C": "单据已经审核，不能删除！", "B": "单据已经提交，不能删除！"})
        form = self._form(params)
        self._store.remove(form, [r[form.pk] for r in self._store.all(form) if r["FDocumentStatus"] == "X"])
        return result

    def _op_view(self, params: dict[str, Any]) -> dict:
        """The record with property names without ``F`` (sub-entity fields flat, entries as lists of rows: the
        sandbox's shape; the real one nests sub-entities under their own names)."""
        data = params.get("data") or {}
        params = dict(params, data={"ids": str(data["id"])} if data.get("id") else {"numbers": [data.get("number")]})
        form, [(_, record)] = self._targets(params)
        if record is None:
            raise KingdeeFault("指定的数据不存在", 10)

        def shown(spec: Any, value: Any) -> Any:
            return {"Number": value} if spec.kind == "reference" else value

        view: dict[str, Any] = {"Id": record[form.pk], "Number": record[form.number]}
        for spec in form.flat_fields:
            if spec.key == "FName":
                view["Name"] = [{"Key": self.lcid, "Value": record["FName"]}]
            elif spec.key != form.number:
                view[spec.key[1:]] = shown(spec, record[spec.key])
        for entry in form.entries:
            view[entry.key[1:]] = [{"Id": row[entry.pk], **{s.key[1:]: shown(s, row[s.key]) for s in entry.fields}}
                                   for row in record[entry.key]]
        view.update({status[1:]: record[status] for status in form.statuses})
        return {"Result": {"ResponseStatus": None, "Result": view}}

    # -- queries ---------------------------------------------------------------------------------------
    def _query(self, params: dict[str, Any]) -> tuple[list[str], list[Column], list[tuple[dict, dict | None]]]:
        data = params.get("data") or {}
        form = self._form({"formid": data.get("formid")}, writable=False)
        return select(self._store, form, data, row_limit=self.query_limit, over_limit=self.query_over_limit,
                      entry_rows=self.query_entry_rows)

    def _op_executebillquery(self, params: dict[str, Any]) -> list[list[Any]]:
        _, readers, rows = self._query(params)
        return [[read(*pair) for read in readers] for pair in rows]

    def _op_billquery(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        keys, readers, rows = self._query(params)
        return [{k: read(*pair) for k, read in zip(keys, readers, strict=True)} for pair in rows]


def _scripted_form(name: str) -> Form:
    form = form_named(name)
    if form is None:
        raise ValueError(f"unknown form {name!r}; known: {sorted(FORMS)}")
    return form


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
    parser.add_argument("--stock-interaction", choices=STOCK_INTERACTION, default="off",
                        help="audit of SAL_OUTSTOCK without InterationFlags STK_InvCheckResult: pass or refuse")
    parser.add_argument("--entry-wording", choices=ENTRY_WORDING, default="k3",
                        help="wording of an entry row's required-field error")
    parser.add_argument("--query-entry-rows", choices=ENTRY_ROWS, default="always",
                        help="a document's query rows: one per entry row always, or when entry keys are asked")
    parser.add_argument("--auto-bill-numbers", action="store_true",
                        help="the coding rule numbers every new document, ignoring a posted FBillNo")


def build_server(args: argparse.Namespace) -> KingdeeSandbox:
    """A sandbox from the parsed command line."""
    return KingdeeSandbox(
        acct_id=args.acct_id, username=args.username, password=args.password, app_id=args.app_id,
        app_secret=args.app_secret, organisations=[o for o in args.organisations.split(",") if o],
        session_max_requests=args.session_max_requests, session_idle_seconds=args.session_idle_seconds,
        reject_save_on_audited=not args.allow_save_on_audited, auto_audit=args.auto_audit,
        auto_audit_on_update=args.auto_audit_on_update, query_limit=args.query_limit,
        query_over_limit=args.query_over_limit, row_latency=args.row_latency,
        stock_interaction=args.stock_interaction, entry_wording=args.entry_wording,
        query_entry_rows=args.query_entry_rows, manual_bill_numbers=not args.auto_bill_numbers,
    )
