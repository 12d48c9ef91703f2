"""Integration schemes as data: pydantic models, the YAML loader, and the seed platform's JSON metadata.

A scheme says where records come from (a Jikeyun query API, its window and id fields, the condition), where they
go (a Kingdee form, the field mapping, the organisation, rows per BatchSave) and how the DAG runs (schedule,
timezone, start date, owner, tags, retries, alerting). ``dags/`` builds one DAG per scheme file.

Two file forms give the same :class:`Scheme`:

* ``*.yaml`` / ``*.yml`` — this package's own form (see ``include/schemes/warehouse_I0134.yaml``);
* ``*.json`` — the hosted platform's metadata: ``{"name": ..., "form_id": ..., "source": <source block>,
  "target": <target block>, ...}`` with the two blocks exactly as the platform exported them (``request`` field
  lists, ``{{LAST_SYNC_TIME|datetime}}`` / ``{{CURRENT_TIME|datetime}}``, ``condition`` arrays with ``eqv2``-style
  operators, ``operation.rows``); see :func:`scheme_from_platform`.

What happens to records that are blocked up or deleted at the source is the scheme's ``lifecycle:`` (forbid them in
the target, or ignore them); without it every record is ``active`` and only the condition decides.
"""

from __future__ import annotations

import json
import os
import re
from datetime import datetime, timedelta
from datetime import time as dt_time
from pathlib import Path
from typing import Annotated, Any, Literal

import pendulum
import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from jikeyun_kingdee.fields import FieldMap, Lookup
from jikeyun_kingdee.kingdee_forms import reference_key
from jikeyun_kingdee.records import Warehouse
from jikeyun_kingdee.values import truthy

# a platform field value that names a source field (``{warehouseName}``)
REFERENCE = re.compile(r"^\{([A-Za-z_][A-Za-z0-9_.]*)\}$")
PLATFORM_VARIABLE = re.compile(r"^\{\{\s*([A-Z_]+)\s*(?:\|\s*([a-z]+)\s*)?\}\}$")

# Source-record models a scheme may name as ``source.record_model``: each record is validated into it in transform.
RECORD_MODELS: dict[str, type[BaseModel]] = {"warehouse": Warehouse}

#: the request field of erp.warehouse.get (and erp.vend.get) that adds deleted and blocked-up records (value 1)
WITH_BLOCKED_AND_DELETED = "includeDeleteAndBlockup"

# List keys of Jikeyun query APIs (docs/protocol/jikeyun.md §8); the platform's metadata does not name them.
JIKEYUN_LIST_KEYS = {
    "erp.warehouse.get": "warehouseInfo",
    "erp.sales.get": "salesChannelInfo",
    "erp.logistic.get": "logisticInfo",
    "erp.vend.get": "vendInfo",
    "erp.stockquantity.get": "goodsStockQuantity",
    "erp.allocate.get": "stockAllocate",
}

# Primary keys of Kingdee forms the platform's metadata may write (it does not name them).
KINGDEE_PK_FIELDS = {"BD_STOCK": "FStockId", "BD_MATERIAL": "FMATERIALID", "BD_Customer": "FCUSTID",
                     "SAL_OUTSTOCK": "FID"}

# Condition operators. The platform's ``eqv2``/``neqv2`` compare values loosely (0 == "0"); an ``i`` prefix
# (``ieqv2``, seen only in the disabled ``condition_bk``) is read as case-insensitive — an interpretation, the
# platform's documentation of it was not available.
Operator = Literal["eq", "ne", "ieq", "ine", "in", "not_in", "gt", "ge", "lt", "le", "empty", "not_empty"]
PLATFORM_OPERATORS: dict[str, Operator] = {
    "eq": "eq", "eqv2": "eq", "neq": "ne", "neqv2": "ne", "ieqv2": "ieq", "ineqv2": "ine",
    "in": "in", "notin": "not_in", "gt": "gt", "egt": "ge", "lt": "lt", "elt": "le",
    "isnull": "empty", "notnull": "not_empty",
}


def _cron(value: str) -> str:
    from croniter import croniter

    if not croniter.is_valid(value):
        raise ValueError(f"not a cron expression: {value!r}")
    return value


CronExpression = Annotated[str, AfterValidator(_cron)]


