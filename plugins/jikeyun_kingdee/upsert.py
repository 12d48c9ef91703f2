"""Upsert of Kingdee base data (BD_STOCK) by business key (``FNumber``) within one use organisation, and its
lifecycle: records blocked or deleted at the source are forbidden (禁用), forbidden records active again are enabled.

Planning is pure — :func:`plan_lookup` (how to find what exists), :func:`plan_rows` (what each row needs),
:func:`refusal_cause` (what a refusal of the one-call create means) — and :class:`BatchUpsert` makes the calls.
With B rows per write call (``rows_per_batch``) and L rows per query (``lookup_limit``), a set of rows costs:

* look-up: ⌈n/L⌉ IN-queries of the n numbers, or fewer calls reading the organisation's records page by page
  when it holds few (:func:`plan_lookup`);
* creates, by approval mode: ``auto`` ⌈c/B⌉ BatchSave with ``IsAutoSubmitAndAudit`` (save, submit and audit in one
  transaction); ``explicit`` BatchSave, Submit, Audit; ``none`` BatchSave only;
* updates, only of rows whose fields differ: UnAudit of the audited ones, BatchSave with the primary key, Submit,
  Audit (the chain also in ``auto`` mode: the flag is not sent on updates);
* ``blocked``/``deleted`` rows: one Forbid call per B records that exist and are not forbidden yet; none for records
  that do not exist (``absent``) or are forbidden already (``unchanged``);
* active rows whose record is forbidden: one Enable call per B records, then the update if fields differ.

Submit and Audit are sent per B record ids over everything saved, whatever the kind of row. A duplicate-number
error caused by a concurrent writer is resolved by one more look-up and an update.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel

from jikeyun_kingdee.kingdee_filters import equals_filter, in_filter
from jikeyun_kingdee.transform import chunked

if TYPE_CHECKING:
    from jikeyun_kingdee.hooks.kingdee import KingdeeHook, RowResult

log = logging.getLogger(__name__)

Approval = Literal["auto", "explicit", "none"]
State = Literal["active", "blocked", "deleted"]
Status = Literal["created", "updated", "enabled", "forbidden", "unchanged", "absent", "rejected"]

STATUS_FIELD = "FDocumentStatus"
FORBID_FIELD = "FForbidStatus"
ORG_FIELD = "FUseOrgId.FNumber"
AUDITED = "C"
SUBMITTABLE = ("Z", "A", "D")
SUBMITTED = "B"
FORBIDDEN = "B"
# Words of a refusal that comes from the submit/audit half of an IsAutoSubmitAndAudit save (or its workflow).
APPROVAL_WORDS = re.compile(r"提交|审核|工作流|审批|submit|audit|workflow|approv", re.IGNORECASE)


class RowOutcome(BaseModel):
    """What happened to one input row (same order as the input).

    ``fields_updated`` is set for ``enabled`` rows whose fields were also updated.
    """

    index: int
    number: str
    status: Status
    id: int | None = None
    field: str | None = None
    message: str | None = None
    fields_updated: bool = False


# -- pure planning --------------------------------------------------------------------------------------------
def query_key(field_name: str, value: Any) -> str:
    """The ExecuteBillQuery column holding a row value: ``<Field>.FNumber`` for base-data references."""
    return f"{field_name}.FNumber" if isinstance(value, dict) else field_name


def comparable_fields(rows: list[dict], *, number_field: str, pk_field: str) -> dict[str, str]:
    """Row field → query column, for every field that can be compared (scalars and ``{"FNumber": x}``)."""
    columns: dict[str, str] = {}
    for row in rows:
        for name, value in row.items():
            if name in (number_field, pk_field) or name in columns:
                continue
            if (isinstance(value, dict) and set(value) != {"FNumber"}) or isinstance(value, list):
                continue  # entries and other nested packages are written but not compared
            columns[name] = query_key(name, value)
    return columns


def _as_bool(value: Any) -> bool:
    return str(value).strip().lower() in ("true", "1")


def same_value(desired: Any, current: Any) -> bool:
    """Whether a stored value already equals the desired one ("true"/True/1 and "1"/1 count as equal)."""
    if isinstance(desired, dict):
        desired = desired.get("FNumber")
    if isinstance(desired, bool) or isinstance(current, bool) or str(desired).strip().lower() in ("true", "false"):
        return _as_bool(desired) == _as_bool(current)
    return ("" if desired is None else str(desired).strip()) == ("" if current is None else str(current).strip())


def is_duplicate_number(message: str | None) -> bool:
    """Kingdee's uniqueness error: 违反字段唯一性要求：编码唯一。[X]在当前系统中已经被使用。"""
    text = message or ""
    return text.startswith("违反字段唯一性要求") or ("唯一" in text and "已经被使用" in text)


