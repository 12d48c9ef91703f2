"""The load of a document scheme (``target.kind: document``): each source record becomes one Kingdee document,
posted once, never edited, and only when the base data it references is in Kingdee.

Per load chunk, for each staged item, what the ledger knows decides first, without a Kingdee call:

* posted by this package before (the ledger has its id): ``unchanged`` when the row is the same, else
  ``changed_after_posting`` naming what changed (the document stays as posted: a later scheme posts returns);
* posted by someone else (found by its number earlier): ``exists``, left alone;
* ``filtered`` (the condition no longer keeps it, e.g. cancelled): ``changed_after_posting`` when it was posted,
  else ``absent`` (never posted, and it stops waiting);
* waiting for base data that cannot have arrived (every reference it lacks belongs to a base-data scheme whose
  ledger still does not know it as written and active): ``waiting`` again.

The others are posted in look-up batches of ``lookup_limit``, each at most:

1. one ExecuteBillQuery of its numbers (``number_field in (…)`` in the organisation): a number found is ``exists``,
   unless the ledger says this package was sending it (written before the BatchSave): then the earlier send did
   commit (a crash or a lost answer after Kingdee committed) and it is adopted as ``created`` — never sent twice;
2. one ExecuteBillQuery per referenced base-data form, for the numbers neither the base-data schemes' ledgers know
   as written and active nor this load found already (none when they know them all); a document with a reference
   that is missing, forbidden or not audited is ``waiting`` (kept in the ledger database with what it lacks) and
   not sent;
3. ⌈d/B⌉ BatchSave of the d ready documents, ``rows_per_batch`` each (``IsAutoSubmitAndAudit`` with
   ``approval: auto``, the target's ``save_options`` such as ``InterationFlags``), outcomes by ``DIndex``;
   Kingdee's own refusal of a reference (``字段“物料”是必填项``) is ``waiting`` too, not ``rejected``.

So d new documents cost ⌈d/L⌉ + (forms with numbers no ledger vouches for) + ⌈d/B⌉ calls, and a rerun, a cleared
task or a backfill over old windows costs none: the ledger knows every number it posted.
"""

from __future__ import annotations

import json
import logging
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

from jikeyun_kingdee.compat import ObjectStoragePath
from jikeyun_kingdee.fields import FieldMap
from jikeyun_kingdee.items import LoadChunk, LoadItem, LoadManifest, LoadResult, Status, chunked
from jikeyun_kingdee.kingdee_forms import (
    BASE_DATA_NUMBER,
    DOCUMENT_STATUS,
    FORBID_STATUS,
    USE_ORGANISATION,
    in_filter,
    is_audited,
    is_forbidden,
    organisation_filter,
)
from jikeyun_kingdee.ledger import POSTED_ELSEWHERE, SENDING, Applied, Waiting, row_hash
from jikeyun_kingdee.pipeline import timed
from jikeyun_kingdee.staging import read_ndjson, write_ndjson
from jikeyun_kingdee.upsert import is_duplicate_number
from jikeyun_kingdee.values import same_value

if TYPE_CHECKING:
    from jikeyun_kingdee.hooks.kingdee import KingdeeHook, RowResult
    from jikeyun_kingdee.ledger import SyncLedger
    from jikeyun_kingdee.scheme import Scheme

log = logging.getLogger(__name__)

#: Kingdee's words for a reference it could not resolve (captured: 字段“客户”是必填项; 第【1】行分录，【仓库】字段必录;
#: with IsVerifyBaseDataField the wording is not known [?]: 不存在 / 禁用 as the doc's "禁用也是不存在")
REFUSED_REFERENCE = re.compile("必填项|必录|不存在|禁用")


@dataclass(frozen=True)
class BaseData:
    """A base-data form documents reference.

    :param form_id: e.g. ``BD_MATERIAL``
    :param organisation: its records belong to this organisation (``FUseOrgId``), or None (e.g. BD_UNIT)
    :param ledger: the ledger of the base-data scheme that writes the form, when its keys are Kingdee numbers: it
        vouches for a number it knows as written and active, without a Kingdee call
    """

    form_id: str
    organisation: str | None = None
    ledger: SyncLedger | None = None

    def vouched(self, numbers: Iterable[str]) -> set[str]:
        """The numbers the base-data scheme's ledger knows as written to Kingdee and active."""
        if self.ledger is None:
            return set()
        return {key for key, entry in self.ledger.entries(numbers).items()
                if entry.kingdee_id is not None and entry.state == "active"}