def _renamed(data: Any, *renames: tuple[str, str]) -> Any:
    """A mapping with its older key names (``(old, new)`` pairs) given their new names; other input unchanged."""
    if not isinstance(data, dict):
        return data
    data = dict(data)
    for old, new in renames:
        if old in data:
            if new in data:
                raise ValueError(f"{old} is the older name of {new}: give one of them")
            data[new] = data.pop(old)
    return data


class SchemeError(ValueError):
    """A scheme file is invalid; the message names the file and the field."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Comparison(_Model):
    """One test of a source field, e.g. ``isBlockup eq 0``."""

    field: str = Field(min_length=1)
    op: Operator = "eq"
    value: Any = None


class WindowPair(_Model):
    """One window pair of the source: the request parameters its bounds go in and the record field they filter.

    Each pair is one pass over the run's window (a server that ANDs two pairs when both are sent is read once per
    pair). The older names ``start_field`` / ``end_field`` are read too.
    """

    start_param: str = Field("gmtModifiedStart", min_length=1)
    end_param: str = Field("gmtModifiedEnd", min_length=1)
    modified_field: str = Field("gmtModified", min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _read_older_names(cls, data: Any) -> Any:
        return _renamed(data, ("start_field", "start_param"), ("end_field", "end_param"))


class TimeKeysetPaging(_Model):
    """Keyset paging on the modification time (:class:`~jikeyun_kingdee.source_paging.TimeKeyset`)."""

    style: Literal["time_keyset"] = "time_keyset"


class IdCursorPaging(_Model):
    """An id cursor (:class:`~jikeyun_kingdee.source_paging.IdCursor`), e.g. ``maxSkuId`` over ``skuId``.

    :param cursor_param: the request parameter: "records whose id is greater than this".
    :param cursor_field: the record field holding the (numeric) id.
    :param first_cursor: the cursor of the first request.
    """

    style: Literal["id_cursor"]
    cursor_param: str = Field(min_length=1)
    cursor_field: str = Field(min_length=1)
    first_cursor: str = "0"


class ScrollPaging(_Model):
    """A server scroll (:class:`~jikeyun_kingdee.source_paging.ServerScroll`), e.g. ``scrollId``.

    :param scroll_param: the request parameter, and where the answer carries the next one (``result.data`` or the
        last record).
    :param fields_param: the request parameter listing the fields to return; when the scheme's request sets it,
        the scroll parameter is added to its list.
    :param expired_sub_codes: sub-codes of an expired scroll (unknown for Jikeyun: none by default).
    :param expired_words: words of an expired scroll's message (any of them, case-insensitive).
    :param total_field: where an answer carries the scroll's record count (when the request asks for it, e.g.
        ``hasTotal: 1``); a scroll that returned fewer is read again.
    """

    style: Literal["scroll"]
    scroll_param: str = Field("scrollId", min_length=1)
    fields_param: str = Field("fields", min_length=1)
    expired_sub_codes: list[str] = []
    expired_words: list[str] = ["过期", "失效", "scroll"]
    total_field: str = Field("totalResults", min_length=1)


class OffsetPaging(_Model):
    """Plain 0-based ``pageIndex`` pages (:class:`~jikeyun_kingdee.source_paging.OffsetPages`), for a source
    without a window."""

    style: Literal["offset"]


class QuotaReset(_Model):
    """When the source API's daily call quota comes back: every day at ``at`` in ``timezone`` (Jikeyun: Beijing
    midnight, the day its quotas count by). A read that meets an exhausted quota waits until then.

    :param at: the time of day (``"00:00"``, ``"00:05:30"``).
    :param timezone: the zone of ``at``.
    """

    at: dt_time = dt_time(0, 0)
    timezone: str = "Asia/Shanghai"

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            pendulum.timezone(value)
        except Exception as exc:
            raise ValueError(f"unknown timezone {value!r}") from exc
        return value

    def next_after(self, moment: datetime) -> datetime:
        """The first reset strictly after ``moment`` (aware), in UTC."""
        if moment.tzinfo is None:
            raise ValueError("a quota reset needs an aware datetime")
        local = pendulum.instance(moment).in_timezone(self.timezone)
        reset = local.replace(hour=self.at.hour, minute=self.at.minute, second=self.at.second, microsecond=0)
        if reset <= local:
            reset = reset.add(days=1)
        return reset.in_timezone("UTC")


Paging = Annotated[TimeKeysetPaging | IdCursorPaging | ScrollPaging | OffsetPaging, Field(discriminator="style")]
#: request parameters the paging sets itself
PAGING_PARAMS = ("pageIndex", "pageSize")


class SourceSpec(_Model):
    """Where records come from: a Jikeyun query API, how its pages are read, and which records are kept.

    ``list_path``: where the records are under ``result.data`` (dotted; a leading ``result.data.`` is accepted).
    ``windows``: one pass over the run's window per pair (empty: the API has no window, every run reads
    everything). ``time_format``: how window bounds are sent (``beijing``: ``yyyy-MM-dd HH:mm:ss`` Beijing time;
    ``epoch_ms``). ``max_window_days``: longer windows are read in slices of at most this span. ``request``: fixed
    request parameters sent with every call, values as given. ``quota_reset``: when an exhausted daily quota
    comes back (Beijing midnight by default); the read waits for it, deferred, and goes on from where it stopped.
    Today's ``list_key``, ``window`` and
    ``bizcontent`` are read as ``list_path``, ``windows`` and ``request``.
    """

    system: Literal["jikeyun"] = "jikeyun"
    connection: str = "jikeyun_default"
    method: str = Field(min_length=1)
    list_path: str = Field(min_length=1)
    page_size: int = Field(50, ge=1, le=200)
    paging: Paging
    windows: list[WindowPair] = [WindowPair()]
    time_format: Literal["beijing", "epoch_ms"] = "beijing"
    max_window_days: float | None = Field(None, gt=0)
    request: dict[str, Any] = {}
    quota_reset: QuotaReset = QuotaReset()
    id_field: str = Field(min_length=1)
    deduplicate: bool = True
    record_model: str | None = None  # a key of RECORD_MODELS
    condition: list[list[Comparison]] = []  # OR of ANDs; empty keeps every record

    @model_validator(mode="before")
    @classmethod
    def _read_older_names(cls, data: Any) -> Any:
        """``list_key``, ``window`` and ``bizcontent`` as the new fields; ``paging`` by default ``time_keyset``
        when there is a window, else ``offset``."""
        if not isinstance(data, dict):
            return data
        if "include_blocked_and_deleted" in data:
            raise ValueError("include_blocked_and_deleted is gone: put the API's own parameter in request: "
                             "(erp.warehouse.get: request: {includeDeleteAndBlockup: 1})")
        data = _renamed(data, ("list_key", "list_path"), ("bizcontent", "request"))
        if "window" in data:
            if "windows" in data:
                raise ValueError("window is the older form of windows: give one of them")
            window = data.pop("window")
            data["windows"] = [] if window is None else [window]
        if "paging" not in data:
            data["paging"] = {"style": "time_keyset" if data.get("windows", [None]) else "offset"}
        return data

    @field_validator("list_path")
    @classmethod
    def _under_result_data(cls, value: str) -> str:
        path = value.removeprefix("result.data.")
        if not all(path.split(".")):
            raise ValueError(f"{value!r} is not a dotted path under result.data")
        return path

    @field_validator("record_model")
    @classmethod
    def _known_record_model(cls, value: str | None) -> str | None:
        if value is not None and value not in RECORD_MODELS:
            raise ValueError(f"unknown record model {value!r}; known: {', '.join(sorted(RECORD_MODELS))}")
        return value

    @model_validator(mode="after")
    def _paging_fits_the_windows(self) -> SourceSpec:
        style = self.paging.style
        if style in ("time_keyset", "scroll") and not self.windows:
            raise ValueError(f"paging: {style} reads a window: windows: must name at least one pair")
        if style == "offset" and self.windows:
            raise ValueError("paging: offset pages lose records that change during the read: use time_keyset, "
                             "id_cursor or scroll with windows:, or windows: [] for a source without a window")
        if self.max_window_days is not None and not self.windows:
            raise ValueError("max_window_days: slices a window, but windows: is empty")
        owned = [*PAGING_PARAMS, *(p for pair in self.windows for p in (pair.start_param, pair.end_param))]
        if isinstance(self.paging, IdCursorPaging):
            owned.append(self.paging.cursor_param)
        elif isinstance(self.paging, ScrollPaging):
            owned.append(self.paging.scroll_param)
        clashes = sorted(set(owned) & set(self.request))
        if clashes:
            raise ValueError(f"request: {', '.join(clashes)} is set by the paging, not by the scheme")
        return self

    @property
    def record_type(self) -> type[BaseModel] | None:
        """The record model every source record is validated into, if the scheme names one."""
        return RECORD_MODELS[self.record_model] if self.record_model else None

    @property
    def modified_fields(self) -> list[str]:
        """The modification-time fields of the passes, in pass order, each once (``gmtModified`` without a window)."""
        return list(dict.fromkeys(pair.modified_field for pair in self.windows)) or ["gmtModified"]

    @property
    def modified_field(self) -> str:
        """The record field holding its modification time: the first pass's (see :attr:`modified_fields`)."""
        return self.modified_fields[0]

    @property
    def max_window(self) -> timedelta | None:
        """The longest span one request's window may cover, if the API limits it."""
        return None if self.max_window_days is None else timedelta(days=self.max_window_days)

    @property
    def condition_fields(self) -> list[str]:
        return sorted({c.field for group in self.condition for c in group})