def refusal_cause(field_name: str | None, message: str | None) -> Literal["duplicate", "row", "approval"]:
    """Why a create with ``IsAutoSubmitAndAudit`` was refused, which decides whether the explicit path is tried.

    ``duplicate``: the number exists (a concurrent writer; resolved by a look-up and an update). ``approval``: the
    submit or audit half failed, which the explicit Save, Submit, Audit may get past (it also saves the row when
    only the audit is refused). ``row``: a validation error of the row itself, which every path would refuse.
    The reply does not say which half of the transaction refused, so this reads the message: words of submit/audit
    mean ``approval``; otherwise an error naming a field is the row's own, and one naming no field is taken as
    ``approval`` (at worst one more BatchSave that is refused again with the same message).
    """
    if is_duplicate_number(message):
        return "duplicate"
    if APPROVAL_WORDS.search(message or ""):
        return "approval"
    return "row" if field_name else "approval"


@dataclass(frozen=True)
class Lookup:
    """How to find which numbers exist: ``in`` (IN-queries of up to L numbers each) or ``scope`` (the organisation's
    records page by page, at most ``max_pages`` pages, then IN-queries for the numbers not seen)."""

    kind: Literal["none", "in", "scope"]
    calls: int  # expected calls
    max_pages: int = 0


def plan_lookup(numbers: int, limit: int, known_records: int | None) -> Lookup:
    """Choose the look-up of ``numbers`` numbers with fewer calls.

    IN-queries cost ⌈n/L⌉. Reading the whole organisation costs ⌊M/L⌋ + 1 calls for M records (the last, short page
    ends it), and M is only estimated — ``known_records``, what the ledger says was written (records made by hand
    are not in it). So the scope read is chosen only when that estimate promises fewer calls, and it stops after
    ⌈n/L⌉ − 1 pages: if the organisation is larger than thought, the numbers not seen yet are then asked by IN.
    The worst case is 2·⌈n/L⌉ − 1 calls; without an estimate it is always IN.

    :param numbers: distinct numbers to look up
    :param limit: rows per query (the scheme's ``lookup_limit``, also the most numbers one IN-query asks)
    :param known_records: the estimate of M, or None
    """
    if numbers <= 0:
        return Lookup("none", 0)
    in_calls = math.ceil(numbers / limit)
    if known_records is None or in_calls <= 1:
        return Lookup("in", in_calls)
    scope_calls = known_records // limit + 1
    if scope_calls < in_calls:
        return Lookup("scope", scope_calls, max_pages=in_calls - 1)
    return Lookup("in", in_calls)


@dataclass
class Plan:
    """What to do with each row of a set (indices into the input rows)."""

    creates: list[int] = field(default_factory=list)
    updates: list[int] = field(default_factory=list)  # fields differ (enabled rows included)
    approve_only: list[int] = field(default_factory=list)  # same content, but not audited yet
    unchanged: list[int] = field(default_factory=list)
    enables: list[int] = field(default_factory=list)  # active at the source, forbidden in Kingdee
    forbids: list[int] = field(default_factory=list)  # blocked/deleted at the source, active in Kingdee
    already_forbidden: list[int] = field(default_factory=list)
    absent: list[int] = field(default_factory=list)  # blocked/deleted at the source, never created
    rejected: dict[int, str] = field(default_factory=dict)


