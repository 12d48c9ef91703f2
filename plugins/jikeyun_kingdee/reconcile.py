"""Reconciliation (对账) of a scheme: how Kingdee differs from what Jikeyun says it should hold. Pure, no I/O.

The expected side is the sync's own: the staged load items of a full read (:class:`jikeyun_kingdee.items.LoadItem`),
so the reconcile expects exactly what a sync of every record would write. The actual side is the ExecuteBillQuery
of every Kingdee record of the form and organisation (one row per record, or per entry of a form with entries,
grouped into one record). Records are joined by the target's business key (``number_field``) and each difference
gets one class:

* ``missing`` — an active source record has no Kingdee record;
* ``differs`` — a field the scheme writes differs (every field that can be read back, sub-entity fields and entry
  lists included: :meth:`jikeyun_kingdee.fields.FieldMap.differences`; write-only fields are the ledger's to
  compare, by hash);
* ``status`` — not audited (when the scheme approves), forbidden while active in Jikeyun, or active in Kingdee
  while blocked up or deleted in Jikeyun;
* ``kingdee_only`` — a Kingdee record without any Jikeyun record (made by hand or another tool): reported,
  never repaired nor deleted.

The first three are *drift* and are repaired through the sync's load path; one record gets the first class that
applies (missing, differs, status) and every reason in ``reasons``. Equal records give no finding.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict

from jikeyun_kingdee.items import WRITTEN
from jikeyun_kingdee.kingdee_forms import DOCUMENT_STATUS, FORBID_STATUS, is_audited, is_forbidden
from jikeyun_kingdee.values import reference_number

if TYPE_CHECKING:
    from jikeyun_kingdee.fields import FieldMap
    from jikeyun_kingdee.scheme import TargetSpec

DriftClass = Literal["missing", "differs", "status", "kingdee_only"]
CLASSES: tuple[DriftClass, ...] = ("missing", "differs", "status", "kingdee_only")
REPAIRED_CLASSES: frozenset[str] = frozenset({"missing", "differs", "status"})
READ_ONLY_OPERATIONS = frozenset({"ExecuteBillQuery", "BillQuery", "View", "ValidateUser", "LoginByAppSecret",
                                  "LoginBySign"})
QUERY_OPERATIONS = frozenset({"ExecuteBillQuery", "BillQuery"})


class Finding(BaseModel):
    """One record that differs, as staged in ``drift.ndjson``.

    :param key: the business key (the source id, or the Kingdee number of a Kingdee-only record)
    :param drift: its class (the first that applies)
    :param state: the source record's lifecycle state (``None`` for Kingdee-only records)
    :param reasons: every difference, readable (``FName: Kingdee '…', Jikeyun '…'``)
    :param fields: the mapped fields that differ
    :param id: the Kingdee primary key, when the record exists there
    """

    model_config = ConfigDict(frozen=True)

    key: str
    drift: DriftClass
    state: str | None = None
    reasons: list[str] = []
    fields: list[str] = []
    id: int | None = None

    @property
    def repairable(self) -> bool:
        return self.drift in REPAIRED_CLASSES


def query_fields(target: TargetSpec) -> list[str]:
    """FieldKeys of the reconcile's ExecuteBillQuery: key, number, the statuses (a document has no forbid status),
    then what the field map reads back."""
    statuses = [DOCUMENT_STATUS] if target.kind == "document" else [DOCUMENT_STATUS, FORBID_STATUS]
    return list(dict.fromkeys([target.pk_field, target.number_field, *statuses, *target.field_map.read_keys]))


def number_of(row: Mapping[str, Any], number_field: str) -> str:
    """The business key a target row (or a query row) is joined on."""
    value = row.get(number_field)
    return "" if value is None else str(value).strip()


def _text(value: Any) -> str:
    value = reference_number(value)
    return "" if value is None else str(value)


def classify(
    item: Mapping[str, Any] | None,
    target: Mapping[str, Any] | None,
    *,
    fields: FieldMap,
    needs_audit: bool,
    number_field: str,
    pk_field: str,
    known: bool = False,
) -> Finding | None:
    """Compare one expected item with its Kingdee record; ``None`` when they agree.

    :param item: the staged load item (``key``, ``row``, ``state``), or ``None`` when no item expects the record
    :param target: the Kingdee record (:func:`query_fields`; grouped with its entries for a form that has them),
        or ``None`` when Kingdee has no such record
    :param fields: the target's field map (what is compared, and how)
    :param needs_audit: the scheme approves what it writes, so a record must be audited (``FDocumentStatus`` C)
    :param known: (only when ``item`` is ``None``) a Jikeyun record with this key exists but is out of the
        scheme's scope (filtered out by its condition, or blocked/deleted with lifecycle ``ignore``): no finding
    """
    if item is None:
        if target is None or known:
            return None
        return Finding(key=number_of(target, number_field), drift="kingdee_only", id=_id(target, pk_field),
                       reasons=["no Jikeyun record with this key"])
    key, state = str(item["key"]), str(item.get("state") or "active")
    if target is None:
        if state != "active":
            return None  # a blocked or deleted record that never reached Kingdee is not created
        return Finding(key=key, drift="missing", state=state, reasons=["not in Kingdee"])
    record_id = _id(target, pk_field)
    forbidden = is_forbidden(target)
    if state != "active":
        if forbidden:
            return None
        return Finding(key=key, drift="status", state=state, id=record_id,
                       reasons=[f"active in Kingdee while {state} in Jikeyun"])
    differences = fields.differences(item["row"], target)
    reasons = [f"{d.field}: Kingdee {_text(d.actual)!r}, Jikeyun {_text(d.desired)!r}" for d in differences]
    if forbidden:
        reasons.append("forbidden in Kingdee while active in Jikeyun")
    if needs_audit and not is_audited(target):
        reasons.append(f"not audited ({DOCUMENT_STATUS} {str(target.get(DOCUMENT_STATUS) or '').strip() or 'empty'})")
    if not reasons:
        return None
    return Finding(key=key, drift="differs" if differences else "status", state=state, reasons=reasons,
                   fields=[d.field for d in differences], id=record_id)


def _id(target: Mapping[str, Any], pk_field: str) -> int | None:
    value = target.get(pk_field)
    try:
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


class Tally:
    """Counts per class and the first keys of each class, over findings seen one at a time.

    :param keep: how many keys per class to keep (for the log, XCom and the alert; all are staged)
    """

    def __init__(self, keep: int = 20) -> None:
        self.keep = keep
        self.counts: Counter[str] = Counter()
        self.keys: dict[str, list[str]] = {}

    def add(self, finding: Finding) -> None:
        self.counts[finding.drift] += 1
        kept = self.keys.setdefault(finding.drift, [])
        if len(kept) < self.keep:
            kept.append(finding.key)

    def counted(self, findings: Iterable[Finding]) -> Iterator[Finding]:
        """Pass ``findings`` through, counting each."""
        for finding in findings:
            self.add(finding)
            yield finding

    @property
    def drift(self) -> int:
        """Findings that are drift (everything but Kingdee-only records)."""
        return sum(n for name, n in self.counts.items() if name in REPAIRED_CLASSES)

    def as_dict(self) -> dict[str, Any]:
        return {"counts": {name: self.counts.get(name, 0) for name in CLASSES}, "drift": self.drift,
                "keys": {name: list(self.keys[name]) for name in CLASSES if name in self.keys}}


def split_calls(calls: Mapping[str, int]) -> tuple[int, int]:
    """Kingdee queries and writes among ``operation → calls`` (logins count as neither)."""
    queries = sum(n for op, n in calls.items() if op in QUERY_OPERATIONS)
    writes = sum(n for op, n in calls.items() if op not in READ_ONLY_OPERATIONS)
    return queries, writes


def summarise(
    source: Mapping[str, Any], target: Mapping[str, Any], compared: Mapping[str, Any],
    repaired: Mapping[str, Any] | None, *, repair: bool,
) -> dict[str, Any]:
    """The reconcile's report from the manifests of its steps.

    :param source: ``read_source`` (``fetched``, ``calls``, ``in_scope``, ``filtered_out``, ``rejected``)
    :param target: ``read_target`` (``records``, ``calls``)
    :param compared: ``compare`` (``found``: a :meth:`Tally.as_dict`, ``drift_file``)
    :param repaired: ``repair`` (``results``, ``left``, ``superseded``, ``calls``); ``None`` when it did not run
    :param repair: whether repair was on; when off (a dry run) all drift found is left
    :return: the report; ``superseded``/``superseded_keys``: records a sync applied a later source time for after
        the source read, which the read-back still found different from this run's snapshot (not ``left``)
    """
    found = compared["found"]
    superseded = (repaired or {}).get("superseded")
    if not isinstance(superseded, dict):  # no repair, or one of an older release (a count)
        superseded = {"drift": 0, "keys": {}}
    if repaired is not None:
        left, results = repaired["left"], dict(repaired["results"])
    elif repair:  # nothing to repair
        left, results = {"counts": {}, "drift": 0, "keys": {}}, {}
    else:
        left, results = found, {}
    read_queries, _ = split_calls(target.get("calls", {}))
    repair_calls = (repaired or {}).get("calls", {})
    repair_queries, repair_writes = split_calls(repair_calls)
    api_calls: Counter[str] = Counter(source.get("calls", {}))
    api_calls.update(target.get("calls", {}))
    api_calls.update(repair_calls)
    return {
        "repair": repair,
        "source_records": source.get("fetched", 0),
        "source_in_scope": source.get("in_scope", 0),
        "source_out_of_scope": source.get("filtered_out", 0),
        "source_rejected": source.get("rejected", 0),
        "target_records": target.get("records", 0),
        "target_out_of_scope": compared.get("out_of_scope", 0),
        "found": {name: found["counts"].get(name, 0) for name in CLASSES},
        "drift": found["drift"],
        "found_keys": dict(found["keys"]),
        "repaired": sum(results.get(status, 0) for status in WRITTEN),
        "repair_results": results,
        "left": left["drift"],
        "left_counts": {name: left["counts"].get(name, 0) for name in CLASSES if name in REPAIRED_CLASSES},
        "left_keys": {name: keys for name, keys in left["keys"].items() if name in REPAIRED_CLASSES},
        "superseded": superseded["drift"],
        "superseded_keys": [key for keys in superseded["keys"].values() for key in keys],
        "files": {"drift": compared.get("drift_file"), "left": (repaired or {}).get("left_file"),
                  "superseded": (repaired or {}).get("superseded_file")},
        "cost": {
            "jikeyun_calls": sum(source.get("calls", {}).values()),
            "kingdee_queries": read_queries + repair_queries,
            "kingdee_read_queries": read_queries,
            "repair_queries": repair_queries,
            "repair_writes": repair_writes,
        },
        "api_calls": dict(sorted(api_calls.items())),
        "seconds": {"read_source": source.get("seconds"), "read_target": target.get("seconds"),
                    "compare": compared.get("seconds"), "repair": (repaired or {}).get("seconds")},
    }


def describe(summary: Mapping[str, Any]) -> str:
    """One line: what was found, repaired and left (and superseded by a later sync), and what it cost."""
    found = ", ".join(f"{name} {n}" for name, n in summary["found"].items() if n) or "nothing"
    cost = summary["cost"]
    repaired = f"{summary['repaired']} repaired" if summary["repair"] else "repair off (dry run)"
    superseded = summary.get("superseded", 0)
    if superseded:
        keys = summary["superseded_keys"]
        repaired += (f", {superseded} superseded by a later sync ({', '.join(keys)}"
                     f"{' …' if superseded > len(keys) else ''}; compared again next time)")
    return (f"found {found}; drift {summary['drift']}, {repaired}, {summary['left']} left; cost: "
            f"{cost['jikeyun_calls']} Jikeyun calls, {cost['kingdee_queries']} Kingdee queries, "
            f"{cost['repair_writes']} repair writes")