class Lifecycle(_Model):
    """What becomes of source records that are blocked up or deleted.

    A record is ``deleted`` when its deleted field is truthy (1, "1", true), else ``blocked`` when any of its
    blocked fields is, else ``active``. ``blocked_field`` is one field or a list of them, for a source that blocks
    up at two levels (goods: ``[isBlockup, skuIsBlockup]``, the goods' and the SKU's). ``forbid`` stages the record
    so that load forbids it in the target (禁用) where it exists (and never creates it); ``ignore`` drops it in
    filter, as the condition would.
    """

    blocked_field: Annotated[str, Field(min_length=1)] | list[Annotated[str, Field(min_length=1)]] = "isBlockup"
    deleted_field: str = Field("isDelete", min_length=1)
    on_blocked: Literal["forbid", "ignore"] = "ignore"
    on_deleted: Literal["forbid", "ignore"] = "ignore"

    @field_validator("blocked_field")
    @classmethod
    def _at_least_one_blocked_field(cls, value: str | list[str]) -> str | list[str]:
        if isinstance(value, list) and not value:
            raise ValueError("name at least one field")
        return value

    @property
    def blocked_fields(self) -> list[str]:
        """The blocked fields, as a list (any of them truthy: the record is blocked up)."""
        return [self.blocked_field] if isinstance(self.blocked_field, str) else list(self.blocked_field)

    @property
    def fields(self) -> list[str]:
        return [*self.blocked_fields, self.deleted_field]

    @property
    def forbids(self) -> bool:
        return "forbid" in (self.on_blocked, self.on_deleted)


