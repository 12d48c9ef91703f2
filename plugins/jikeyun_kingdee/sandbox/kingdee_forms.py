"""The Kingdee sandbox's forms: what each form stores (the table :data:`FORMS`), how a Model data package is read
and checked against it, and the records in memory (:class:`Store`).

A form is a table entry: primary key, number field, the organisation a record belongs to, fields with their kind
(scalar, reference to another form, sub-entity child, entry line), the required ones with their labels, and whether
it is base data (forbid status, number unique per use organisation) or a document (number unique per form). Adding
the next form (``STK_MisDelivery``, ``SAL_RETURNSTOCK``, …) is an entry here, not code.

Records are stored flat: header and sub-entity fields under their own keys (sub-entity keys are unique within a
form, and ExecuteBillQuery reads them without the entity name), references as the referenced record's number, entry
lines as a list of dicts under the entry's key. Keys of incoming packages are matched case-insensitively, as the real
server does (``FNUMBER`` = ``FNumber``). How sure each fact is: ``docs/protocol/kingdee.md``.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Any, Literal

Kind = Literal["text", "bool", "number", "date", "enum", "reference"]
Problem = tuple[str | None, str]  # (FieldName, Message) of one error of a data package
AUDITED, NORMAL = "C", "A"  # FDocumentStatus 已审核, FForbidStatus 正常
ORGANISATIONS = "ORG_Organizations"


@dataclass(frozen=True)
class Field:
    """One field of a form.

    :param key: the key in its documented spelling (incoming keys are matched case-insensitively)
    :param label: the caption used in messages (字段“<label>”是必填项)
    :param kind: ``text``, ``bool``, ``number`` (stored as float), ``date`` (stored as ``YYYY-MM-DDTHH:MM:SS``),
        ``enum`` (one of ``choices``) or ``reference`` (``{"FNumber": x}``, stored as the number)
    :param form: the form a reference points to; None = base data the sandbox does not keep (stored, never checked)
    :param scope: for a reference to organisation-scoped base data, the header field holding the organisation the
        referenced record must belong to (a document's materials and warehouses: its stock organisation)
    :param required: the save's required-field check applies (a number of 0 counts as not entered [I])
    :param default: the value of a field a create does not send
    :param default_from: a create that does not send the field takes this field's value (units that default from
        the base unit); a required field must still be sent
    :param choices: the values an ``enum`` accepts
    :param where: fields the referenced record must have (a bill type belongs to one form)
    """

    key: str
    label: str
    kind: Kind = "text"
    form: str | None = None
    scope: str | None = None
    required: bool = False
    default: Any = None
    default_from: str | None = None
    choices: tuple[str, ...] = ()
    where: tuple[tuple[str, str], ...] = ()

    def empty_value(self) -> Any:
        """What a create stores when the field is neither sent nor defaulted."""
        if self.default is not None:
            return self.default
        return {"bool": False, "number": 0.0}.get(self.kind, "")

    def is_empty(self, value: Any) -> bool:
        if self.kind == "bool":
            return False
        if self.kind == "number":
            return not value
        return str(value or "").strip() == ""


def ref(key: str, label: str, form: str | None, **options: Any) -> Field:
    """A reference field (``{"FNumber": x}``)."""
    return Field(key, label, "reference", form=form, **options)


def org(key: str, label: str, **options: Any) -> Field:
    """A required reference to an organisation."""
    return ref(key, label, ORGANISATIONS, required=True, **options)


@dataclass(frozen=True)
class Child:
    """A sub-entity (one-to-one child, e.g. ``SubHeadEntity``): a nested object in the Model, stored flat."""

    key: str
    fields: tuple[Field, ...]


@dataclass(frozen=True)
class Entry:
    """An entry (one-to-many lines, e.g. ``FEntity``): a list of rows, each with its own generated id.

    :param label: the caption in messages (单据体“<label>”第1行…)
    :param pk: the row id key (``FEntryID``); ExecuteBillQuery reads it as ``<key>_<pk>``
    :param required: a document needs at least one row
    """

    key: str
    label: str
    pk: str
    fields: tuple[Field, ...]
    required: bool = True

    @cached_property
    def by_key(self) -> dict[str, Field]:
        return {f.key.lower(): f for f in self.fields}


@dataclass(frozen=True)
class Form:
    """One business object (表单) the sandbox keeps.

    :param form_id: e.g. ``BD_MATERIAL``
    :param label: its caption in messages (编码为“X”的<label>，…)
    :param pk: the primary key (内码) field
    :param number: the business key field (``FNumber``, a document's ``FBillNo``)
    :param number_label: its caption in messages (编码为“X”…, 单据编号为“X”…)
    :param fields: header fields, in the order the required-field check reports them
    :param children: sub-entities; their fields are stored and queried by their own keys
    :param entries: entry lines
    :param org: the organisation a record belongs to (scripting ``org=``, ``UseOrgId`` of Submit … by number)
    :param unique_per_org: the number is unique per ``org`` (base data) or per form (documents)
    :param base_data: base data has ``FForbidStatus`` and Forbid/Enable; a document has neither
    :param writable: Save, Submit … are accepted (not on system tables such as the organisations)
    :param all_errors: a refused package lists every failing field (as the captured document errors do), or only
        the first (what the sandbox has always answered for BD_STOCK; no capture says which a warehouse gets)
    :param stock_check: auditing it asks the negative-stock interaction ``STK_InvCheckResult``
    :param bill_no_prefix: a document's coding rule: the prefix of the number given to a package without one
    """

    form_id: str
    label: str
    pk: str
    fields: tuple[Field, ...]
    number: str = "FNumber"
    number_label: str = "编码"
    children: tuple[Child, ...] = ()
    entries: tuple[Entry, ...] = ()
    org: str | None = None
    unique_per_org: bool = True
    base_data: bool = True
    writable: bool = True
    all_errors: bool = True
    stock_check: bool = False
    bill_no_prefix: str = ""

    def __post_init__(self) -> None:
        keys = [self.pk, *(f.key for f in self.flat_fields), *(e.key for e in self.entries)]
        clashes = [k for k, n in Counter(k.lower() for k in keys).items() if n > 1]
        if clashes:
            raise ValueError(f"{self.form_id}: field keys used twice: {clashes}")

    @cached_property
    def flat_fields(self) -> tuple[Field, ...]:
        """Header fields, then the sub-entities' fields (all stored on the record itself)."""
        return (*self.fields, *(f for child in self.children for f in child.fields))

    @cached_property
    def by_key(self) -> dict[str, Field]:
        return {f.key.lower(): f for f in self.flat_fields}

    @cached_property
    def statuses(self) -> tuple[str, ...]:
        return ("FDocumentStatus", "FForbidStatus") if self.base_data else ("FDocumentStatus",)

    def field(self, key: str) -> Field | None:
        return self.by_key.get(key.lower())

    def child(self, key: str) -> Child | None:
        return next((c for c in self.children if c.key.lower() == key.lower()), None)

    def entry(self, key: str) -> Entry | None:
        return next((e for e in self.entries if e.key.lower() == key.lower()), None)


def _units(prefix: str, label: str, base: str = "FBaseUnitId") -> tuple[Field, Field]:
    return (ref(f"F{prefix}UnitId", f"{label}单位", "BD_UNIT", default_from=base),
            ref(f"F{prefix}PriceUnitId", f"{label}计价单位", "BD_UNIT", default_from=base))


def _base(form_id: str, label: str, pk: str, *extra: Field, per_org: bool = False, **options: Any) -> Form:
    """A base-data form: number and name (and creating/using organisation when ``per_org``), then ``extra``."""
    orgs = (org("FCreateOrgId", "创建组织"), org("FUseOrgId", "使用组织", default_from="FCreateOrgId"))
    return Form(form_id, label, pk, (*(orgs if per_org else ()), Field("FNumber", "编码", required=True),
                                     Field("FName", "名称", required=True), *extra),
                org="FUseOrgId" if per_org else None, unique_per_org=per_org, **options)


ERP_CLASSES = tuple(str(n) for n in range(1, 14))  # 物料属性: "1" 外购 seen [C1]; the rest of the range assumed [I]
STOCK_PROPERTIES = ("1", "2", "3", "4", "5")  # 普通, 车间, 供应商, 客户, 第三方仓储 [I]

FORMS: dict[str, Form] = {form.form_id: form for form in (
    Form("ORG_Organizations", "组织机构", "FOrgID", (Field("FNumber", "编码", required=True),
                                                 Field("FName", "名称", required=True)),
         unique_per_org=False, writable=False),
    # BD_STOCK: the fields and checks the sandbox has always had, in the order it reports them.
    Form("BD_STOCK", "仓库", "FStockId", (
        Field("FNumber", "编码", required=True), Field("FName", "名称", required=True),
        Field("FStockProperty", "仓库属性", "enum", required=True, default="1", choices=STOCK_PROPERTIES),
        org("FCreateOrgId", "创建组织"), org("FUseOrgId", "使用组织", default_from="FCreateOrgId"),
        Field("FAllowMinusQty", "允许即时库存负库存", "bool"), Field("FDescription", "描述"),
    ), org="FUseOrgId", all_errors=False),
    _base("BD_MATERIAL", "物料", "FMATERIALID",
          Field("FSpecification", "规格型号"), Field("FDescription", "描述"),
          ref("FMaterialGroup", "物料分组", None),  # on the header here; a public sample nests it in SubHeadEntity [I]
          per_org=True, children=(
              Child("SubHeadEntity", (  # 基本
                  Field("FErpClsID", "物料属性", "enum", required=True, choices=ERP_CLASSES),
                  ref("FCategoryID", "存货类别", "BD_MATERIALCATEGORY", required=True),
                  ref("FBaseUnitId", "基本单位", "BD_UNIT", required=True),
                  ref("FTaxRateId", "默认税率", None),
                  Field("FIsPurchase", "允许采购", "bool", default=True),
                  Field("FIsInventory", "允许库存", "bool", default=True),
                  Field("FIsSale", "允许销售", "bool", default=True))),
              Child("SubHeadEntity1", (  # 库存
                  ref("FStoreUnitID", "库存单位", "BD_UNIT", default_from="FBaseUnitId"),
                  Field("FIsBatchManage", "启用批号管理", "bool"), Field("FIsKFPeriod", "启用保质期管理", "bool"),
                  ref("FStockId", "仓库", "BD_STOCK", scope="FUseOrgId"))),
              Child("SubHeadEntity2", _units("Sale", "销售")),  # 销售
              Child("SubHeadEntity3", _units("Purchase", "采购")),  # 采购
          )),
    _base("BD_UNIT", "计量单位", "FUNITID"),
    _base("BD_MATERIALCATEGORY", "存货类别", "FCATEGORYID"),  # the form id of 存货类别 [I]
    _base("BD_Currency", "币别", "FCURRENCYID"),
    _base("BOS_BillType", "单据类型", "FBILLTYPEID", Field("FBillFormID", "单据"), writable=False),
    _base("BD_Customer", "客户", "FCUSTID", Field("FShortName", "简称"), Field("FDescription", "描述"),
          per_org=True),
    Form("SAL_OUTSTOCK", "销售出库单", "FID", (
        ref("FBillTypeID", "单据类型", "BOS_BillType", required=True, where=(("FBillFormID", "SAL_OUTSTOCK"),)),
        Field("FBillNo", "单据编号", required=True),
        Field("FDate", "日期", "date", required=True),
        org("FSaleOrgId", "销售组织"), org("FStockOrgId", "发货组织"),
        ref("FCustomerID", "客户", "BD_Customer", scope="FSaleOrgId", required=True),
        Field("FOwnerTypeIdHead", "货主类型", default="BD_OwnerOrg"), ref("FOwnerIdHead", "货主", ORGANISATIONS),
        Field("FNote", "备注"),
    ), number="FBillNo", number_label="单据编号", org="FStockOrgId", unique_per_org=False, base_data=False,
        stock_check=True, bill_no_prefix="XSCKD", children=(
        Child("SubHeadEntity", (  # 财务信息
            ref("FSettleCurrID", "结算币别", "BD_Currency"), ref("FSettleOrgID", "结算组织", ORGANISATIONS),
            ref("FLocalCurrID", "本位币", "BD_Currency"), ref("FExchangeTypeID", "汇率类型", None),
            Field("FExchangeRate", "汇率", "number"), Field("FIsIncludedTax", "是否含税", "bool", default=True))),
    ), entries=(
        Entry("FEntity", "明细信息", "FEntryID", (
            ref("FMaterialID", "物料", "BD_MATERIAL", scope="FStockOrgId", required=True),
            ref("FUnitID", "库存单位", "BD_UNIT", required=True),
            Field("FRealQty", "实发数量", "number", required=True),
            Field("FTaxPrice", "含税单价", "number"), Field("FPrice", "单价", "number"),
            Field("FEntryTaxRate", "税率%", "number"), Field("FDiscount", "折扣额", "number"),
            Field("FIsFree", "是否赠品", "bool"),
            ref("FStockID", "仓库", "BD_STOCK", scope="FStockOrgId", required=True),
            ref("FStockStatusID", "库存状态", None),
            Field("FOwnerTypeID", "货主类型", default="BD_OwnerOrg"), ref("FOwnerID", "货主", ORGANISATIONS),
            ref("FSalUnitID", "销售单位", "BD_UNIT", default_from="FUnitID"),
            ref("FPriceUnitId", "计价单位", "BD_UNIT", default_from="FUnitID"),
            ref("FLot", "批号", None), Field("FProduceDate", "生产日期", "date"), Field("FEntrynote", "备注"))),
    )),
)}

# Seeded base data (audited, not forbidden). Numbers of units, categories, currencies and bill types are Kingdee's
# presets as public samples use them; their names, and the customers' numbers (the shop codes of a Jikeyun trade),
# are the sandbox's own.
SEEDS: dict[str, list[dict[str, Any]]] = {
    "BD_UNIT": [{"FNumber": n, "FName": name} for n, name in (
        ("Pcs", "个"), ("Ping", "瓶"), ("Xiang", "箱"), ("kg", "千克"), ("g", "克"), ("Tai", "台"), ("Jian", "件"),
        ("He", "盒"), ("Tao", "套"), ("Bao", "包"), ("m", "米"))],
    "BD_MATERIALCATEGORY": [{"FNumber": n, "FName": name} for n, name in (
        ("CHLB01_SYS", "原材料"), ("CHLB02_SYS", "辅助材料"), ("CHLB03_SYS", "自制半成品"),
        ("CHLB04_SYS", "委外半成品"), ("CHLB05_SYS", "产成品"), ("CHLB06_SYS", "周转材料"), ("CHLB07_SYS", "服务"),
        ("CHLB08_SYS", "商品"))],
    "BD_Currency": [{"FNumber": "PRE001", "FName": "人民币"}, {"FNumber": "PRE007", "FName": "美元"}],
    "BOS_BillType": [
        {"FNumber": "XSCKD01_SYS", "FName": "标准销售出库单", "FBillFormID": "SAL_OUTSTOCK"},
        {"FNumber": "XSCKD07_SYS", "FName": "销售出库单（XSCKD07_SYS）", "FBillFormID": "SAL_OUTSTOCK"},  # meaning [I]
    ],
}
CUSTOMERS = (("SHOP001", "天猫旗舰店"), ("SHOP002", "京东自营店"), ("SHOP003", "线下门店"))  # seeded per organisation


def customers_of(organisation: str) -> list[dict[str, Any]]:
    """The seeded customers of one organisation."""
    return [{"FNumber": n, "FName": name, "FCreateOrgId": organisation, "FUseOrgId": organisation}
            for n, name in CUSTOMERS]


def form_named(name: str) -> Form | None:
    """The form with this id, in any letter case."""
    return next((f for f in FORMS.values() if f.form_id.lower() == str(name).lower()), None)


class KingdeeFault(Exception):
    """A request the sandbox answers with a Kingdee failure body (HTTP 200)."""

    def __init__(self, message: str, msg_code: int, field: str | None = None) -> None:
        super().__init__(message)
        self.msg_code, self.field = msg_code, field


# -- values --------------------------------------------------------------------------------------------------
def truthy(value: Any) -> bool:
    return str(value).strip().lower() in ("true", "1")


def ref_number(value: Any) -> str:
    """A base-data reference ``{"FNumber": x}`` (any letter case, or a bare number) as the number text."""
    if isinstance(value, dict):
        value = next((v for k, v in value.items() if k.lower() == "fnumber"), "")
    return "" if value is None else str(value)


def coerce(spec: Field, raw: Any) -> tuple[Any, bool]:
    """(stored value, readable) of a value sent for ``spec``."""
    if spec.kind == "bool":
        return truthy(raw), True
    if spec.kind == "reference":
        return ref_number(raw), True
    if raw is None or raw == "":
        return spec.empty_value(), True
    if spec.kind == "number":
        try:
            return float(raw), True
        except (TypeError, ValueError):
            return raw, False
    if spec.kind == "date":  # Kingdee answers dates as 2024-06-05T00:00:00 [I]
        try:
            return datetime.fromisoformat(str(raw).strip()).strftime("%Y-%m-%dT%H:%M:%S"), True
        except ValueError:
            return raw, False
    return str(raw), True


@dataclass
class Package:
    """One Model data package read against its form.

    :param pk: the primary key sent (None when absent or 0)
    :param values: header and sub-entity values by their documented keys, as stored
    :param entries: entry rows by entry key; a row's id under the entry's ``pk`` when sent
    :param problems: values that could not be read (wording not verified)
    """

    pk: Any = None
    values: dict[str, Any] = field(default_factory=dict)
    entries: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)

    def only(self, keys: Iterable[str]) -> Package:
        """The package restricted to ``NeedUpDateFields`` (an entry stays when its key or a field of it is named)."""
        wanted = {str(k).lower() for k in keys}
        entries = {k: rows for k, rows in self.entries.items()
                   if k.lower() in wanted or any(f.lower() in wanted for row in rows for f in row)}
        return Package(self.pk, {k: v for k, v in self.values.items() if k.lower() in wanted}, entries, self.problems)