def lacks_text(lacks: Iterable[tuple[str, str]]) -> list[str]:
    return [f"{form} {number}" for form, number in sorted(set(lacks))]


def may_have_arrived(waiting: Waiting, base: Mapping[str, BaseData]) -> bool:
    """Whether any base data the waiting document lacks may be in Kingdee now: a form no base-data scheme vouches
    for is looked up again (one query per batch); one a scheme writes only once its ledger knows the number."""
    for lack in waiting.lacks:
        form, _, number = lack.partition(" ")
        known = base.get(form)
        if known is None or known.ledger is None or known.vouched([number]):
            return True
    return False


def what_changed(posted: Mapping[str, Any] | None, row: Mapping[str, Any]) -> str:
    """The fields of ``row`` that differ from the row as posted (entry lists by their lines), as text."""
    if posted is None:
        return "changed at the source (the row as posted is not known)"
    changed = []
    for name in sorted(set(posted) | set(row)):
        before, after = posted.get(name), row.get(name)
        if isinstance(before, list) or isinstance(after, list):
            before, after = before or [], after or []
            if len(before) != len(after):
                changed.append(f"{name}: {len(before)} → {len(after)} lines")
            else:
                lines = [i + 1 for i, (b, a) in enumerate(zip(before, after, strict=True)) if _differs(b, a)]
                if lines:
                    changed.append(f"{name}: line {', '.join(map(str, lines))}")
        elif _differs(before, after):
            changed.append(f"{name}: {_short(before)} → {_short(after)}")
    return "; ".join(changed) or "unchanged fields"


def _differs(before: Any, after: Any) -> bool:
    if isinstance(before, Mapping) and isinstance(after, Mapping):
        return any(_differs(before.get(k), after.get(k)) for k in set(before) | set(after))
    return not same_value(before, after)


def _short(value: Any) -> str:
    if isinstance(value, Mapping) and len(value) == 1:
        value = next(iter(value.values()))
    text = json.dumps(value, ensure_ascii=False, default=str) if not isinstance(value, str) else value
    return text if len(text) <= 60 else text[:57] + "…"