class LookupSpec(_Model):
    """One lookup table of the scheme (``lookups:``): source value → Kingdee number.

    :param values: the table (keys compared as text)
    :param missing: a key the table lacks: ``reject`` the record (naming it, the table and the key) or ``identity``
        (the key itself)
    """

    values: dict[str, str]
    missing: Literal["reject", "identity"] = "reject"

    @field_validator("values", mode="before")
    @classmethod
    def _keys_as_text(cls, values: Any) -> Any:
        return {str(k): str(v) for k, v in values.items()} if isinstance(values, dict) else values


class TargetSpec(_Model):
    """Where rows go: a Kingdee form of one organisation, how they are written and approved.

    ``fields`` are the written fields, each of one kind (:mod:`jikeyun_kingdee.fields`); ``pk_field`` the form's
    primary key (``FStockId``, ``FMATERIALID``, ``FID``), ``number_field`` its business key, unique within the
    organisation of ``organisation_field`` (base data: ``FUseOrgId``; documents e.g. ``FStockOrgId``).
    ``approval``: ``auto`` creates in one BatchSave with ``IsAutoSubmitAndAudit`` (save, submit and audit in one
    transaction; rows it refuses for their submit/audit go the explicit way); ``explicit`` is Save, Submit, Audit;
    ``none`` saves only. Updates always take the explicit chain. The older ``submit_and_audit: true|false`` is
    still read (``explicit`` / ``none``). ``lookup_limit``: the most rows one ExecuteBillQuery may ask for
    (``Limit``; older servers refuse more than 2000), also the most numbers one IN look-up asks.
    """

    system: Literal["kingdee"] = "kingdee"
    connection: str = "kingdee_default"
    kind: Literal["base_data", "document"] = "base_data"
    form_id: str = Field(min_length=1)
    organisation: str = Field(min_length=1)
    organisation_field: str = Field("FUseOrgId", min_length=1)
    number_field: str = Field("FNumber", min_length=1)
    pk_field: str = Field(min_length=1)
    rows_per_batch: int = Field(100, ge=1, le=1000)
    approval: Literal["auto", "explicit", "none"] = "explicit"
    lookup_limit: int = Field(2000, ge=1, le=10000)
    save_options: dict[str, Any] = {}  # further BatchSave parameters, e.g. InterationFlags: STK_InvCheckResult
    required: list[str] = []
    fields: dict[str, Any]  # see jikeyun_kingdee.fields: scalars, references, sub-entities, entry lists, write-only
    _field_map: FieldMap | None = PrivateAttr(default=None)

    @model_validator(mode="before")
    @classmethod
    def _submit_and_audit_is_an_approval(cls, data: Any) -> Any:
        if not isinstance(data, dict) or "submit_and_audit" not in data:
            return data
        data = dict(data)
        legacy = data.pop("submit_and_audit")
        if not isinstance(legacy, bool):
            raise ValueError(f"submit_and_audit: {legacy!r} is not true or false (better: approval auto|explicit|none)")
        implied = "explicit" if legacy else "none"
        if data.setdefault("approval", implied) != implied and not (legacy and data["approval"] == "auto"):
            raise ValueError(f"submit_and_audit: {legacy} contradicts approval: {data['approval']}")
        return data

    @property
    def submit_and_audit(self) -> bool:
        """Whether saved records are submitted and audited (``approval`` other than ``none``)."""
        return self.approval != "none"

    @model_validator(mode="after")
    def _keys_are_mapped(self) -> TargetSpec:
        for name in [self.number_field, *self.required]:
            if name not in self.fields:
                raise ValueError(f"fields: {name!r} must be mapped")
        return self

    def bind(self, lookups: dict[str, LookupSpec]) -> FieldMap:
        """Parse ``fields`` with the scheme's lookup tables (the scheme does it when it loads).

        :raises ValueError: naming the field (``target.fields.SubHeadEntity.FBaseUnitId: …``).
        """
        tables = {name: Lookup(name, spec.values, spec.missing) for name, spec in lookups.items()}
        try:
            self._field_map = FieldMap.parse(self.fields, tables, keys=(self.number_field, self.pk_field))
        except ValueError as exc:
            raise ValueError(f"target.{exc}") from None
        return self._field_map

    @property
    def field_map(self) -> FieldMap:
        """The parsed fields (:class:`jikeyun_kingdee.fields.FieldMap`); a target outside a scheme has no tables."""
        return self._field_map if self._field_map is not None else self.bind({})

    @property
    def organisation_key(self) -> str:
        """The ExecuteBillQuery key of the organisation: ``<organisation_field>.FNumber``."""
        return reference_key(self.organisation_field)