def _read_values(fields: dict[str, Field], raw: dict, where: str) -> tuple[dict[str, Any], list[Problem]]:
    values: dict[str, Any] = {}
    problems: list[Problem] = []
    for key, value in raw.items():
        spec = fields.get(key.lower())
        if spec is None:
            continue  # fields the sandbox does not keep are ignored, as the server ignores unknown keys [I]
        values[spec.key], readable = coerce(spec, value)
        if not readable:
            problems.append((spec.key, f"{where}字段“{spec.label}”的值“{value}”格式不正确"))
    return values, problems


def read_model(form: Form, model: dict) -> Package:
    """Read one Model package: keys in any letter case, sub-entity objects flattened, entry rows collected.

    A sub-entity object may carry any field of the form (``FMaterialGroup`` is placed on the header by one sample
    and inside ``SubHeadEntity`` by another [I]); keys the form does not know are ignored.
    """
    package = Package()
    flat: dict[str, Any] = {}
    for key, value in model.items():
        if key.lower() == form.pk.lower():
            package.pk = value if str(value or "0").strip() not in ("", "0") else None
        elif form.child(key) is not None and isinstance(value, dict):
            flat.update(value)
        elif (entry := form.entry(key)) is not None:
            rows = value if isinstance(value, list) else [value]
            package.entries[entry.key] = []
            for number, row in enumerate(r for r in rows if isinstance(r, dict) and r):
                read = {k: v for k, v in row.items() if k.lower() != entry.pk.lower()}
                values, problems = _read_values(entry.by_key, read, f"单据体“{entry.label}”第{number + 1}行")
                entry_id = next((v for k, v in row.items() if k.lower() == entry.pk.lower()), None)
                if str(entry_id or "0").strip() not in ("", "0"):
                    values[entry.pk] = entry_id
                package.entries[entry.key].append(values)
                package.problems.extend(problems)
        else:
            flat[key] = value
    values, problems = _read_values(form.by_key, flat, "")
    package.values.update(values)
    package.problems[:0] = problems
    return package


