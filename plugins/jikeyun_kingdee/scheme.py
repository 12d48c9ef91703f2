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
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import pendulum
import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from jikeyun_kingdee.records import Warehouse

REFERENCE = re.compile(r"^\{([A-Za-z_][A-Za-z0-9_.]*)\}$")
PLATFORM_VARIABLE = re.compile(r"^\{\{\s*([A-Z_]+)\s*(?:\|\s*([a-z]+)\s*)?\}\}$")

# Source-record models a scheme may name as ``source.record_model``: each record is validated into it in transform.
RECORD_MODELS: dict[str, type[BaseModel]] = {"warehouse": Warehouse}

# List keys of Jikeyun query APIs (docs/protocol/jikeyun.md §8); the platform's metadata does not name them.
JIKEYUN_LIST_KEYS = {
    "erp.warehouse.get": "warehouseInfo",
    "erp.sales.get": "salesChannelInfo",
    "erp.logistic.get": "logisticInfo",
    "erp.vend.get": "vendInfo",
    "erp.stockquantity.get": "goodsStockQuantity",
    "erp.allocate.get": "stockAllocate",
}

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


class SchemeError(ValueError):
    """A scheme file is invalid; the message names the file and the field."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Comparison(_Model):
    """One test of a source field, e.g. ``isBlockup eq 0``."""

    field: str = Field(min_length=1)
    op: Operator = "eq"
    value: Any = None


class WindowSpec(_Model):
    """How the incremental window is sent and which record field it filters on."""

    start_field: str = "gmtModifiedStart"
    end_field: str = "gmtModifiedEnd"
    modified_field: str = "gmtModified"


class SourceSpec(_Model):
    system: Literal["jikeyun"] = "jikeyun"
    connection: str = "jikeyun_default"
    method: str = Field(min_length=1)
    list_key: str = Field(min_length=1)
    page_size: int = Field(50, ge=1, le=200)
    window: WindowSpec | None = WindowSpec()  # None: the API has no window, every run reads everything
    include_blocked_and_deleted: bool = True
    bizcontent: dict[str, Any] = {}
    id_field: str = Field(min_length=1)
    deduplicate: bool = True
    record_model: str | None = None  # a key of RECORD_MODELS
    condition: list[list[Comparison]] = []  # OR of ANDs; empty keeps every record

    @field_validator("record_model")
    @classmethod
    def _known_record_model(cls, value: str | None) -> str | None:
        if value is not None and value not in RECORD_MODELS:
            raise ValueError(f"unknown record model {value!r}; known: {', '.join(sorted(RECORD_MODELS))}")
        return value

    @property
    def record_type(self) -> type[BaseModel] | None:
        """The record model every source record is validated into, if the scheme names one."""
        return RECORD_MODELS[self.record_model] if self.record_model else None

    @property
    def modified_field(self) -> str:
        """The record field holding its modification time (the window's, else Jikeyun's ``gmtModified``)."""
        return self.window.modified_field if self.window else "gmtModified"

    @property
    def condition_fields(self) -> list[str]:
        return sorted({c.field for group in self.condition for c in group})


class Lifecycle(_Model):
    """What becomes of source records that are blocked up or deleted.

    A record is ``deleted`` when its deleted field is truthy (1, "1", true), else ``blocked`` when its blocked field
    is, else ``active``. ``forbid`` stages the record so that load forbids it in the target (禁用) where it exists
    (and never creates it); ``ignore`` drops it in filter, as the condition would.
    """

    blocked_field: str = Field("isBlockup", min_length=1)
    deleted_field: str = Field("isDelete", min_length=1)
    on_blocked: Literal["forbid", "ignore"] = "ignore"
    on_deleted: Literal["forbid", "ignore"] = "ignore"

    @property
    def fields(self) -> list[str]:
        return [self.blocked_field, self.deleted_field]

    @property
    def forbids(self) -> bool:
        return "forbid" in (self.on_blocked, self.on_deleted)


class TargetSpec(_Model):
    """Where rows go: a Kingdee form of one organisation, how they are written and approved.

    ``approval``: ``auto`` creates in one BatchSave with ``IsAutoSubmitAndAudit`` (save, submit and audit in one
    transaction; rows it refuses for their submit/audit go the explicit way); ``explicit`` is Save, Submit, Audit;
    ``none`` saves only. Updates always take the explicit chain. The older ``submit_and_audit: true|false`` is
    still read (``explicit`` / ``none``). ``lookup_limit``: the most rows one ExecuteBillQuery may ask for
    (``Limit``; older servers refuse more than 2000), also the most numbers one IN look-up asks.
    """

    system: Literal["kingdee"] = "kingdee"
    connection: str = "kingdee_default"
    form_id: str = Field(min_length=1)
    organisation: str = Field(min_length=1)
    number_field: str = "FNumber"
    pk_field: str = "FStockId"
    rows_per_batch: int = Field(100, ge=1, le=1000)
    approval: Literal["auto", "explicit", "none"] = "explicit"
    lookup_limit: int = Field(2000, ge=1, le=10000)
    required: list[str] = []
    fields: dict[str, Any]  # "{sourceField}" references, constants, {"FNumber": ...} base-data references

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

    @field_validator("fields")
    @classmethod
    def _references_are_well_formed(cls, fields: dict[str, Any]) -> dict[str, Any]:
        for name, value in fields.items():
            for text in _strings(value):
                if ("{" in text or "}" in text) and not REFERENCE.match(text):
                    raise ValueError(f"field {name!r}: {text!r} is not a constant nor a '{{sourceField}}' reference")
        return fields

    @model_validator(mode="after")
    def _keys_are_mapped(self) -> TargetSpec:
        for name in [self.number_field, *self.required]:
            if name not in self.fields:
                raise ValueError(f"fields: {name!r} must be mapped")
        return self


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
    lifecycle: Lifecycle | None = None

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
    def _lifecycle_sees_what_it_forbids(self) -> Scheme:
        if self.lifecycle is not None and self.lifecycle.forbids and not self.source.include_blocked_and_deleted:
            raise ValueError(
                "lifecycle: 'forbid' needs source.include_blocked_and_deleted: true "
                "(otherwise the API never returns blocked-up or deleted records)"
            )
        return self

    @property
    def dag_id(self) -> str:
        return f"jikeyun_kingdee_{self.name}"

    @property
    def reconcile_dag_id(self) -> str:
        return f"jikeyun_kingdee_{self.name}_reconcile"

    @property
    def filter_fields(self) -> list[str]:
        """The source fields filter reads: the condition's and the lifecycle's."""
        return sorted({*self.source.condition_fields, *(self.lifecycle.fields if self.lifecycle else [])})


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


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
    if forbids and not spec["include_blocked_and_deleted"]:
        _fail("lifecycle", "'forbid' needs the source request field includeDeleteAndBlockup with value 1")
    return Scheme.model_validate({**scheme, "source": spec, "target": _platform_target(target, form_id)})


def _platform_source(block: dict[str, Any]) -> dict[str, Any]:
    method = block.get("api") or _fail("source.api", "missing")
    spec: dict[str, Any] = {"method": method, "id_field": block.get("id") or block.get("number")}
    spec["deduplicate"] = bool(block.get("idCheck", False))
    if method in JIKEYUN_LIST_KEYS:
        spec["list_key"] = JIKEYUN_LIST_KEYS[method]
    if "list_key" in block:
        spec["list_key"] = block["list_key"]
    if method == "erp.warehouse.get":
        spec["record_model"] = "warehouse"
    window: dict[str, str] = {}
    bizcontent: dict[str, Any] = {}
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
                window["start_field"] = field
            elif name == "CURRENT_TIME":
                window["end_field"] = field
            else:
                _fail(where, f"unknown variable {{{{{name}}}}}; known: LAST_SYNC_TIME, CURRENT_TIME")
        elif isinstance(value, str) and ("{{" in value or "}}" in value):
            _fail(where, f"malformed variable {value!r}")
        elif value is not None:
            bizcontent[field] = value
    if window:
        if set(window) != {"start_field", "end_field"}:
            _fail("source.request", "a window needs both {{LAST_SYNC_TIME}} and {{CURRENT_TIME}} fields")
        spec["window"] = {**window, "modified_field": "gmtModified"}
    else:
        spec["window"] = None
    spec["bizcontent"] = bizcontent
    # The platform sent no includeDeleteAndBlockup, so the API left deleted and blocked-up records out.
    spec["include_blocked_and_deleted"] = _truthy(bizcontent.pop("includeDeleteAndBlockup", 0))
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
            submit_and_audit = _truthy(value)
            continue
        if isinstance(value, str) and value.lower() in ("true", "false") and kind in ("string", "bool"):
            # Kingdee takes "true" and true alike (docs/protocol/kingdee.md §1, body shapes)
            value = value.lower() == "true"
        if isinstance(value, str) and not REFERENCE.match(value) and field.endswith("OrgId"):
            organisation = organisation or value
            value = {"FNumber": value}  # organisation fields are base-data references by number
        fields[field] = value
    operation = block.get("operation") or {}
    return {
        "form_id": form_id,
        "organisation": organisation or _fail("target.request", "no organisation (F...OrgId) field"),
        "fields": fields,
        "rows_per_batch": int(operation.get("rows", 100)),
        "approval": "auto" if submit_and_audit else "none",  # the platform sent IsAutoSubmitAndAudit itself
        "required": [f for f in ("FName", "FNumber") if f in fields],
    }


def _truthy(value: Any) -> bool:
    return str(value).strip().lower() in ("1", "true", "yes")


def _fail(where: str, message: str) -> Any:
    raise SchemeError(f"{where}: {message}")