class BaseDataSpec(_Model):
    """What a document scheme (``target.kind: document``) waits for: the base-data schemes its fields reference.

    :param schemes: names of the base-data schemes (same folder) whose run for the same window the load waits for
    :param wait_minutes: how long the load waits for those runs at most (deferred, no worker slot), then goes on:
        documents whose references are still missing are kept ``waiting`` and retried by later runs
    :param max_wait_hours: alert when a document has waited for base data longer than this
    :param organisation_forms: the referenced base-data forms whose records belong to the target's organisation
        (``FUseOrgId``): a reference is ready only when it is there (others, e.g. BD_UNIT, are looked up anywhere)
    """

    schemes: list[str] = []
    wait_minutes: int = Field(30, ge=0)
    max_wait_hours: float = Field(24, gt=0)
    organisation_forms: list[str] = []


class ReconcileSpec(_Model):
    """The scheme's reconciliation DAG (``jikeyun_kingdee_<name>_reconcile``): when it runs and whether it repairs.

    :param schedule: cron expression in the scheme's timezone (daily at 02:30 by default)
    :param repair: repair the drift it finds (the trigger form's ``repair`` param overrides it per run)
    """

    schedule: CronExpression = "30 2 * * *"
    repair: bool = True


class AlertingConfig(BaseModel):
    """Alerting section of a scheme: which channels get which alerts.

    :param dingtalk_conn_id: DingTalk robot connection (conn type ``dingding``).
    :param wecom_conn_id: WeCom robot connection (conn type ``http``, key in ``password``).
    :param email_to: recipients of alert emails; empty = no email.
    :param email_conn_id: SMTP connection for the emails.
    :param on_failure: alert when a task fails (after its last retry).
    :param on_rejects: alert when a run rejected records.
    :param on_drift: alert when a reconcile run found Kingdee different from Jikeyun.
    :param deadline_minutes: alert when a run is not finished this many minutes after it was queued
        (Airflow 3.1+ Deadline Alerts); ``None`` = no deadline.
    :param base_url: Airflow UI base for links; default ``[api] base_url``.
    """

    model_config = ConfigDict(extra="forbid")

    dingtalk_conn_id: str | None = None
    wecom_conn_id: str | None = None
    email_to: list[str] = Field(default_factory=list)
    email_conn_id: str = "smtp_default"
    on_failure: bool = True
    on_rejects: bool = True
    on_drift: bool = True
    deadline_minutes: int | None = Field(default=None, gt=0)
    base_url: str | None = None

    @property
    def channels(self) -> list[str]:
        """Names of the configured channels."""
        return [
            name
            for name, configured in (
                ("dingtalk", self.dingtalk_conn_id),
                ("wecom", self.wecom_conn_id),
                ("email", self.email_to),
            )
            if configured
        ]