class DocumentLoad:
    """One chunk's load of documents (see the module docstring); results by item position."""

    def __init__(self, scheme: Scheme, hook: KingdeeHook, ledger: SyncLedger, base: Mapping[str, BaseData],
                 run_id: str, now: datetime) -> None:
        self.scheme, self.target, self.hook, self.ledger, self.base = scheme, scheme.target, hook, ledger, base
        self.run_id, self.now = run_id, now
        self.field_map: FieldMap = scheme.target.field_map
        self.results: dict[int, LoadResult] = {}
        self.waiting: dict[str, tuple[LoadItem, list[str]]] = {}
        self.released: set[str] = set()
        self.known: dict[str, set[str]] = {}  # form → numbers found ready by this load (asked once)

    @property
    def in_organisation(self) -> str:
        return organisation_filter(self.target.organisation_field, self.target.organisation)

    def result(self, position: int, item: LoadItem, status: Status, *, id: int | None = None,
               field: str | None = None, message: str | None = None) -> None:
        self.results[position] = {"key": item["key"], "status": status, "id": id, "modified": item["modified"],
                                  "field": field, "message": message}
        if status == "waiting":
            self.waiting[item["key"]] = (item, (message or "").split("; ") if message else [])
            self.released.discard(item["key"])
        else:
            self.released.add(item["key"])

    def run(self, items: list[LoadItem]) -> None:
        keys = [item["key"] for item in items]
        entries, waiting = self.ledger.entries(keys), self.ledger.waiting(keys)
        to_post, recheck = [], []
        for position, item in enumerate(items):
            entry, digest = entries.get(item["key"]), row_hash(item["row"])
            posted = entry is not None and entry.kingdee_id is not None and entry.row_hash != POSTED_ELSEWHERE
            if entry is not None and entry.row_hash == POSTED_ELSEWHERE:
                self.result(position, item, "exists", id=entry.kingdee_id, message="posted by someone else")
            elif item["state"] != "active":
                if posted:
                    assert entry is not None
                    self.result(position, item, "changed_after_posting", id=entry.kingdee_id,
                                message="no longer passes the source condition (e.g. cancelled); the document "
                                        "stays as posted")
                else:
                    self.result(position, item, "absent", message="filtered out, never posted")
            elif posted:
                assert entry is not None
                if entry.row_hash == digest:
                    self.result(position, item, "unchanged", id=entry.kingdee_id, message="posted (ledger)")
                else:
                    before = json.loads(entry.posted_row) if entry.posted_row else None
                    self.result(position, item, "changed_after_posting", id=entry.kingdee_id,
                                message=what_changed(before, item["row"]))
            elif item["key"] in waiting and row_hash(waiting[item["key"]].item["row"]) == digest:
                recheck.append(position)
            else:
                to_post.append(position)
        to_post += self.arrived(items, recheck, waiting)
        for batch in chunked(sorted(to_post), self.target.lookup_limit):
            self.post(items, batch, entries)
        self.ledger.keep_waiting(self.waiting, self.now)
        self.ledger.release(self.released - set(self.waiting))

    def arrived(self, items: list[LoadItem], recheck: list[int], waiting: Mapping[str, Waiting]) -> list[int]:
        """The waiting documents (unchanged since) whose lacking base data is there now; the others wait on.

        Only what each lacks is asked: of the base-data schemes' ledgers, and, for a form no scheme vouches for,
        Kingdee (one query per form per batch); a document lacking only what no ledger knows yet costs nothing.
        """
        arrived = []
        for batch in chunked(recheck, self.target.rows_per_batch):
            lacks = {p: [lack.partition(" ")[::2] for lack in waiting[items[p]["key"]].lacks] for p in batch}
            candidates = [p for p in batch if may_have_arrived(waiting[items[p]["key"]], self.base)]
            needed: dict[str, set[str]] = {}
            for p in candidates:
                for form, number_ in lacks[p]:
                    needed.setdefault(form, set()).add(number_)
            forms = self.field_map.referenced_forms  # a lack named otherwise (a refusal without a number): retried
            ready = {form: self.ready(form, numbers) if form in forms else numbers for form, numbers in needed.items()}
            for p in batch:
                still = [(form, n) for form, n in lacks[p] if p not in candidates or n not in ready.get(form, set())]
                if still:
                    self.result(p, items[p], "waiting", message="; ".join(lacks_text(still)))
                else:
                    arrived.append(p)
        return arrived

    def post(self, items: list[LoadItem], batch: list[int], entries: Mapping[str, Applied]) -> None:
        target = self.target
        number_of = {p: str(items[p]["row"].get(target.number_field) or "").strip() for p in batch}
        found = self.numbers_in_kingdee(sorted({n for n in number_of.values() if n}))
        adopted: dict[str, Applied] = {}
        new = []
        for p in batch:
            item, entry = items[p], entries.get(items[p]["key"])
            record_id = found.get(number_of[p])
            if record_id is None:
                new.append(p)
            elif entry is not None and entry.row_hash == SENDING:  # our earlier send committed
                self.result(p, item, "created", id=record_id, message="an earlier send committed (found by number)")
                adopted[item["key"]] = self.applied(item, record_id)
            else:
                self.result(p, item, "exists", id=record_id, message=f"{number_of[p]} is in Kingdee already")
                adopted[item["key"]] = Applied(item["modified"], record_id, POSTED_ELSEWHERE, "active")
        self.ledger.advance(adopted, self.run_id)
        lacking = self.lacking([items[p] for p in new])
        ready = []
        for p, lacks in zip(new, lacking, strict=True):
            if lacks:
                self.result(p, items[p], "waiting", message="; ".join(lacks))
            else:
                ready.append(p)
        for group in chunked(ready, self.target.rows_per_batch):
            self.save(items, group)

    def numbers_in_kingdee(self, numbers: list[str]) -> dict[str, int]:
        """number → Kingdee id of the documents among ``numbers`` in the organisation (one query)."""
        if not numbers:
            return {}
        target = self.target
        records = self.hook.query(target.form_id, [target.pk_field, target.number_field],
                                  f"{in_filter(target.number_field, numbers)} and {self.in_organisation}")
        return {str(r[target.number_field]): int(r[target.pk_field]) for r in records}  # one row per entry: same id

    def lacking(self, items: list[LoadItem]) -> list[list[str]]:
        """Per item, the base data it references that is not in Kingdee, audited and not forbidden."""
        referenced = [self.field_map.referenced(item["row"]) for item in items]
        needed: dict[str, set[str]] = {}
        for refs in referenced:
            for form, numbers in refs.items():
                needed.setdefault(form, set()).update(numbers)
        ready = {form: self.ready(form, numbers) for form, numbers in needed.items()}
        return [lacks_text((form, n) for form, numbers in refs.items() for n in numbers if n not in ready[form])
                for refs in referenced]

    def ready(self, form: str, numbers: set[str]) -> set[str]:
        """The numbers of ``form`` that documents may reference: vouched for by a ledger, or found by one query."""
        base = self.base.get(form, BaseData(form))
        known = self.known.setdefault(form, set())
        known |= base.vouched(numbers - known)
        for unknown in chunked(sorted(numbers - known), self.target.lookup_limit):
            where = in_filter(BASE_DATA_NUMBER, unknown)
            if base.organisation:
                where += f" and {organisation_filter(USE_ORGANISATION, base.organisation)}"
            records = self.hook.query(form, [BASE_DATA_NUMBER, DOCUMENT_STATUS, FORBID_STATUS], where)
            known |= {str(r[BASE_DATA_NUMBER]) for r in records if is_audited(r) and not is_forbidden(r)}
        return known & numbers

    def applied(self, item: LoadItem, record_id: int | None) -> Applied:
        return Applied(item["modified"], record_id, row_hash(item["row"]), "active",
                       json.dumps(item["row"], ensure_ascii=False, sort_keys=True, default=str))

    def save(self, items: list[LoadItem], ready: list[int]) -> None:
        target = self.target
        # written before the send: a number found later with this mark was sent by this package (adopted, not
        # posted again); without it, it would be someone else's (exists)
        self.ledger.advance({items[p]["key"]: Applied(items[p]["modified"], None, SENDING, "active") for p in ready},
                            self.run_id)
        outcomes = self.hook.batch_save(
            target.form_id, [items[p]["row"] for p in ready], pk_field=target.pk_field,
            number_field=target.number_field, scope=self.in_organisation,
            auto_submit_and_audit=target.approval == "auto", **target.save_options)
        applied: dict[str, Applied] = {}
        for p, outcome in zip(ready, outcomes, strict=True):
            item = items[p]
            if outcome.ok:
                self.result(p, item, "created", id=outcome.id)
                applied[item["key"]] = self.applied(item, outcome.id)
            elif is_duplicate_number(outcome.message):
                self.result(p, item, "exists", field=outcome.field, message=outcome.message)
                applied[item["key"]] = Applied(item["modified"], None, POSTED_ELSEWHERE, "active")
            elif self.refused_reference(outcome):
                self.result(p, item, "waiting", field=outcome.field,
                            message="; ".join(self.lacks_of_field(item, outcome.field)))
            else:
                self.result(p, item, "rejected", field=outcome.field, message=outcome.message)
        self.ledger.advance(applied, self.run_id)

    def refused_reference(self, outcome: RowResult) -> bool:
        """Kingdee refused a base-data reference of the row (it lacks it), not the row itself."""
        return bool(outcome.field and outcome.field.lower() in self.field_map.form_references
                    and REFUSED_REFERENCE.search(outcome.message or ""))

    def lacks_of_field(self, item: LoadItem, field: str | None) -> list[str]:
        """What a refusal of ``field`` says the document lacks: that field's numbers in the row."""
        form = self.field_map.form_references.get((field or "").lower())
        numbers = self.field_map.referenced(item["row"]).get(form or "", set())
        return lacks_text((form or "", n) for n in numbers) or [f"{field} (refused by Kingdee)"]


