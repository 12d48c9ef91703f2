"""Upsert of Kingdee records by business key within one organisation (the scheme's ``target``), and the lifecycle
of base data: records blocked or deleted at the source are forbidden (禁用), forbidden records active again are
enabled. Which fields are compared, and how, is the target's field map (:mod:`jikeyun_kingdee.fields`).

Planning is pure — :func:`plan_lookup` (how to find what exists), :func:`plan_rows` (what each row needs),
:func:`refusal_cause` (what a refusal of the one-call create means) — and :class:`BatchUpsert` makes the calls.
With B rows per write call (``rows_per_batch``) and L rows per query (``lookup_limit``), a set of rows costs:

* look-up: ⌈n/L⌉ IN-queries of the n numbers, or fewer calls reading the organisation's records page by page
  when it holds few (:func:`plan_lookup`);
* creates, by approval mode: ``auto`` ⌈c/B⌉ BatchSave with ``IsAutoSubmitAndAudit`` (save, submit and audit in one
  transaction); ``explicit`` BatchSave, Submit, Audit; ``none`` BatchSave only;
* updates, only of rows whose fields differ (or whose write-only fields may have: :func:`plan_rows`): UnAudit
  of the audited ones, BatchSave with the primary key, Submit, Audit (the chain also in ``auto`` mode: the flag is
  not sent on updates);
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

from jikeyun_kingdee.items import State, Status, chunked
from jikeyun_kingdee.kingdee_forms import (
    AUDITED,
    CREATED,
    DOCUMENT_STATUS,
    ENABLE,
    FORBID,
    FORBID_STATUS,
    SUBMITTABLE,
    SUBMITTED,
    SWITCHED_TO,
    UNAUDITED,
    SwitchOperation,
    in_filter,
    is_forbidden,
    organisation_filter,
)

if TYPE_CHECKING:
    from jikeyun_kingdee.fields import FieldMap
    from jikeyun_kingdee.hooks.kingdee import KingdeeHook, RowResult
    from jikeyun_kingdee.scheme import TargetSpec

log = logging.getLogger(__name__)

Approval = Literal["auto", "explicit", "none"]
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
    fields: FieldMap,
    *,
    number_field: str,
    approval: Approval,
    unread_changed: set[int] | frozenset[int] = frozenset(),
) -> Plan:
    """Decide, for the rows at ``indices``, what each needs.

    :param states: per row ``active``, ``blocked`` or ``deleted``
    :param existing: number → Kingdee record (query row, or grouped with its entries: :meth:`FieldMap.group`)
    :param fields: the target's field map: which fields are read back and how they compare
    :param unread_changed: rows whose fields that cannot be read back (``write_only``) may have changed since they
        were last written (the ledger's hash of the row differs or is unknown): updated even when every field that
        can be read back is the same
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
            elif is_forbidden(record):
                plan.already_forbidden.append(i)
            else:
                plan.forbids.append(i)
        elif record is None:
            plan.creates.append(i)
        else:
            forbidden = is_forbidden(record)
            if forbidden:
                plan.enables.append(i)
            if fields.differences(rows[i], record) or (fields.write_only and i in unread_changed):
                plan.updates.append(i)
            elif approval != "none" and record.get(DOCUMENT_STATUS) != AUDITED:
                plan.approve_only.append(i)
            elif not forbidden:
                plan.unchanged.append(i)
        seen.add(number)
    return plan


# -- calls ------------------------------------------------------------------------------------------------------
@dataclass
class BatchUpsert:
    """One upsert of a set of rows (a load chunk) into one target: its look-ups, writes and outcomes."""

    hook: KingdeeHook
    target: TargetSpec
    rows: list[dict]
    states: Sequence[str]
    unread_changed: set[int] = field(default_factory=set)
    outcomes: dict[int, RowOutcome] = field(default_factory=dict)
    to_approve: dict[int, str] = field(default_factory=dict)  # saved record id → its status after the save
    enabled: set[int] = field(default_factory=set)  # rows enabled in this upsert

    @property
    def form_id(self) -> str:
        return self.target.form_id

    @property
    def pk_field(self) -> str:
        return self.target.pk_field

    @property
    def number_field(self) -> str:
        return self.target.number_field

    @property
    def rows_per_batch(self) -> int:
        return self.target.rows_per_batch

    @property
    def lookup_limit(self) -> int:
        return self.target.lookup_limit

    @property
    def in_organisation(self) -> str:
        """FilterString of the target's organisation."""
        return organisation_filter(self.target.organisation_field, self.target.organisation)

    def number(self, i: int) -> str:
        return str(self.rows[i].get(self.number_field) or "").strip()

    def outcome(self, i: int, status: Status, **kwargs: Any) -> None:
        self.outcomes[i] = RowOutcome(index=i, number=self.number(i), status=status, **kwargs)

    def record_id(self, existing: dict[str, dict], i: int) -> int:
        return int(existing[self.number(i)][self.pk_field])

    # -- look-ups ------------------------------------------------------------------------------------
    def look_up(self, indices: list[int], known_records: int | None = None) -> dict[str, dict]:
        """number → record of the organisation, for the numbers of ``indices`` (:func:`plan_lookup`); a form with
        entries answers one row per entry, grouped into one record per number."""
        numbers = sorted({self.number(i) for i in indices if self.number(i)})
        plan = plan_lookup(len(numbers), self.lookup_limit, known_records)
        fields = self.target.field_map
        keys = list(dict.fromkeys([self.pk_field, self.number_field, DOCUMENT_STATUS, FORBID_STATUS,
                                   *fields.read_keys]))
        rows: list[dict] = []
        if plan.kind == "scope":
            wanted, complete = set(numbers), False
            pages = self.hook.query_pages(self.form_id, keys, self.in_organisation, OrderString=self.pk_field,
                                          Limit=self.lookup_limit)
            for read, page in enumerate(pages, start=1):
                rows += [r for r in page if str(r[self.number_field]) in wanted]
                complete = len(page) < min(self.lookup_limit, self.hook.query_limit or self.lookup_limit)
                if complete or read >= plan.max_pages:
                    break
            if complete:
                return fields.group(rows, self.number_field)
            seen = {str(r[self.number_field]) for r in rows}
            numbers = [n for n in numbers if n not in seen]
            log.info("look-up: the organisation holds more than %d pages; asking %d numbers by IN",
                     plan.max_pages, len(numbers))
        top = None if fields.entry_lists else len  # entries: rows per number unknown, read every page
        for part in chunked(numbers, self.lookup_limit):
            where = f"{in_filter(self.number_field, part)} and {self.in_organisation}"
            options = {"TopRowCount": top(part)} if top else {}
            rows += self.hook.query(self.form_id, keys, where, Limit=self.lookup_limit, **options)
        return fields.group(rows, self.number_field)  # numbers are unique in the organisation: one record each

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
        if self.target.approval != "none":
            self.approve()

    def apply(self, indices: list[int], existing: dict[str, dict], *, race_allowed: bool) -> None:
        """Plan and write the rows at ``indices``; rows lost to a concurrent writer are retried once as updates."""
        plan = plan_rows(self.rows, self.states, indices, existing, self.target.field_map,
                         number_field=self.number_field, approval=self.target.approval,
                         unread_changed=self.unread_changed)
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
            self.to_approve[self.record_id(existing, i)] = record.get(DOCUMENT_STATUS) or CREATED
        lost = self.create(plan.creates)
        self.save(self.unaudit([i for i in plan.updates if i not in refused], existing), existing)
        if race_allowed and lost:  # a concurrent writer created these numbers after our look-up: update them
            for i in lost:
                del self.outcomes[i]
            self.apply(lost, self.look_up(lost), race_allowed=False)

    def forbid(self, indices: list[int], existing: dict[str, dict]) -> None:
        """One Forbid per batch of records."""
        for i, note in self.switch(FORBID, indices, existing).items():
            self.outcome(i, "forbidden", id=self.record_id(existing, i), message=note)

    def enable(self, indices: list[int], existing: dict[str, dict], followed_by: set[int]) -> set[int]:
        """One Enable per batch of records; returns the rows refused.

        :param followed_by: rows that are updated or approved next (their outcome comes from that step)
        """
        self.enabled.update(self.switch(ENABLE, indices, existing))
        for i in indices:
            if i in self.enabled and i not in followed_by:
                self.outcome(i, "enabled", id=self.record_id(existing, i), message="enabled; fields unchanged")
        return {i for i in indices if i not in self.enabled}

    def switch(self, operation: SwitchOperation, indices: list[int],
               existing: dict[str, dict]) -> dict[int, str | None]:
        """Forbid or Enable the records, one call per batch; a refused record gets one status read, and is done when
        it is in the wanted status meanwhile (else rejected here).

        :return: row → ``None`` (switched) or the note of a refusal of a record found switched already
        """
        wanted, call = SWITCHED_TO[operation], self.hook.forbid if operation == FORBID else self.hook.enable
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
        now = self.statuses([self.record_id(existing, i) for i in failed], FORBID_STATUS) if failed else {}
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
        if self.target.approval == "auto":
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
                                           number_field=self.number_field, scope=self.in_organisation,
                                           auto_submit_and_audit=True)
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
            now = self.statuses(list(unverified), DOCUMENT_STATUS)
            for record_id, i in unverified.items():
                if now.get(record_id) == AUDITED:
                    self.outcome(i, "created", id=record_id)
                else:
                    self.flag_not_applied(i, record_id, now.get(record_id) or CREATED)
        return explicit

    def flag_not_applied(self, i: int, record_id: int, document_status: str) -> None:
        """The server saved the row but did not submit/audit it (it ignores ``IsAutoSubmitAndAudit``)."""
        self.outcome(i, "created", id=record_id,
                     message=f"IsAutoSubmitAndAudit not applied (status {document_status}); submitted/audited")
        self.to_approve[record_id] = document_status

    def unaudit(self, updates: list[int], existing: dict[str, dict]) -> list[int]:
        """UnAudit the audited records among ``updates`` (per batch); returns the rows that may be saved."""
        audited = [i for i in updates if existing[self.number(i)].get(DOCUMENT_STATUS) == AUDITED]
        failed = set()
        for batch in chunked(audited, self.rows_per_batch):
            ids = [self.record_id(existing, i) for i in batch]
            for i, result in zip(batch, self.hook.unaudit(self.form_id, ids=ids), strict=True):
                if result.ok:
                    existing[self.number(i)][DOCUMENT_STATUS] = UNAUDITED
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
            results = self.hook.batch_save(self.form_id, models, pk_field=self.pk_field, number_field=self.number_field,
                                           scope=self.in_organisation)
            for i, record, result in zip(batch, records, results, strict=True):
                prior = self.outcomes.get(i)
                note = f"auto submit/audit refused ({prior.message}); " if prior and prior.status == "rejected" else ""
                if result.ok and result.id is not None:
                    status: Status = "created" if record is None else "enabled" if i in self.enabled else "updated"
                    self.outcome(i, status, id=result.id, fields_updated=status == "enabled",
                                 message=(note + "saved explicitly") if note else
                                 "enabled; fields updated" if status == "enabled" else None)
                    if self.target.approval != "none":
                        self.to_approve[result.id] = (record or {}).get(DOCUMENT_STATUS) or CREATED
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
            for record_id, status in self.statuses(list(failures), DOCUMENT_STATUS).items():
                if status == AUDITED:
                    failures.pop(record_id, None)
        for i, outcome in list(self.outcomes.items()):
            if outcome.id in failures and outcome.status != "rejected":
                self.outcome(i, "rejected", id=outcome.id,
                             message=f"saved as {outcome.status} but {failures[outcome.id]}")


def upsert(
    hook: KingdeeHook,
    target: TargetSpec,
    rows: list[dict],
    *,
    states: Sequence[State] | None = None,
    known_records: int | None = None,
    unread_changed: set[int] | None = None,
) -> list[RowOutcome]:
    """Create, update, forbid or enable ``rows`` by business key within the target's organisation; one outcome per
    row, in input order.

    :param hook: the Kingdee hook
    :param target: the form, its keys, organisation, field map, approval mode, batch and query sizes
    :param rows: BatchSave models as the target's field map renders them
    :param states: per row ``active`` (default), ``blocked`` or ``deleted`` (forbidden when the record exists)
    :param known_records: how many records the organisation is thought to hold (for :func:`plan_lookup`)
    :param unread_changed: rows whose write-only fields may have changed (:func:`plan_rows`)
    """
    if not rows:
        return []
    states = list(states) if states is not None else ["active"] * len(rows)
    if len(states) != len(rows):
        raise ValueError(f"{len(rows)} rows but {len(states)} states")
    run = BatchUpsert(hook, target, rows, states, set(unread_changed or ()))
    run.run(list(range(len(rows))), known_records)
    return [run.outcomes[i] for i in range(len(rows))]