class Scheme(_Model):
    """One integration scheme: one DAG (and its reconciliation DAG)."""

    name: str = Field(pattern=r"^[A-Za-z0-9_]+$")
    description: str = ""
    owner: str = "data-integration"
    tags: list[str] = []
    schedule: CronExpression = "0 * * * *"
    timezone: str = "Asia/Shanghai"
    start_date: datetime
    catchup: bool = True
    retries: int = Field(3, ge=0)
    retry_delay_seconds: int = Field(60, ge=0)
    retry_exponential_backoff: bool = True
    max_retry_delay_seconds: int = Field(1800, ge=0)
    max_load_chunks: int = Field(64, ge=1, le=1024)
    rows_per_chunk: int = Field(2000, ge=1)  # rows per mapped load task; grows when max_load_chunks would be exceeded
    alerting: AlertingConfig = AlertingConfig()
    reconcile: ReconcileSpec = ReconcileSpec()
    source: SourceSpec
    target: TargetSpec
    lookups: dict[str, LookupSpec] = {}
    lifecycle: Lifecycle | None = None
    base_data: BaseDataSpec | None = None

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            pendulum.timezone(value)
        except Exception as exc:
            raise ValueError(f"unknown timezone {value!r}") from exc
        return value

    @model_validator(mode="after")
    def _aware_start(self) -> Scheme:
        if self.start_date.tzinfo is None:
            object.__setattr__(self, "start_date", pendulum.instance(self.start_date, tz=self.timezone))
        return self

    @model_validator(mode="after")
    def _fields_know_the_lookups(self) -> Scheme:
        self.target.bind(self.lookups)
        return self

    @model_validator(mode="after")
    def _documents_wait_for_base_data(self) -> Scheme:
        if self.target.kind == "document":
            if self.lifecycle is not None:
                raise ValueError("lifecycle: a document is posted once and never forbidden; filter it by condition")
            if self.target.approval == "explicit":
                raise ValueError("target.approval: a document is created audited in its BatchSave (auto) or saved "
                                 "only (none); explicit is for base data")
            if self.reconcile.repair:
                raise ValueError("reconcile.repair: a posted document is never edited; its reconcile reports "
                                 "(repair: false)")
            if self.base_data is None:
                object.__setattr__(self, "base_data", BaseDataSpec())
        elif self.base_data is not None:
            raise ValueError("base_data: only a document scheme (target.kind: document) waits for base data")
        return self

    @property
    def dag_id(self) -> str:
        return f"jikeyun_kingdee_{self.name}"

    @property
    def keys_are_numbers(self) -> bool:
        """Whether the source key is the Kingdee number (``number_field`` is ``"{<id_field>}"``): the ledger's keys
        then name Kingdee records, so a document scheme can ask this scheme's ledger about a reference."""
        return self.target.fields.get(self.target.number_field) == f"{{{self.source.id_field}}}"

    @property
    def reconcile_dag_id(self) -> str:
        return f"jikeyun_kingdee_{self.name}_reconcile"

    @property
    def filter_fields(self) -> list[str]:
        """The source fields filter reads: the condition's and the lifecycle's."""
        return sorted({*self.source.condition_fields, *(self.lifecycle.fields if self.lifecycle else [])})