def plan_rows(
    rows: list[dict],
    states: Sequence[str],
    indices: list[int],
    existing: dict[str, dict],
    columns: dict[str, str],
    *,
    number_field: str,
    approval: Approval,
) -> Plan:
    """Decide, for the rows at ``indices``, what each needs.

    :param states: per row ``active``, ``blocked`` or ``deleted``
    :param existing: number → query row (the columns of ``columns``, primary key, FDocumentStatus, FForbidStatus)
    :param columns: row field → query column (:func:`comparable_fields`)
    """
    plan, seen = Plan(), set()
    for i in indices:
        number = str(rows[i].get(number_field) or "").strip()
        record = existing.get(number)
        if not number:
            plan.rejected[i] = f"{number_field} is empty"
        elif number in seen:
            plan.rejected[i] = f"{number_field} {number} occurs more than once in this load"
        elif states[i] != "active":
            if record is None:
                plan.absent.append(i)
            elif record.get(FORBID_FIELD) == FORBIDDEN:
                plan.already_forbidden.append(i)
            else:
                plan.forbids.append(i)
        elif record is None:
            plan.creates.append(i)
        else:
            forbidden = record.get(FORBID_FIELD) == FORBIDDEN
            if forbidden:
                plan.enables.append(i)
            if any(not same_value(rows[i][name], record.get(col)) for name, col in columns.items() if name in rows[i]):
                plan.updates.append(i)
            elif approval != "none" and record.get(STATUS_FIELD) != AUDITED:
                plan.approve_only.append(i)
            elif not forbidden:
                plan.unchanged.append(i)
        seen.add(number)
    return plan