def complete(fields: Iterable[Field], row: dict[str, Any], *, required: bool) -> None:
    """Fill the fields a create did not send: ``default_from`` first, else the default. ``required`` false (a
    save, before its checks): only optional fields without ``default_from`` — the save's check wants the required
    ones sent, and :func:`check` derives the others from their resolved source."""
    for spec in fields:
        if spec.key not in row and (required or not (spec.required or spec.default_from)):
            row[spec.key] = row.get(spec.default_from, "") if spec.default_from else spec.empty_value()
            if spec.default_from and spec.is_empty(row[spec.key]):
                row[spec.key] = spec.empty_value()


def copy_record(record: dict[str, Any]) -> dict[str, Any]:
    """A copy of a record whose entry rows are copies too."""
    return {k: [dict(row) for row in v] if isinstance(v, list) else v for k, v in record.items()}


def merge(form: Form, existing: dict[str, Any] | None, package: Package, *,
          delete_entries: bool) -> tuple[dict[str, Any], list[Problem]]:
    """The record a save would leave: a copy of ``existing`` (or a new one, its unsent optional fields defaulted)
    updated with the package. Entry rows follow ``IsDeleteEntry`` [C K6]: a row with its id updates that row, a row
    without one is added, and with ``delete_entries`` the stored rows not sent are dropped; an entry the package
    does not name stays as it is."""
    record = copy_record(existing) if existing else {}
    record.update(package.values)
    if existing is None:
        complete(form.flat_fields, record, required=False)
    problems: list[Problem] = []
    for entry in form.entries:
        if entry.key not in package.entries:
            record.setdefault(entry.key, [])
            continue
        stored = {str(row[entry.pk]): row for row in record.get(entry.key, [])}
        rows = [] if delete_entries else list(stored.values())
        for number, sent in enumerate(package.entries[entry.key], start=1):
            changes = {k: v for k, v in sent.items() if k != entry.pk}
            if entry.pk not in sent:
                complete(entry.fields, changes, required=False)
                rows.append(changes)
            elif str(sent[entry.pk]) in stored:
                row = stored[str(sent[entry.pk])]
                row.update(changes)
                rows.extend([row] if delete_entries else [])
            else:  # wording not verified
                problems.append((entry.pk, f"单据体“{entry.label}”第{number}行分录内码{sent[entry.pk]}不存在"))
        record[entry.key] = rows
    return record, problems