def validation_message(error: ValidationError) -> str:
    """``field.path: message; …`` of every error in a pydantic ValidationError (no input values)."""
    parts = []
    for item in error.errors():
        where = ".".join(str(p) for p in item["loc"])
        message = item["msg"].removeprefix("Value error, ")  # our validators' messages name their own field
        parts.append(f"{where}: {message}" if where else message)
    return "; ".join(parts)


def load_scheme(path: str | Path) -> Scheme:
    """Load and validate one scheme file (YAML or the platform's JSON).

    :raises SchemeError: naming the file and the offending field.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
        raw = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
        if not isinstance(raw, dict):
            raise SchemeError(f"{path}: a scheme must be a mapping, not {type(raw).__name__}")
        if path.suffix == ".json":
            return scheme_from_platform(**raw)
        return Scheme.model_validate(raw)
    except ValidationError as exc:
        raise SchemeError(f"{path}: {validation_message(exc)}") from None
    except (OSError, yaml.YAMLError, json.JSONDecodeError) as exc:
        raise SchemeError(f"{path}: cannot read: {exc}") from None
    except (SchemeError, ValueError, TypeError) as exc:
        message = str(exc)
        raise SchemeError(message if message.startswith(str(path)) else f"{path}: {message}") from None


def scheme_files(folder: str | Path) -> list[Path]:
    folder = Path(folder)
    return sorted(p for p in folder.glob("*") if p.suffix in (".yaml", ".yml", ".json") and p.is_file())


def default_schemes_folder(dags_file: str | Path) -> Path:
    """``$JIKEYUN_KINGDEE_SCHEMES`` or ``include/schemes`` next to the dags folder of ``dags_file``."""
    configured = os.environ.get("JIKEYUN_KINGDEE_SCHEMES")
    return Path(configured) if configured else Path(dags_file).resolve().parents[1] / "include" / "schemes"


# -- the hosted platform's metadata ---------------------------------------------------------------------------


def scheme_from_platform(*, source: dict[str, Any], target: dict[str, Any], form_id: str, **scheme: Any) -> Scheme:
    """Turn the platform's source and target blocks into a :class:`Scheme`.

    :param source: the platform's source block (``api``, ``id``, ``idCheck``, ``request``, ``condition``, ...).
    :param target: the platform's target block (``api``, ``request``, ``operation``).
    :param form_id: the Kingdee form the target writes (the platform kept it outside the block).
    :param scheme: the other :class:`Scheme` fields (name, start_date, owner, ``lifecycle``, ...).

    The platform has no lifecycle: it only ever dropped blocked-up records by its condition, and never forbade
    anything in the target. Its ``condition_bk`` is a disabled alternative of ``condition`` (the same ``isBlockup``
    test, compared case-insensitively), not a lifecycle rule, so it is neither applied nor mapped. A platform file
    gets a lifecycle only from a top-level ``"lifecycle"`` object (the YAML's form); ``forbid`` then needs the
    request field ``includeDeleteAndBlockup`` = 1, else the API never returns what is to be forbidden.
    """
    spec = _platform_source(source)
    lifecycle = scheme.get("lifecycle") or {}
    forbids = isinstance(lifecycle, dict) and "forbid" in (lifecycle.get("on_blocked"), lifecycle.get("on_deleted"))
    if forbids and not truthy(spec["request"].get(WITH_BLOCKED_AND_DELETED)):
        _fail("lifecycle", f"'forbid' needs the source request field {WITH_BLOCKED_AND_DELETED} with value 1")
    return Scheme.model_validate({**scheme, "source": spec, "target": _platform_target(target, form_id)})


def _platform_source(block: dict[str, Any]) -> dict[str, Any]:
    method = block.get("api") or _fail("source.api", "missing")
    spec: dict[str, Any] = {"method": method, "id_field": block.get("id") or block.get("number")}
    spec["deduplicate"] = bool(block.get("idCheck", False))
    if method in JIKEYUN_LIST_KEYS:
        spec["list_path"] = JIKEYUN_LIST_KEYS[method]
    if "list_key" in block:
        spec["list_path"] = block["list_key"]
    if method == "erp.warehouse.get":
        spec["record_model"] = "warehouse"
    window: dict[str, str] = {}
    request: dict[str, Any] = {}
    for i, item in enumerate(block.get("request", [])):
        field, value = item.get("field"), item.get("value")
        where = f"source.request[{i}] ({field})"
        if not field:
            _fail(f"source.request[{i}]", "has no 'field'")
        if field == "pageIndex":
            continue
        if field == "pageSize":
            spec["page_size"] = int(value) if value not in (None, "") else 50
            continue
        variable = PLATFORM_VARIABLE.match(value) if isinstance(value, str) else None
        if variable:
            name = variable.group(1)
            if name == "LAST_SYNC_TIME":
                window["start_param"] = field
            elif name == "CURRENT_TIME":
                window["end_param"] = field
            else:
                _fail(where, f"unknown variable {{{{{name}}}}}; known: LAST_SYNC_TIME, CURRENT_TIME")
        elif isinstance(value, str) and ("{{" in value or "}}" in value):
            _fail(where, f"malformed variable {value!r}")
        elif value is not None:
            request[field] = value
    if window:
        if set(window) != {"start_param", "end_param"}:
            _fail("source.request", "a window needs both {{LAST_SYNC_TIME}} and {{CURRENT_TIME}} fields")
        spec["windows"] = [{**window, "modified_field": "gmtModified"}]
    else:
        spec["windows"] = []
    # Sent as the platform sent it: without includeDeleteAndBlockup, erp.warehouse.get leaves deleted and
    # blocked-up warehouses out (see scheme_from_platform).
    spec["request"] = request
    # ``condition_bk`` is the platform's disabled alternative condition: not applied (see scheme_from_platform).
    spec["condition"] = [
        [_platform_comparison(c, f"source.condition[{i}][{j}]") for j, c in enumerate(group)]
        for i, group in enumerate(block.get("condition", []))
    ]
    return spec


def _platform_comparison(item: dict[str, Any], where: str) -> dict[str, Any]:
    logic = str(item.get("logic", "")).lower()
    if logic not in PLATFORM_OPERATORS:
        _fail(f"{where} ({item.get('field')})",
              f"unknown operator {item.get('logic')!r}; known: {sorted(PLATFORM_OPERATORS)}")
    value = item.get("value")
    if PLATFORM_OPERATORS[logic] in ("in", "not_in") and isinstance(value, str):
        value = [v.strip() for v in value.split(",")]
    return {"field": item.get("field"), "op": PLATFORM_OPERATORS[logic], "value": value}


def _platform_target(block: dict[str, Any], form_id: str) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    submit_and_audit = False
    organisation = None
    for i, item in enumerate(block.get("request", [])):
        field, value, kind = item.get("field"), item.get("value"), item.get("type", "string")
        if not field:
            _fail(f"target.request[{i}]", "has no 'field'")
        if field == "IsAutoSubmitAndAudit":
            submit_and_audit = truthy(value)
            continue
        if isinstance(value, str) and value.lower() in ("true", "false") and kind in ("string", "bool"):
            # Kingdee takes "true" and true alike (docs/protocol/kingdee.md §1, body shapes)
            value = value.lower() == "true"
        if isinstance(value, str) and not REFERENCE.match(value) and field.endswith("OrgId"):
            organisation = organisation or value
            value = {"FNumber": value}  # organisation fields are base-data references by number
        fields[field] = value
    operation = block.get("operation") or {}
    if form_id not in KINGDEE_PK_FIELDS:
        _fail("form_id", f"{form_id!r}: its primary key is not known; known forms: {sorted(KINGDEE_PK_FIELDS)}")
    return {
        "form_id": form_id,
        "pk_field": KINGDEE_PK_FIELDS[form_id],
        "organisation": organisation or _fail("target.request", "no organisation (F...OrgId) field"),
        "fields": fields,
        "rows_per_batch": int(operation.get("rows", 100)),
        "approval": "auto" if submit_and_audit else "none",  # the platform sent IsAutoSubmitAndAudit itself
        "required": [f for f in ("FName", "FNumber") if f in fields],
    }


def _fail(where: str, message: str) -> Any:
    raise SchemeError(f"{where}: {message}")