# -- calls ------------------------------------------------------------------------------------------------------
@dataclass
class BatchUpsert:
    """One upsert of a set of rows (a load chunk): its look-ups, writes and outcomes."""

    hook: KingdeeHook
    form_id: str
    rows: list[dict]
    states: Sequence[str]
    org_number: str
    number_field: str
    pk_field: str
    approval: Approval
    rows_per_batch: int
    lookup_limit: int
    columns: dict[str, str]
    outcomes: dict[int, RowOutcome] = field(default_factory=dict)
    to_approve: dict[int, str] = field(default_factory=dict)  # saved record id → its status after the save
    enabled: set[int] = field(default_factory=set)  # rows enabled in this upsert

    def number(self, i: int) -> str:
        return str(self.rows[i].get(self.number_field) or "").strip()

    def outcome(self, i: int, status: Status, **kwargs: Any) -> None:
        self.outcomes[i] = RowOutcome(index=i, number=self.number(i), status=status, **kwargs)

    def record_id(self, existing: dict[str, dict], i: int) -> int:
        return int(existing[self.number(i)][self.pk_field])

    # -- look-ups ------------------------------------------------------------------------------------
    def look_up(self, indices: list[int], known_records: int | None = None) -> dict[str, dict]:
        """number → record of the organisation, for the numbers of ``indices`` (:func:`plan_lookup`)."""
        numbers = sorted({self.number(i) for i in indices if self.number(i)})
        plan = plan_lookup(len(numbers), self.lookup_limit, known_records)
        keys = list(dict.fromkeys([self.pk_field, self.number_field, STATUS_FIELD, FORBID_FIELD,
                                   *self.columns.values()]))
        in_org = equals_filter(ORG_FIELD, self.org_number)
        found: dict[str, dict] = {}
        if plan.kind == "scope":
            wanted, complete = set(numbers), False
            pages = self.hook.query_pages(self.form_id, keys, in_org, OrderString=self.pk_field,
                                          Limit=self.lookup_limit)
            for read, page in enumerate(pages, start=1):
                found.update({str(r[self.number_field]): r for r in page if str(r[self.number_field]) in wanted})
                complete = len(page) < min(self.lookup_limit, self.hook.query_limit or self.lookup_limit)
                if complete or read >= plan.max_pages:
                    break
            if complete:
                return found
            numbers = [n for n in numbers if n not in found]
            log.info("look-up: the organisation holds more than %d pages; asking %d numbers by IN",
                     plan.max_pages, len(numbers))
        for part in chunked(numbers, self.lookup_limit):
            where = f"{in_filter(self.number_field, part)} and {in_org}"
            rows = self.hook.query(self.form_id, keys, where, Limit=self.lookup_limit, TopRowCount=len(part))
            found.update({str(r[self.number_field]): r for r in rows})  # numbers are unique: at most one row each
        return found

    def statuses(self, ids: list[int], field_name: str) -> dict[int, Any]:
        """record id → ``field_name`` of the records with these ids (IN-queries of up to L ids)."""
        found: dict[int, Any] = {}
        for part in chunked(sorted(set(ids)), self.lookup_limit):
            for row in self.hook.query(self.form_id, [self.pk_field, field_name], in_filter(self.pk_field, part),
                                       Limit=self.lookup_limit, TopRowCount=len(part)):
                found[int(row[self.pk_field])] = row.get(field_name)
        return found

    # -- the upsert ----------------------------------------------------------------------------------
    def run(self, indices: list[int], known_records: int | None) -> None:
        self.apply(indices, self.look_up(indices, known_records), race_allowed=True)
        if self.approval != "none":
            self.approve()

    def apply(self, indices: list[int], existing: dict[str, dict], *, race_allowed: bool) -> None:
        """Plan and write the rows at ``indices``; rows lost to a concurrent writer are retried once as updates."""
        plan = plan_rows(self.rows, self.states, indices, existing, self.columns, number_field=self.number_field,
                         approval=self.approval)
        for i, message in plan.rejected.items():
            self.outcome(i, "rejected", field=self.number_field, message=message)
        for i in plan.absent:
            self.outcome(i, "absent", message=f"{self.states[i]} at the source and not in Kingdee: not created")
        for i in plan.already_forbidden:
            self.outcome(i, "unchanged", id=self.record_id(existing, i), message="already forbidden")
        for i in plan.unchanged:
            self.outcome(i, "unchanged", id=self.record_id(existing, i))
        self.forbid(plan.forbids, existing)
        refused = self.enable(plan.enables, existing, followed_by={*plan.updates, *plan.approve_only})
        for i in plan.approve_only:
            if i in refused:
                continue
            record = existing[self.number(i)]
            status: Status = "enabled" if i in self.enabled else "updated"
            self.outcome(i, status, id=self.record_id(existing, i), message="content unchanged; submitted/audited")
            self.to_approve[self.record_id(existing, i)] = record.get(STATUS_FIELD) or "A"
        lost = self.create(plan.creates)
        self.save(self.unaudit([i for i in plan.updates if i not in refused], existing), existing)
        if race_allowed and lost:  # a concurrent writer created these numbers after our look-up: update them
            for i in lost:
                del self.outcomes[i]
            self.apply(lost, self.look_up(lost), race_allowed=False)

    def forbid(self, indices: list[int], existing: dict[str, dict]) -> None:
        """One Forbid per batch of records."""
        for i, note in self.switch("Forbid", indices, existing).items():
            self.outcome(i, "forbidden", id=self.record_id(existing, i), message=note)

    def enable(self, indices: list[int], existing: dict[str, dict], followed_by: set[int]) -> set[int]:
        """One Enable per batch of records; returns the rows refused.

        :param followed_by: rows that are updated or approved next (their outcome comes from that step)
        """
        self.enabled.update(self.switch("Enable", indices, existing))
        for i in indices:
            if i in self.enabled and i not in followed_by:
                self.outcome(i, "enabled", id=self.record_id(existing, i), message="enabled; fields unchanged")
        return {i for i in indices if i not in self.enabled}

    def switch(self, operation: Literal["Forbid", "Enable"], indices: list[int],
               existing: dict[str, dict]) -> dict[int, str | None]:
        """Forbid or Enable the records, one call per batch; a refused record gets one status read, and is done when
        it is in the wanted status meanwhile (else rejected here).

        :return: row → ``None`` (switched) or the note of a refusal of a record found switched already
        """
        wanted, call = (FORBIDDEN, self.hook.forbid) if operation == "Forbid" else ("A", self.hook.enable)
        done: dict[int, str | None] = {}
        failed: dict[int, RowResult] = {}
        for batch in chunked(indices, self.rows_per_batch):
            ids = [self.record_id(existing, i) for i in batch]
            results = call(self.form_id, ids=ids, pk_field=self.pk_field, number_field=self.number_field)
            for i, result in zip(batch, results, strict=True):
                if result.ok:
                    done[i] = None
                else:
                    failed[i] = result
        now = self.statuses([self.record_id(existing, i) for i in failed], FORBID_FIELD) if failed else {}
        for i, result in failed.items():
            record_id = self.record_id(existing, i)
            if now.get(record_id) == wanted:
                done[i] = f"{operation}: {result.message}; status already {wanted}"
            else:
                self.outcome(i, "rejected", id=record_id, field=result.field,
                             message=f"{operation} failed: {result.message}")
        return done

    def create(self, indices: list[int]) -> list[int]:
        """Save the new rows as the approval mode says; returns the rows lost to a concurrent writer."""
        explicit = indices
        if self.approval == "auto":
            explicit = self.create_audited(indices)
        self.save(explicit, {})
        return [i for i in indices if self.outcomes[i].status == "rejected"
                and is_duplicate_number(self.outcomes[i].message)]

    def create_audited(self, indices: list[int]) -> list[int]:
        """BatchSave with ``IsAutoSubmitAndAudit``; returns the rows to try on the explicit path."""
        explicit: list[int] = []
        unverified: dict[int, int] = {}  # saved id → row, when the server did not echo the status
        for batch in chunked(indices, self.rows_per_batch):
            results = self.hook.batch_save(self.form_id, [self.rows[i] for i in batch], pk_field=self.pk_field,
                                           number_field=self.number_field, auto_submit_and_audit=True)
            for i, result in zip(batch, results, strict=True):
                if result.ok and result.id is not None:
                    if result.document_status == AUDITED:
                        self.outcome(i, "created", id=result.id)
                    elif result.document_status is None:
                        unverified[result.id] = i
                    else:
                        self.flag_not_applied(i, result.id, result.document_status)
                else:
                    self.outcome(i, "rejected", field=result.field, message=result.message)
                    if refusal_cause(result.field, result.message) == "approval":
                        explicit.append(i)  # save() names the auto refusal in the outcome
                        log.warning("auto submit/audit refused %s (%s); trying Save, Submit, Audit",
                                    self.number(i), result.message)
        if unverified:
            now = self.statuses(list(unverified), STATUS_FIELD)
            for record_id, i in unverified.items():
                if now.get(record_id) == AUDITED:
                    self.outcome(i, "created", id=record_id)
                else:
                    self.flag_not_applied(i, record_id, now.get(record_id) or "A")
        return explicit

    def flag_not_applied(self, i: int, record_id: int, document_status: str) -> None:
        """The server saved the row but did not submit/audit it (it ignores ``IsAutoSubmitAndAudit``)."""
        self.outcome(i, "created", id=record_id,
                     message=f"IsAutoSubmitAndAudit not applied (status {document_status}); submitted/audited")
        self.to_approve[record_id] = document_status

    def unaudit(self, updates: list[int], existing: dict[str, dict]) -> list[int]:
        """UnAudit the audited records among ``updates`` (per batch); returns the rows that may be saved."""
        audited = [i for i in updates if existing[self.number(i)].get(STATUS_FIELD) == AUDITED]
        failed = set()
        for batch in chunked(audited, self.rows_per_batch):
            ids = [self.record_id(existing, i) for i in batch]
            for i, result in zip(batch, self.hook.unaudit(self.form_id, ids=ids), strict=True):
                if result.ok:
                    existing[self.number(i)][STATUS_FIELD] = "D"
                else:
                    failed.add(i)
                    self.outcome(i, "rejected", id=self.record_id(existing, i), field=result.field,
                                 message=f"UnAudit failed: {result.message}")
        return [i for i in updates if i not in failed]

    def save(self, indices: list[int], existing: dict[str, dict]) -> None:
        """BatchSave per batch, without the flag: new rows, or changed rows with their primary key."""
        for batch in chunked(indices, self.rows_per_batch):
            records = [existing.get(self.number(i)) for i in batch]
            models = [{self.pk_field: int(r[self.pk_field]), **self.rows[i]} if r else dict(self.rows[i])
                      for i, r in zip(batch, records, strict=True)]
            results = self.hook.batch_save(self.form_id, models, pk_field=self.pk_field, number_field=self.number_field)
            for i, record, result in zip(batch, records, results, strict=True):
                prior = self.outcomes.get(i)
                note = f"auto submit/audit refused ({prior.message}); " if prior and prior.status == "rejected" else ""
                if result.ok and result.id is not None:
                    status: Status = "created" if record is None else "enabled" if i in self.enabled else "updated"
                    self.outcome(i, status, id=result.id, fields_updated=status == "enabled",
                                 message=(note + "saved explicitly") if note else
                                 "enabled; fields updated" if status == "enabled" else None)
                    if self.approval != "none":
                        self.to_approve[result.id] = (record or {}).get(STATUS_FIELD) or "A"
                else:
                    self.outcome(i, "rejected", id=int(record[self.pk_field]) if record else None,
                                 field=result.field, message=note + (result.message or ""))

    def approve(self) -> None:
        """Submit (per batch of ids) what is not submitted yet, then Audit all of it; failures are checked by status."""
        to_submit = [i for i, s in self.to_approve.items() if s in SUBMITTABLE]
        to_audit = [i for i, s in self.to_approve.items() if s == SUBMITTED]
        failures: dict[int, str] = {}
        for ids in chunked(to_submit, self.rows_per_batch):
            for record_id, result in zip(ids, self.hook.submit(self.form_id, ids=ids), strict=True):
                if result.ok:
                    to_audit.append(record_id)
                else:
                    failures[record_id] = f"Submit failed: {result.message}"
        for ids in chunked(to_audit, self.rows_per_batch):
            for record_id, result in zip(ids, self.hook.audit(self.form_id, ids=ids), strict=True):
                if not result.ok:
                    failures[record_id] = f"Audit failed: {result.message}"
        if failures:  # a failure may be a replayed transition that had already succeeded: check the status
            for record_id, status in self.statuses(list(failures), STATUS_FIELD).items():
                if status == AUDITED:
                    failures.pop(record_id, None)
        for i, outcome in list(self.outcomes.items()):
            if outcome.id in failures and outcome.status != "rejected":
                self.outcome(i, "rejected", id=outcome.id,
                             message=f"saved as {outcome.status} but {failures[outcome.id]}")


