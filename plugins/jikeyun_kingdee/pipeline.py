"""The steps of one run: extract → transform → filter → check target → load → report, over staged files.

Each step reads what the previous one staged, writes below its own folder of the run (cleared first, so a rerun
replaces its own files) and returns a small JSON manifest for XCom. Steps take hooks and the ledger as arguments and
know nothing of Airflow's wiring (that is :mod:`jikeyun_kingdee.dag_factory`). No step holds all of a run's
records in memory: they stream from file to file (filter de-duplicates in a SQLite file of its temp folder).
"""

from __future__ import annotations

import functools
import json
import logging
import math
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime
from itertools import islice
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar, cast

import pendulum
from pydantic import ValidationError

from jikeyun_kingdee.compat import ObjectStoragePath
from jikeyun_kingdee.items import (
    CheckManifest,
    ExtractManifest,
    FilterCounts,
    FilterManifest,
    Item,
    LoadChunk,
    LoadItem,
    LoadManifest,
    LoadResult,
    RunSummary,
    Status,
    TransformManifest,
    rows_per_load_chunk,
)
from jikeyun_kingdee.ledger import Applied, row_hash
from jikeyun_kingdee.records import BEIJING
from jikeyun_kingdee.scheme import Scheme, validation_message
from jikeyun_kingdee.source_paging import read_window
from jikeyun_kingdee.staging import (
    LatestByKey,
    encode,
    fresh_folder,
    ndjson_writer,
    read_ndjson,
    read_parts,
    write_lines,
    write_ndjson,
    write_parts,
)
from jikeyun_kingdee.transform import staged_state, transform_record
from jikeyun_kingdee.upsert import upsert

if TYPE_CHECKING:
    from jikeyun_kingdee.hooks.jikeyun import JikeyunHook
    from jikeyun_kingdee.hooks.kingdee import KingdeeHook
    from jikeyun_kingdee.ledger import SyncLedger

log = logging.getLogger(__name__)

STAGED_PAGE_RECORDS = 1000  # records per staged file of extract and transform
LOGGED_REJECTS = 20  # rejects named one by one in the task log (all of them are in the staged rejects file)
REPORTED_REJECTS = 200  # rejected keys named in the run's summary (XCom) and alert
CHECKPOINT = "checkpoint.json"  # extract's saved position while it waits for the source's quota


class TargetNotReady(RuntimeError):
    """The target organisation or form does not exist: nothing was written."""


StepArgs = ParamSpec("StepArgs")
ManifestT = TypeVar("ManifestT", bound=Mapping[str, Any])


def timed(step: Callable[StepArgs, ManifestT]) -> Callable[StepArgs, ManifestT]:
    """Add the step's wall time in seconds to the manifest it returns (``"seconds"``)."""

    @functools.wraps(step)
    def run(*args: StepArgs.args, **kwargs: StepArgs.kwargs) -> ManifestT:
        started = time.perf_counter()
        manifest = step(*args, **kwargs)
        return cast(ManifestT, {**manifest, "seconds": round(time.perf_counter() - started, 3)})

    return run


def _write_parts(folder: ObjectStoragePath, prefix: str, records: Iterable[Mapping[str, Any]]) -> tuple[list[str], int]:
    parts = write_parts(folder, prefix, records, STAGED_PAGE_RECORDS)
    return [path for path, _ in parts], sum(count for _, count in parts)


# -- steps ------------------------------------------------------------------------------------------------------


@timed
def check_target(scheme: Scheme, hook: KingdeeHook) -> CheckManifest:
    """Before the first write: the organisation exists and the form is known.

    :raises TargetNotReady: naming what is missing.
    """
    target = scheme.target
    if not hook.form_exists(target.form_id):
        raise TargetNotReady(f"Kingdee form {target.form_id!r} is not known to the target data centre")
    if not hook.organisation_exists(target.organisation):
        raise TargetNotReady(f"Kingdee organisation {target.organisation!r} does not exist (form ORG_Organizations)")
    return {"form_id": target.form_id, "organisation": target.organisation, "calls": dict(hook.call_counts)}


