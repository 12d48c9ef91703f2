"""Upsert of Kingdee base data (BD_STOCK) by business key (``FNumber``) within one use organisation.

Per batch, in O(1) calls: one ExecuteBillQuery finds existing records; UnAudit for audited records being changed;
one BatchSave for the new rows and one for the changed rows (with the primary key); one Submit and one Audit for the
saved ids. A duplicate-number error caused by a concurrent writer is resolved by one more query and an update.
Planning is pure (:func:`plan_batch`); :func:`upsert` does the calls.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel

from jikeyun_kingdee.kingdee_filters import in_filter, sql_literal

if TYPE_CHECKING:
    from jikeyun_kingdee.hooks.kingdee import KingdeeHook

STATUS_FIELD = "FDocumentStatus"
AUDITED = "C"
SUBMITTABLE = ("Z", "A", "D")
SUBMITTED = "B"


class RowOutcome(BaseModel):
    """What happened to one input row (same order as the input)."""

    index: int
    number: str
    status: Literal["created", "updated", "unchanged", "rejected"]
    id: int | None = None
    field: str | None = None
    message: str | None = None


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
            if isinstance(value, dict) and set(value) != {"FNumber"} or isinstance(value, list):
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


@dataclass
class Plan:
    """What to do with each row of a batch (indices into the input rows)."""

    creates: list[int] = field(default_factory=list)
    updates: list[int] = field(default_factory=list)
    unchanged: list[int] = field(default_factory=list)
    approve_only: list[int] = field(default_factory=list)  # same content, but not audited yet
    rejected: dict[int, str] = field(default_factory=dict)


def plan_batch(
    rows: list[dict],
    indices: list[int],
    existing: dict[str, dict],
    columns: dict[str, str],
    *,
    number_field: str,
    submit_and_audit: bool,
) -> Plan:
    """Decide create / update / unchanged for the rows at ``indices``.

    :param existing: number → query row (with the columns of ``columns``, the primary key and FDocumentStatus)
    :param columns: row field → query column (:func:`comparable_fields`)
    """
    plan, seen = Plan(), set()
    for i in indices:
        number = str(rows[i].get(number_field) or "").strip()
        if not number:
            plan.rejected[i] = f"{number_field} is empty"
        elif number in seen:
            plan.rejected[i] = f"{number_field} {number} occurs more than once in this batch"
        elif number not in existing:
            plan.creates.append(i)
        elif any(not same_value(rows[i][name], existing[number].get(col)) for name, col in columns.items()
                 if name in rows[i]):
            plan.updates.append(i)
        elif submit_and_audit and existing[number].get(STATUS_FIELD) != AUDITED:
            plan.approve_only.append(i)
        else:
            plan.unchanged.append(i)
        seen.add(number)
    return plan


# -- calls ------------------------------------------------------------------------------------------------------
@dataclass
class _Run:
    """State of one upsert call."""

    hook: KingdeeHook
    form_id: str
    rows: list[dict]
    org_number: str
    number_field: str
    pk_field: str
    submit_and_audit: bool
    columns: dict[str, str]
    outcomes: dict[int, RowOutcome] = field(default_factory=dict)
    document_status: dict[int, str] = field(default_factory=dict)  # saved id → status after the save

    def number(self, i: int) -> str:
        return str(self.rows[i].get(self.number_field) or "")

    def outcome(self, i: int, status: str, **kwargs: Any) -> None:
        self.outcomes[i] = RowOutcome(index=i, number=self.number(i), status=status, **kwargs)

    def find_existing(self, indices: list[int]) -> dict[str, dict]:
        numbers = sorted({self.number(i) for i in indices if self.number(i)})
        if not numbers:
            return {}
        keys = [self.pk_field, self.number_field, STATUS_FIELD, *dict.fromkeys(self.columns.values())]
        where = f"{in_filter(self.number_field, numbers)} and FUseOrgId.FNumber = {sql_literal(self.org_number)}"
        return {str(r[self.number_field]): r for r in self.hook.query(self.form_id, keys, where)}

    def write(self, indices: list[int], *, race_allowed: bool) -> None:
        """Plan and save the rows at ``indices``; rows lost to a concurrent writer are retried once as updates."""
        existing = self.find_existing(indices)
        plan = plan_batch(self.rows, indices, existing, self.columns, number_field=self.number_field,
                          submit_and_audit=self.submit_and_audit)
        for i, message in plan.rejected.items():
            self.outcome(i, "rejected", field=self.number_field, message=message)
        for i in plan.unchanged:
            self.outcome(i, "unchanged", id=int(existing[self.number(i)][self.pk_field]))
        for i in plan.approve_only:
            record = existing[self.number(i)]
            self.outcome(i, "updated", id=int(record[self.pk_field]), message="content unchanged; submitted/audited")
            self.document_status[int(record[self.pk_field])] = record.get(STATUS_FIELD) or "A"

        self.save(plan.creates, existing, "created")
        self.save(self.unaudit(plan.updates, existing), existing, "updated")
        lost = [i for i in plan.creates
                if self.outcomes[i].status == "rejected" and is_duplicate_number(self.outcomes[i].message)]
        if race_allowed and lost:  # a concurrent writer created these numbers after our query: update them
            self.write(lost, race_allowed=False)

    def unaudit(self, updates: list[int], existing: dict[str, dict]) -> list[int]:
        """UnAudit the audited records among ``updates``; returns the rows that may be saved."""
        audited = [i for i in updates if existing[self.number(i)].get(STATUS_FIELD) == AUDITED]
        if not audited:
            return updates
        ids = [int(existing[self.number(i)][self.pk_field]) for i in audited]
        failed = set()
        for i, result in zip(audited, self.hook.unaudit(self.form_id, ids=ids)):
            if result.ok:
                existing[self.number(i)][STATUS_FIELD] = "D"
            else:
                failed.add(i)
                self.outcome(i, "rejected", id=ids[audited.index(i)], field=result.field,
                             message=f"UnAudit failed: {result.message}")
        return [i for i in updates if i not in failed]

    def save(self, indices: list[int], existing: dict[str, dict], status: str) -> None:
        if not indices:
            return
        models = []
        for i in indices:
            record = existing.get(self.number(i))
            models.append({self.pk_field: int(record[self.pk_field]), **self.rows[i]} if record else dict(self.rows[i]))
        results = self.hook.batch_save(self.form_id, models, pk_field=self.pk_field, number_field=self.number_field)
        for i, result in zip(indices, results):
            if result.ok and result.id is not None:
                self.outcome(i, status, id=result.id)
                record = existing.get(self.number(i))
                self.document_status[result.id] = (record or {}).get(STATUS_FIELD) or "A"
            else:
                self.outcome(i, "rejected", field=result.field, message=result.message)

    def approve(self) -> None:
        """One Submit for saved records not yet submitted, one Audit for all of them."""
        to_submit = [i for i, s in self.document_status.items() if s in SUBMITTABLE]
        to_audit = [i for i, s in self.document_status.items() if s == SUBMITTED]
        failures: dict[int, str] = {}
        for record_id, result in zip(to_submit, self.hook.submit(self.form_id, ids=to_submit)):
            if result.ok:
                to_audit.append(record_id)
            else:
                failures[record_id] = f"Submit failed: {result.message}"
        for record_id, result in zip(to_audit, self.hook.audit(self.form_id, ids=to_audit)):
            if not result.ok:
                failures[record_id] = f"Audit failed: {result.message}"
        if failures:  # a failure may be a replayed transition that had already succeeded: check the status
            where = in_filter(self.pk_field, sorted(failures))
            for row in self.hook.query(self.form_id, [self.pk_field, STATUS_FIELD], where):
                if row.get(STATUS_FIELD) == AUDITED:
                    failures.pop(int(row[self.pk_field]), None)
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
    number_field: str = "FNumber",
    pk_field: str = "FStockId",
    submit_and_audit: bool = True,
) -> list[RowOutcome]:
    """Create or update ``rows`` by business key within one use organisation; one outcome per row, in input order.

    :param hook: the Kingdee hook
    :param form_id: e.g. ``BD_STOCK``
    :param rows: BatchSave models (``{"FNumber": ..., "FName": ..., "FUseOrgId": {"FNumber": org}, ...}``)
    :param org_number: the use organisation the numbers are unique in
    :param number_field: the business key
    :param pk_field: the primary key (query column and Model field for updates)
    :param submit_and_audit: submit and audit every saved record (and records left unaudited before)
    """
    if not rows:
        return []
    run = _Run(hook, form_id, rows, org_number, number_field, pk_field, submit_and_audit,
               comparable_fields(rows, number_field=number_field, pk_field=pk_field))
    run.write(list(range(len(rows))), race_allowed=True)
    if submit_and_audit and run.document_status:
        run.approve()
    return [run.outcomes[i] for i in range(len(rows))]