class Store:
    """The records of every form in memory, indexed by (number, organisation) for look-ups and uniqueness."""

    def __init__(self) -> None:
        self._ids = itertools.count(100001)
        self._entry_ids = itertools.count(1)
        self._bill_numbers = itertools.count(1)
        self._records: dict[str, dict[int, dict[str, Any]]] = {f: {} for f in FORMS}
        self._index: dict[str, dict[tuple[str, str], int]] = {f: {} for f in FORMS}

    def all(self, form: Form) -> Iterator[dict[str, Any]]:
        """The stored records (live), by id."""
        return iter(list(self._records[form.form_id].values()))

    def get(self, form: Form, record_id: Any) -> dict[str, Any] | None:
        text = str(record_id).strip()
        return self._records[form.form_id].get(int(text)) if text.isdigit() else None

    @staticmethod
    def key(form: Form, record: dict[str, Any]) -> tuple[str, str]:
        """What the number must be unique in: (number, organisation) for base data, (number, "") for documents."""
        scope = str(record.get(form.org or "", "")) if form.unique_per_org and form.org else ""
        return str(record.get(form.number, "")), scope

    def find(self, form: Form, number: str, org: str | None = None) -> dict[str, Any] | None:
        """The record with this number (in organisation ``org``; any organisation when None: the first by id)."""
        scoped = bool(form.unique_per_org and form.org)
        if scoped and org is None:
            return next((r for r in self.all(form) if r[form.number] == number), None)
        record_id = self._index[form.form_id].get((number, (org or "") if scoped else ""))
        return None if record_id is None else self._records[form.form_id][record_id]

    def commit(self, form: Form, record: dict[str, Any], existing: dict[str, Any] | None) -> dict[str, Any]:
        """Store a record a save (or a direct insert) produced; returns the stored record. New entry rows get ids."""
        for entry in form.entries:
            record[entry.key] = [row if entry.pk in row else {entry.pk: next(self._entry_ids), **row}
                                 for row in record.get(entry.key, [])]
        if existing is not None:
            moved = self.key(form, existing) != self.key(form, record)
            existing.clear()
            existing.update(record)
            if moved:
                self.reindex(form)
            return existing
        complete(form.flat_fields, record, required=True)
        record_id = next(self._ids)
        order = [*(f.key for f in form.flat_fields), *(e.key for e in form.entries), *form.statuses]
        stored = {form.pk: record_id, **{k: record[k] for k in order if k in record}}
        self._records[form.form_id][record_id] = stored
        self._index[form.form_id].setdefault(self.key(form, stored), record_id)
        return stored

    def add(self, form: Form, model: dict[str, Any], status: str = "A") -> int:
        """Insert a Model package without any check (a concurrent writer, a seed); returns the id.

        ``FDocumentStatus`` / ``FForbidStatus`` in the package win over ``status`` / 正常.
        """
        package = read_model(form, model)
        record = dict(package.values)
        for entry in form.entries:
            record[entry.key] = package.entries.get(entry.key, [])
            for row in record[entry.key]:
                complete(entry.fields, row, required=True)
        for name in form.statuses:
            default = status if name == "FDocumentStatus" else NORMAL
            record[name] = str(next((v for k, v in model.items() if k.lower() == name.lower()), default))
        return int(self.commit(form, record, None)[form.pk])

    def remove(self, form: Form, record_ids: Iterable[int]) -> None:
        for record_id in record_ids:
            del self._records[form.form_id][record_id]
        self.reindex(form)

    def reindex(self, form: Form) -> None:
        """Rebuild the number index (after records were removed or renumbered); the first record by id wins."""
        index: dict[tuple[str, str], int] = {}
        for record_id, record in self._records[form.form_id].items():
            index.setdefault(self.key(form, record), record_id)
        self._index[form.form_id] = index

    def clear(self, form: Form) -> None:
        self._records[form.form_id].clear()
        self._index[form.form_id].clear()

    def bill_number(self, form: Form) -> str:
        """The next number of a document's coding rule."""
        return f"{form.bill_no_prefix}{next(self._bill_numbers):06d}"