class SourceQuotaExhausted(RuntimeError):
    """The source API's call quota ran out during extract. What was read is staged and the read's position saved
    (``extract/checkpoint.json``); ``extract(..., resume=True)`` goes on from there once ``resets_at`` has passed.
    Never a failure: the task waits for the reset (deferred) and resumes."""

    def __init__(self, method: str, fetched: int, resets_at: datetime) -> None:
        super().__init__(f"Jikeyun {method}: call quota exhausted after {fetched} records of this run; the read "
                         f"goes on from where it stopped after {resets_at.isoformat()}")
        self.method, self.fetched, self.resets_at = method, fetched, resets_at


@timed
def extract(
    scheme: Scheme, hook: JikeyunHook, folder: ObjectStoragePath, start: datetime | None, end: datetime | None,
    *, resume: bool = False,
) -> ExtractManifest:
    """Read the window (or everything when ``start``/``end`` are None) with the scheme's paging strategy
    (:func:`~jikeyun_kingdee.source_paging.read_window`) and stage the raw records.

    When the API answers that its call quota is spent (:class:`~jikeyun_kingdee.hooks.jikeyun.JikeyunQuotaExhausted`)
    the records read so far stay staged, the read's position and counts go to ``extract/checkpoint.json``, and
    :class:`SourceQuotaExhausted` says when the quota comes back (the scheme's ``source.quota_reset`` after the
    server's clock, else after now). ``resume=True`` goes on from the folder's checkpoint (and starts afresh without
    one): no page read before is read again, save the one the read stopped in. A read that ends removes it.

    The manifest counts the calls made per Beijing day (``calls_by_day``, ``{"2026-11-02": {method: n}}``, answered
    calls by the local clock), over every part of a read the quota interrupted (``quota_waits`` of them).
    """
    from jikeyun_kingdee.hooks.jikeyun import JikeyunQuotaExhausted

    source = scheme.source
    out = folder / "extract"
    checkpoint = _read_checkpoint(out) if resume else None
    if checkpoint is None:
        fresh_folder(out)
        checkpoint = {"position": None, "pages": [], "fetched": 0, "calls": {}, "retries": 0, "calls_by_day": {},
                      "quota_waits": 0, "read_at": pendulum.now("UTC").isoformat()}
    else:
        log.info("extract: resuming after %d records in %d staged pages (%d quota wait(s))", checkpoint["fetched"],
                 len(checkpoint["pages"]), checkpoint["quota_waits"])
    by_day: dict[str, Counter[str]] = {day: Counter(calls) for day, calls in checkpoint["calls_by_day"].items()}

    def call(method: str, bizcontent: dict[str, Any]) -> dict[str, Any]:
        data = hook.call(method, bizcontent)
        by_day.setdefault(pendulum.now(BEIJING).date().isoformat(), Counter())[method] += 1
        return data

    if start is None and end is None and scheme.target.kind == "document":
        start = scheme.start_date  # documents of a full read: those since the scheme began, not all history
    read = read_window(call, source, start, end, resume=checkpoint["position"])
    pages: list[str] = list(checkpoint["pages"])
    fetched = checkpoint["fetched"]
    block: list[dict[str, Any]] = []

    def stage_block() -> None:
        nonlocal fetched
        if block:
            path = out / f"page-{len(pages):05d}.ndjson"
            fetched += write_ndjson(path, block)
            pages.append(str(path))
            block.clear()

    def counts() -> tuple[dict[str, int], int, dict[str, dict[str, int]]]:
        """Calls (attempts) by method, HTTP retries and answered calls by Beijing day, of every part of the read."""
        calls = Counter(checkpoint["calls"])
        calls.update(hook.call_counts)
        return (dict(calls), checkpoint["retries"] + sum(hook.retry_counts.values()),
                {day: dict(c) for day, c in sorted(by_day.items())})

    try:
        for record in read:
            block.append(record)
            if len(block) >= STAGED_PAGE_RECORDS:
                stage_block()
    except JikeyunQuotaExhausted as exc:
        stage_block()  # every record read so far belongs to a page fully read: the position is after it
        resets_at = source.quota_reset.next_after(exc.server_time or pendulum.now("UTC"))
        calls, retries, calls_by_day = counts()
        _write_checkpoint(out, {**checkpoint, "calls": calls, "retries": retries, "calls_by_day": calls_by_day,
                                "position": read.position, "pages": pages, "fetched": fetched,
                                "quota_waits": checkpoint["quota_waits"] + 1, "resets_at": resets_at.isoformat()})
        log.warning("extract: %s; %d records staged, position %s", exc, fetched, read.position)
        raise SourceQuotaExhausted(source.method, fetched, resets_at) from None
    stage_block()
    (out / CHECKPOINT).unlink(missing_ok=True)
    log.info("extract: %d records from %s in %d staged pages", fetched, source.method, len(pages))
    calls, retries, calls_by_day = counts()
    return {
        "pages": pages,
        "fetched": fetched,
        "window": [start.isoformat() if start else None, end.isoformat() if end else None],
        "calls": calls,
        "retries": retries,
        "calls_by_day": calls_by_day,
        "quota_waits": checkpoint["quota_waits"],
        "read_at": checkpoint["read_at"],
    }