@timed
def load_documents(
    scheme: Scheme, hook: KingdeeHook, ledger: SyncLedger, folder: ObjectStoragePath, chunk: LoadChunk,
    run_id: str, base: Mapping[str, BaseData], now: datetime,
) -> LoadManifest:
    """Post one chunk's documents (see the module docstring); results to ``<folder>/load/chunk-<n>.ndjson``.

    :param now: the run's time (its window's end): when a document that starts to wait began waiting
    """
    items = [cast(LoadItem, item) for item in read_ndjson(chunk["items"])]  # staged by filter as LoadItems
    load = DocumentLoad(scheme, hook, ledger, base, run_id, now)
    load.run(items)
    results = [load.results[p] for p in range(len(items))]
    out = folder / "load"
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"chunk-{chunk['chunk']:05d}.ndjson"
    write_ndjson(path, results)
    counts: Counter[str] = Counter(result["status"] for result in results)
    for result in results:
        if result["status"] in ("rejected", "changed_after_posting"):
            log.warning("load: %s %s: %s %s", result["status"], result["key"], result.get("field") or "",
                        result.get("message") or "")
    return {"chunk": chunk["chunk"], "results": str(path), "counts": dict(counts),
            "calls": dict(hook.call_counts), "retries": sum(hook.retry_counts.values())}