# -- checks ----------------------------------------------------------------------------------------------------
def resolves(store: Store, spec: Field, number: str, record: dict[str, Any]) -> bool:
    """Whether a reference resolves as ``NumberSearch`` does: the number exists (in the organisation of the field's
    ``scope``), audited and not forbidden ("禁用也是不存在" [C K7]; unaudited likewise [I]), with the ``where``
    fields. References to base data the sandbox does not keep always resolve."""
    target = FORMS.get(spec.form or "")
    if target is None:
        return True
    found = store.find(target, number, str(record.get(spec.scope, "")) if spec.scope else None)
    return (found is not None and found["FDocumentStatus"] == AUDITED and found.get("FForbidStatus", NORMAL) == NORMAL
            and all(str(found.get(k, "")) == v for k, v in spec.where))


def _required_text(spec: Field, entry: Entry | None, row: int, wording: str) -> str:
    """The required-field message: header as captured (K2), entry rows as captured on K3 or K2."""
    if entry is None:
        return f"字段“{spec.label}”是必填项"
    if wording == "k2":
        return f"单据体实体【{entry.label}】第【{row}】行分录，【{spec.label}】字段必录"
    return f"单据体“{entry.label}”第{row}行字段“{spec.label}”是必填项"


def check(store: Store, form: Form, record: dict[str, Any], *, verify: bool, wording: str) -> list[Problem]:
    """The problems of a record about to be saved, in the order they are reported: required fields, missing base
    data, values outside their choices, the number's uniqueness.

    A reference that does not resolve (:func:`resolves`) counts as not entered, so a required one fails the
    required check, and an optional one is blanked in ``record`` as the server leaves it empty [I]; with ``verify``
    (``IsVerifyBaseDataField``) it is reported as missing base data instead (wording not verified).
    """
    required: list[Problem] = []
    missing: list[Problem] = []
    invalid: list[Problem] = []

    def visit(fields: Iterable[Field], row: dict[str, Any], entry: Entry | None, number: int) -> None:
        where = f"单据体“{entry.label}”第{number}行" if entry else ""
        for spec in fields:
            if spec.key not in row and spec.default_from and not spec.required:  # from its source, checked above
                row[spec.key] = row.get(spec.default_from) or spec.empty_value()
                continue
            value = row.get(spec.key)
            if spec.kind == "reference" and not spec.is_empty(value) and not resolves(store, spec, str(value), record):
                if verify:
                    missing.append((spec.key, f"{where}字段“{spec.label}”的值“{value}”在系统中不存在、未审核或已禁用"))
                    continue
                row[spec.key] = value = ""
            if spec.required and spec.is_empty(value):
                required.append((spec.key, _required_text(spec, entry, number, wording)))
            elif spec.kind == "enum" and not spec.is_empty(value) and str(value) not in spec.choices:
                invalid.append((spec.key, f"{where}{spec.label}的值“{value}”不在枚举范围内"))

    visit(form.flat_fields, record, None, 0)
    for entry in form.entries:
        rows = record.get(entry.key) or []
        if entry.required and not rows:  # wording not verified
            required.append((entry.key, f"单据体“{entry.label}”至少需要录入一行"))
        for row_number, row in enumerate(rows, start=1):
            visit(entry.fields, row, entry, row_number)
    number, scope = Store.key(form, record)
    other = store.find(form, number, scope) if number else None
    taken = other is not None and other[form.pk] != record.get(form.pk)
    unique = [(form.number, f"违反字段唯一性要求：编码唯一。[{number}]在当前系统中已经被使用。")] if taken else []
    return required + missing + invalid + unique