def _read_checkpoint(folder: ObjectStoragePath) -> dict[str, Any] | None:
    path = folder / CHECKPOINT
    if not path.exists():
        return None
    with path.open("r", encoding="utf-8") as file:
        return cast(dict[str, Any], json.load(file))


def _write_checkpoint(folder: ObjectStoragePath, checkpoint: dict[str, Any]) -> None:
    with (folder / CHECKPOINT).open("w", encoding="utf-8") as file:
        json.dump(checkpoint, file, ensure_ascii=False)


@timed
def transform(scheme: Scheme, folder: ObjectStoragePath, extracted: ExtractManifest) -> TransformManifest:
    """Map every staged record to an item (:func:`~jikeyun_kingdee.transform.transform_record`); a record that
    fails goes to ``rejects.ndjson`` with its id (or its position in the run) and the reason."""
    out = fresh_folder(folder / "transform")
    rejects = out / "rejects.ndjson"
    rejected = 0
    with ndjson_writer(rejects) as write_reject:

        def items() -> Iterator[Item]:
            nonlocal rejected
            for position, raw in enumerate(read_parts(extracted["pages"])):
                try:
                    yield transform_record(scheme, raw)
                except (ValueError, TypeError) as exc:
                    key = str(raw.get(scheme.source.id_field) or "").strip() or f"record #{position}"
                    reason = validation_message(exc) if isinstance(exc, ValidationError) else str(exc)
                    write_reject({"key": key, "step": "transform", "reason": reason})
                    rejected += 1
                    if rejected <= LOGGED_REJECTS:
                        log.warning("transform rejected %s: %s", key, reason)

        parts, count = _write_parts(out, "part", items())
    if rejected > LOGGED_REJECTS:
        log.warning("transform rejected %d records in all (every one in %s)", rejected, rejects)
    return {"parts": parts, "items": count, "rejected": rejected, "rejects": str(rejects)}