def upsert(
    hook: KingdeeHook,
    form_id: str,
    rows: list[dict],
    *,
    org_number: str,
    states: Sequence[str] | None = None,
    number_field: str = "FNumber",
    pk_field: str = "FStockId",
    approval: Approval = "explicit",
    rows_per_batch: int = 100,
    lookup_limit: int = 2000,
    known_records: int | None = None,
) -> list[RowOutcome]:
    """Create, update, forbid or enable ``rows`` by business key within one use organisation; one outcome per row,
    in input order.

    :param hook: the Kingdee hook
    :param form_id: e.g. ``BD_STOCK``
    :param rows: BatchSave models (``{"FNumber": ..., "FName": ..., "FUseOrgId": {"FNumber": org}, ...}``)
    :param org_number: the use organisation the numbers are unique in
    :param states: per row ``active`` (default), ``blocked`` or ``deleted`` (forbidden when the record exists)
    :param number_field: the business key
    :param pk_field: the primary key (query column and Model field for updates)
    :param approval: ``auto`` (creates in one BatchSave with IsAutoSubmitAndAudit), ``explicit`` (Save, Submit,
        Audit) or ``none`` (save only)
    :param rows_per_batch: rows (or record ids) per write call
    :param lookup_limit: rows per ExecuteBillQuery, and numbers per IN-query
    :param known_records: how many records the organisation is thought to hold (for :func:`plan_lookup`)
    """
    if not rows:
        return []
    states = list(states) if states is not None else ["active"] * len(rows)
    if len(states) != len(rows):
        raise ValueError(f"{len(rows)} rows but {len(states)} states")
    run = BatchUpsert(hook, form_id, rows, states, org_number, number_field, pk_field, approval, rows_per_batch,
                      lookup_limit, comparable_fields(rows, number_field=number_field, pk_field=pk_field))
    run.run(list(range(len(rows))), known_records)
    return [run.outcomes[i] for i in range(len(rows))]