@timed
def filter_rows(scheme: Scheme, folder: ObjectStoragePath, transformed: TransformManifest,
                waiting: Iterable[LoadItem] = ()) -> FilterManifest:
    """Keep the latest item per key, classify it, and stage what load is to apply in load chunks.

    De-duplication by key (latest ``modified`` wins, ties: the one read last) runs over the whole run on local disk
    (:class:`~jikeyun_kingdee.staging.LatestByKey`), before the condition: only a record's latest version decides
    whether it is written, forbidden or filtered out (:func:`~jikeyun_kingdee.transform.staged_state`). Staged items
    are :class:`~jikeyun_kingdee.items.LoadItem`, in first-read order, ``rows_per_chunk`` per chunk file (more when
    ``max_load_chunks`` would be exceeded).

    A document scheme also stages the documents the condition leaves out, as ``filtered`` (load tells whether one
    was posted before: then it changed after posting), and first the documents ``waiting`` for base data (a later
    version read in this run wins).
    """
    source = scheme.source
    out = fresh_folder(folder / "filter")
    documents = scheme.target.kind == "document"
    waiting = list(waiting)

    def entries() -> Iterator[tuple[str, int, str | None, str | None]]:
        for held in waiting:
            yield held["key"], held["modified"], held["state"], encode(held)
        for position, item in enumerate(read_parts(transformed["parts"])):
            state = staged_state(source.condition, scheme.lifecycle, item["source"])
            if state is None and documents:
                state = "filtered"
            load_item: LoadItem | None = None if state is None else {
                "key": item["key"], "modified": item["modified"], "row": item["row"], "state": state}
            staged = None if load_item is None else encode(load_item)
            yield (item["key"] if source.deduplicate else str(position)), item["modified"], state, staged

    with LatestByKey() as latest:
        total = latest.put(entries())
        by_state = latest.counts()
        filtered_out = by_state.pop(None, 0) + by_state.get("filtered", 0)
        rows = sum(by_state.values())
        per_chunk = rows_per_load_chunk(rows, scheme.rows_per_chunk, scheme.max_load_chunks)
        staged = latest.items()
        chunks: list[LoadChunk] = []
        for number in range(math.ceil(rows / per_chunk)):
            path = out / f"chunk-{number:05d}.ndjson"
            chunks.append({"chunk": number, "items": str(path), "rows": write_lines(path, islice(staged, per_chunk))})
    held = by_state.get("filtered", 0)  # documents left out but staged: counted as filtered out, not as duplicates
    # "in": the records read (a waiting document read again counts as a duplicate)
    counts: FilterCounts = {"in": total - len(waiting), "filtered_out": filtered_out,
                            "duplicates": total - filtered_out - rows + held,
                            "rows": rows - held, "retire": rows - held - by_state.get("active", 0),
                            "chunks": len(chunks)}
    log.info("filter: %(in)d in, %(filtered_out)d filtered out, %(duplicates)d duplicates, %(rows)d rows "
             "(%(retire)d to forbid) in %(chunks)d load chunks", counts)
    return {"chunks": chunks, "counts": counts}


def _chunk_items(chunk: LoadChunk) -> Iterator[LoadItem]:
    """The items of a load chunk."""
    for item in read_ndjson(chunk["items"]):
        yield cast(LoadItem, item)  # staged by filter (or the reconcile's compare) as LoadItems


def ledger_verdict(
    item: LoadItem, entry: Applied | None, digest: str, *, verify: bool, superseded: bool = False
) -> Status | None:
    """``stale`` (older than what was applied), ``unchanged`` (written exactly so before), ``superseded`` or None
    (needs a look-up).

    :param verify: the item is the source's current state (the reconcile's repair): it is looked up and written also
        when the ledger says it is unchanged or holds a later source time (a back-dated change in Jikeyun) —
        unless ``superseded``
    :param superseded: (with ``verify``) a sync applied the ledger's later source time after the item was read
    """
    if entry is None:
        return None
    if entry.modified > item["modified"]:
        if not verify:
            return "stale"
        return "superseded" if superseded else None
    if _written_so(entry, digest) and not verify:
        return "unchanged"
    return None


def _verdicts(
    ledger: SyncLedger, items: list[LoadItem], *, verify: bool, read_at: datetime | None = None,
    run_id: str = "",
) -> list[tuple[Status | None, Applied | None, str]]:
    """Per item: its :func:`ledger_verdict`, the ledger's entry and the hash of its row and state.

    :param read_at: (with ``verify``) when the items were read from the source; entries a run other than ``run_id``
        applied since then supersede them. Unknown (None): every later source time does.
    """
    entries = ledger.entries(item["key"] for item in items)
    superseded: set[str] = set()
    if verify:
        later = [item["key"] for item in items
                 if item["key"] in entries and entries[item["key"]].modified > item["modified"]]
        if later:
            superseded = set(later) if read_at is None else ledger.applied_since(later, read_at, other_than=run_id)
    verdicts = []
    for item in items:
        entry, digest = entries.get(item["key"]), row_hash(item["row"], item["state"])
        verdicts.append((ledger_verdict(item, entry, digest, verify=verify, superseded=item["key"] in superseded),
                         entry, digest))
    return verdicts


def _written_so(entry: Applied | None, digest: str) -> bool:
    """Whether the ledger says the row was written exactly so (same hash of row and state)."""
    return entry is not None and entry.row_hash == digest


def has_pending_writes(ledger: SyncLedger, chunks: Iterable[LoadChunk], *, documents: bool = False) -> bool:
    """Whether any staged item needs a Kingdee call (one the ledger does not know as written exactly so, or older;
    ``documents``: an active one the ledger knows neither as posted nor as waiting)."""
    if documents:
        for chunk in chunks:
            keys = [item["key"] for item in _chunk_items(chunk) if item["state"] == "active"]
            known = {*ledger.entries(keys), *ledger.waiting(keys)}
            if any(key not in known for key in keys):
                return True
        return False
    return any(verdict is None for chunk in chunks
               for verdict, _, _ in _verdicts(ledger, list(_chunk_items(chunk)), verify=False))


@timed
def load_chunk(
    scheme: Scheme,
    hook: KingdeeHook,
    ledger: SyncLedger,
    folder: ObjectStoragePath,
    chunk: LoadChunk,
    run_id: str,
    *,
    verify: bool = False,
    read_at: datetime | None = None,
) -> LoadManifest:
    """Write one chunk's items to Kingdee: create, update, forbid or enable (:func:`jikeyun_kingdee.upsert.upsert`).

    Rows older than what the ledger says was applied are ``stale`` and rows written exactly so before are
    ``unchanged``, both without an API call (unless ``verify``); everything else is looked up and written in batches
    of ``rows_per_batch``. Results, one per item, go to ``<folder>/load/chunk-<n>.ndjson``; the ledger records every
    row that was not rejected.

    :param verify: the items are the source's current state (the reconcile's repair): every row is looked up and
        written, also those the ledger says are unchanged or holds a later source time for (the ledger then keeps a
        time after its own: :meth:`~jikeyun_kingdee.ledger.SyncLedger.advance` ``keep_later_time``); only rows a
        sync applied a later source time for after ``read_at`` are skipped, as ``superseded``
    :param read_at: (with ``verify``) when the items were read from Jikeyun; None: unknown, every row the ledger
        holds a later source time for is ``superseded``
    """
    target = scheme.target
    out = folder / "load"
    out.mkdir(parents=True, exist_ok=True)
    items = list(_chunk_items(chunk))
    verdicts = _verdicts(ledger, items, verify=verify, read_at=read_at, run_id=run_id)
    digests = [digest for _, _, digest in verdicts]
    results: list[LoadResult | None] = [None] * len(items)
    todo = []
    for position, (item, (verdict, entry, _)) in enumerate(zip(items, verdicts, strict=True)):
        if verdict is None or entry is None:  # a verdict always has an entry
            todo.append(position)
            continue
        message = {"stale": f"ledger holds a later source time ({entry.modified})",
                   "superseded": f"a sync applied a later source time ({entry.modified}) after the source was read",
                   }.get(verdict, "written so before (ledger)")
        results[position] = {"key": item["key"], "status": verdict, "id": entry.kingdee_id,
                             "modified": item["modified"], "field": None, "message": message}
    counts: Counter[str] = Counter()
    if todo:
        outcomes = upsert(
            hook, target, [items[p]["row"] for p in todo], states=[items[p]["state"] for p in todo],
            known_records=ledger.count() if len(todo) > target.lookup_limit else None,  # only then can it matter
            # write-only fields are compared by the ledger's hash: changed unless it says written exactly so
            unread_changed={j for j, p in enumerate(todo) if not _written_so(verdicts[p][1], digests[p])},
        )
        applied: dict[str, Applied] = {}
        for outcome in outcomes:
            position = todo[outcome.index]
            item = items[position]
            results[position] = {"key": item["key"], "status": outcome.status, "id": outcome.id,
                                 "modified": item["modified"], "field": outcome.field, "message": outcome.message}
            counts["updated"] += outcome.fields_updated  # an enabled row whose fields changed counts as an update too
            if outcome.status != "rejected":
                applied[item["key"]] = Applied(item["modified"], outcome.id, digests[position], item["state"])
        ledger.advance(applied, run_id, keep_later_time=verify)
    path = out / f"chunk-{chunk['chunk']:05d}.ndjson"
    write_ndjson(path, (result for result in results if result is not None))
    counts.update(result["status"] for result in results if result is not None)
    for result in results:
        if result is not None and result["status"] == "rejected":
            log.warning("load rejected %s: %s %s", result["key"], result.get("field") or "",
                        result.get("message") or "")
    return {"chunk": chunk["chunk"], "results": str(path), "counts": {k: v for k, v in counts.items() if v},
            "calls": dict(hook.call_counts), "retries": sum(hook.retry_counts.values())}


def summarise(
    extracted: ExtractManifest, transformed: TransformManifest, filtered: FilterManifest,
    loaded: Iterable[LoadManifest], checked: CheckManifest | None = None, overdue: Mapping[str, str] | None = None,
) -> RunSummary:
    """Totals of a run; ``rejected_keys`` names the first :data:`REPORTED_REJECTS` rejected records (transform and
    load), ``rejected`` counts them all. Documents: ``waiting`` names the first of them with what each lacks,
    ``changed_after_posting`` what changed, ``overdue`` the ones waiting too long (from the ledger)."""
    loaded = [manifest for manifest in loaded if manifest]
    outcomes: Counter[str] = Counter()
    calls: Counter[str] = Counter(extracted.get("calls", {}))
    calls.update(checked.get("calls", {}) if checked else {})
    for manifest in loaded:
        outcomes.update(manifest["counts"])
        calls.update(manifest["calls"])
    rejected_keys: list[str] = []
    rejected = 0
    for key in _rejected_keys(transformed, loaded):
        rejected += 1
        if rejected <= REPORTED_REJECTS:
            rejected_keys.append(key)
    noted: dict[str, dict[str, str]] = {"waiting": {}, "changed_after_posting": {}}
    for manifest in loaded:
        if manifest["counts"].get("waiting") or manifest["counts"].get("changed_after_posting"):
            for result in read_ndjson(manifest["results"]):
                named = noted.get(result["status"])
                if named is not None and len(named) < REPORTED_REJECTS:
                    named[result["key"]] = result.get("message") or ""
    counts = filtered["counts"]
    load_seconds = [manifest.get("seconds", 0.0) for manifest in loaded]
    timings: dict[str, float | None] = {
        "check_target": checked.get("seconds") if checked else None, "extract": extracted.get("seconds"),
        "transform": transformed.get("seconds"), "filter": filtered.get("seconds"),
        "load_total": round(sum(load_seconds), 3), "load_slowest_chunk": max(load_seconds, default=0.0),
    }
    return {
        "window": extracted.get("window"),
        "fetched": extracted["fetched"],
        "transform_rejected": transformed["rejected"],
        "filtered_out": counts["filtered_out"],
        "duplicates_dropped": counts["duplicates"],
        "rows": counts["rows"],
        "retire": counts["retire"],
        "load_chunks": len(loaded),
        "created": outcomes.get("created", 0),
        "updated": outcomes.get("updated", 0),
        "unchanged": outcomes.get("unchanged", 0),
        "forbidden": outcomes.get("forbidden", 0),
        "enabled": outcomes.get("enabled", 0),  # those whose fields changed are in "updated" as well
        "absent": outcomes.get("absent", 0),
        "stale_skipped": outcomes.get("stale", 0),
        "rejected": rejected,
        "rejected_keys": rejected_keys,
        "exists": outcomes.get("exists", 0),
        "waiting": noted["waiting"],
        "waiting_total": outcomes.get("waiting", 0),
        "overdue": dict(overdue or {}),
        "changed_after_posting": noted["changed_after_posting"],
        "api_calls": dict(sorted(calls.items())),
        "api_calls_total": sum(calls.values()),
        "source_calls_by_day": extracted.get("calls_by_day", {}),
        "quota_waits": extracted.get("quota_waits", 0),
        "http_retries": extracted.get("retries", 0),
        "seconds": timings,
    }


def _rejected_keys(transformed: TransformManifest, loaded: Iterable[LoadManifest]) -> Iterator[str]:
    yield from (reject["key"] for reject in read_ndjson(transformed["rejects"]))
    for manifest in loaded:
        yield from (result["key"] for result in read_ndjson(manifest["results"]) if result["status"] == "rejected")
