"""The steps of one reconcile run: read both sides, compare, repair, verify — over staged files, no Airflow.

``read_source`` is the sync's own extract → transform → filter over every record (no window), so the expected
state is exactly what the sync would write; ``read_target`` stages every Kingdee record of the form and
organisation (paged ExecuteBillQuery); ``compare`` joins both in a SQLite file (bounded memory for any size) and
stages the findings (``compare/drift.ndjson``) and the items to repair (load chunks in the sync's item format);
``repair`` loads those chunks through :func:`jikeyun_kingdee.pipeline.load_chunk` with ``verify=True`` — the sync's
upsert, approval, forbid/enable and ledger — writing the source's state as ``read_source`` read it (whatever the
ledger's times say), then reads every repaired record back and stages what is left.
Each step writes below its own folder of the run and returns a small manifest for XCom.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import tempfile
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import closing
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jikeyun_kingdee import pipeline
from jikeyun_kingdee.items import LoadChunk, chunked
from jikeyun_kingdee.kingdee_forms import in_filter, organisation_filter
from jikeyun_kingdee.reconcile import Finding, Tally, classify, number_of, query_fields
from jikeyun_kingdee.scheme import Scheme
from jikeyun_kingdee.staging import (
    ObjectStoragePath,
    fresh_folder,
    ndjson_writer,
    read_ndjson,
    read_parts,
    write_ndjson,
    write_parts,
)

if TYPE_CHECKING:
    from jikeyun_kingdee.hooks.jikeyun import JikeyunHook
    from jikeyun_kingdee.hooks.kingdee import KingdeeHook
    from jikeyun_kingdee.ledger import SyncLedger

log = logging.getLogger(__name__)

STAGED_TARGET_RECORDS = 5000  # Kingdee records per staged file
NUMBERS_PER_LOOKUP = 500  # numbers per ``FNumber in (...)`` query when the repaired records are read back
KEYS_IN_REPORT = 20  # keys per class in the log, XCom and the alert (all of them are staged)
SQLITE_ROWS_PER_INSERT = 1000


def _classify(scheme: Scheme, item: dict[str, Any] | None, record: dict[str, Any] | None, *,
              known: bool = False) -> Finding | None:
    target = scheme.target
    return classify(item, record, fields=target.field_map, needs_audit=target.submit_and_audit,
                    number_field=target.number_field, pk_field=target.pk_field, known=known)


def records_of(scheme: Scheme, rows: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Query rows ordered by primary key → one record each (a form with entries answers one row per entry; the
    rows of one record come together, so they are grouped as they pass)."""
    target = scheme.target
    fields, pk = target.field_map, target.pk_field
    if not fields.entry_lists:
        yield from rows
        return
    pending: list[dict[str, Any]] = []
    for row in rows:
        if pending and row.get(pk) != pending[0].get(pk):
            yield from fields.group(pending, pk).values()
            pending = []
        pending.append(row)
    if pending:
        yield from fields.group(pending, pk).values()


# -- reading ----------------------------------------------------------------------------------------------------


@pipeline.timed
def read_source(scheme: Scheme, hook: JikeyunHook, folder: ObjectStoragePath, *, resume: bool = False
                ) -> dict[str, Any]:
    """Every source record, blocked and deleted included, through the sync's extract, transform and filter.

    :param resume: go on from where a read the source's quota stopped left off (:func:`pipeline.extract`).
    :return: the staged items (``items``: load-item files), the transformed parts (every record's key, for
        telling Kingdee-only records from out-of-scope ones), the counts, and ``read_at``: when the read began (UTC,
        ISO 8601, the first part of a read the quota interrupted; the repair leaves alone what a sync applied after
        it).
    :raises pipeline.SourceQuotaExhausted: the source's quota ran out (what was read stays staged).
    """
    extracted = pipeline.extract(scheme, hook, folder, None, None, resume=resume)
    transformed = pipeline.transform(scheme, folder, extracted)
    filtered = pipeline.filter_rows(scheme, folder, transformed)
    counts = filtered["counts"]
    return {
        "read_at": extracted["read_at"],
        "fetched": extracted["fetched"],
        "calls": extracted["calls"],
        "quota_waits": extracted["quota_waits"],
        "parts": transformed["parts"],
        "rejects": transformed["rejects"],
        "rejected": transformed["rejected"],
        "items": [chunk["items"] for chunk in filtered["chunks"]],
        "in_scope": counts["rows"],
        "filtered_out": counts["filtered_out"],
        "duplicates": counts["duplicates"],
    }


def query_target(scheme: Scheme, hook: KingdeeHook, where: str) -> Iterator[dict[str, Any]]:
    """ExecuteBillQuery of the compared fields, ``where`` within the scheme's organisation, read page by page of
    the target's ``lookup_limit`` rows (ordered by primary key, so pages do not shift while records are added)."""
    target = scheme.target
    organisation = organisation_filter(target.organisation_field, target.organisation)
    pages = hook.query_pages(target.form_id, query_fields(target), f"{where} and {organisation}" if where
                             else organisation, OrderString=f"{target.pk_field} ASC", Limit=target.lookup_limit)
    yield from records_of(scheme, (row for page in pages for row in page))


@pipeline.timed
def read_target(scheme: Scheme, hook: KingdeeHook, folder: ObjectStoragePath) -> dict[str, Any]:
    """Every Kingdee record of the scheme's form and organisation, staged (``target/page-*.ndjson``)."""
    parts = write_parts(fresh_folder(folder / "target"), "page", query_target(scheme, hook, ""), STAGED_TARGET_RECORDS)
    pages, records = [path for path, _ in parts], sum(count for _, count in parts)
    log.info("read_target: %d %s records of organisation %s in %d queries", records, scheme.target.form_id,
             scheme.target.organisation, hook.call_counts.get("ExecuteBillQuery", 0))
    return {"pages": pages, "records": records, "calls": dict(hook.call_counts)}


# -- comparing --------------------------------------------------------------------------------------------------


def _fill(db: sqlite3.Connection, insert: str, rows: Iterable[tuple[Any, ...]]) -> int:
    """Run ``insert or ignore`` for every row (the first row of a number wins); returns the rows dropped."""
    dropped = 0
    for batch in chunked(rows, SQLITE_ROWS_PER_INSERT):
        before = db.total_changes
        db.executemany(insert, batch)
        dropped += len(batch) - (db.total_changes - before)
    return dropped


@pipeline.timed
def compare(
    scheme: Scheme, folder: ObjectStoragePath, source: dict[str, Any], target: dict[str, Any], *,
    rows_per_chunk: int,
) -> dict[str, Any]:
    """Join the staged source items and Kingdee records by number; stage the findings and the items to repair.

    :param source: the :func:`read_source` manifest
    :param target: the :func:`read_target` manifest
    :param rows_per_chunk: items per staged repair chunk
    :return: ``found`` (counts and first keys per class), ``drift_file``, ``repair_chunks`` (load chunks of the
        sync's items), ``out_of_scope`` (Kingdee records whose Jikeyun record the scheme does not sync),
        ``source_read_at`` (``read_at`` of the source read, for the repair)
    """
    spec = scheme.target
    number_field = spec.number_field
    out = fresh_folder(folder / "compare")
    tally = Tally(KEYS_IN_REPORT)
    with tempfile.TemporaryDirectory(prefix="jikeyun-kingdee-reconcile-") as tmp, \
            closing(sqlite3.connect(Path(tmp) / "join.db")) as db:
        db.execute("pragma journal_mode = off")
        db.execute("pragma synchronous = off")
        db.execute("create table item (number text primary key, body text not null)")
        db.execute("create table known (number text primary key)")
        db.execute("create table target (number text primary key, body text not null)")
        db.execute("create table repair (seq integer primary key, body text not null)")
        repeated_items = _fill(db, "insert or ignore into item values (?, ?)", (
            (number_of(item["row"], number_field) or str(item["key"]), json.dumps(item, ensure_ascii=False))
            for item in read_parts(source["items"])))
        _fill(db, "insert or ignore into known values (?)", _known_numbers(source, number_field))
        repeated_targets = _fill(db, "insert or ignore into target values (?, ?)", (
            (number_of(row, number_field), json.dumps(row, ensure_ascii=False)) for row in read_parts(target["pages"])))
        if repeated_items or repeated_targets:
            log.warning("compare: %d source items and %d Kingdee records repeat a number already seen (first kept)",
                        repeated_items, repeated_targets)

        def findings() -> Iterator[dict[str, Any]]:
            expected = db.execute("select i.body, t.body from item i left join target t using (number) "
                                  "order by i.number")
            for item_body, target_body in expected:
                item = json.loads(item_body)
                finding = _classify(scheme, item, json.loads(target_body) if target_body else None)
                if finding is not None:
                    tally.add(finding)
                    db.execute("insert into repair (body) values (?)", (item_body,))
                    yield finding.model_dump()
            only = db.execute("select t.body from target t where not exists (select 1 from item i where i.number = "
                              "t.number) and not exists (select 1 from known k where k.number = t.number) "
                              "order by t.number")
            for (target_body,) in only:
                finding = _classify(scheme, None, json.loads(target_body))
                if finding is not None:
                    tally.add(finding)
                    yield finding.model_dump()

        drift_file = out / "drift.ndjson"
        write_ndjson(drift_file, findings())
        out_of_scope = db.execute("select count(*) from target t where not exists (select 1 from item i where "
                                  "i.number = t.number) and exists (select 1 from known k where k.number = t.number)"
                                  ).fetchone()[0]
        bodies = (json.loads(body) for (body,) in db.execute("select body from repair order by seq"))
        repair_chunks: list[LoadChunk] = [{"chunk": number, "items": path, "rows": rows}
                                          for number, (path, rows)
                                          in enumerate(write_parts(out, "repair", bodies, rows_per_chunk))]
    found = tally.as_dict()
    log.info("compare: %s drift, %d Kingdee-only, %d Kingdee records out of the scheme's scope; first keys: %s",
             found["drift"], found["counts"]["kingdee_only"], out_of_scope, found["keys"])
    return {"found": found, "drift_file": str(drift_file), "repair_chunks": repair_chunks, "out_of_scope": out_of_scope,
            "source_read_at": source.get("read_at")}


def _known_numbers(source: dict[str, Any], number_field: str) -> Iterator[tuple[str]]:
    """Every source record's key and target number, in scope or not (transform rejects included)."""
    for item in read_parts(source["parts"]):
        yield (str(item["key"]),)
        number = number_of(item.get("row") or {}, number_field)
        if number and number != str(item["key"]):
            yield (number,)
    for reject in read_ndjson(source["rejects"]):
        yield (str(reject["key"]),)


# -- repairing --------------------------------------------------------------------------------------------------


@pipeline.timed
def repair(
    scheme: Scheme, hook: KingdeeHook, ledger: SyncLedger, folder: ObjectStoragePath, compared: dict[str, Any],
    run_id: str,
) -> dict[str, Any]:
    """Load the staged repair chunks through the sync's load path (``verify=True``: the source's state as read,
    also over a later source time in the ledger), then read every drifted record back from Kingdee and compare it
    again.

    :raises TargetNotReady: the organisation or form does not exist (nothing written).
    :return: ``results`` (load statuses, one per item), ``left`` (what the read-back still finds, a
        :meth:`~jikeyun_kingdee.reconcile.Tally.as_dict`; staged in ``repair/left.ndjson``), ``superseded`` (the same
        for records a sync applied a later source time for after the source was read: skipped by the load, they
        differ from this run's older snapshot, are reported and not left; ``repair/superseded.ndjson``)
    """
    out = fresh_folder(folder / "repair")
    pipeline.check_target(scheme, hook)  # a missing organisation fails here, before any write
    read_at = compared.get("source_read_at")  # None (a compare of an older release): every later ledger time wins
    results: Counter[str] = Counter()  # one status per item (a load's counts may count an item twice)
    superseded_keys: set[str] = set()
    for chunk in compared["repair_chunks"]:
        manifest = pipeline.load_chunk(scheme, hook, ledger, folder, chunk, run_id, verify=True,
                                       read_at=datetime.fromisoformat(read_at) if read_at else None)
        for result in read_ndjson(manifest["results"]):
            results[result["status"]] += 1
            if result["status"] == "superseded":
                superseded_keys.add(result["key"])
    left, superseded = Tally(KEYS_IN_REPORT), Tally(KEYS_IN_REPORT)
    left_file, superseded_file = out / "left.ndjson", out / "superseded.ndjson"
    with ndjson_writer(left_file) as write_left, ndjson_writer(superseded_file) as write_superseded:
        for finding in _still_differ(scheme, hook, compared):
            tally, write = (superseded, write_superseded) if finding.key in superseded_keys else (left, write_left)
            tally.add(finding)
            write(finding.model_dump())
    log.info("repair: %s; left: %s; superseded by a later sync: %s", dict(results), left.as_dict(),
             superseded.as_dict())
    return {"results": dict(results), "superseded": superseded.as_dict(), "left": left.as_dict(),
            "left_file": str(left_file), "superseded_file": str(superseded_file), "calls": dict(hook.call_counts)}


def _still_differ(scheme: Scheme, hook: KingdeeHook, compared: dict[str, Any]) -> Iterator[Finding]:
    """Read every drifted record back (``FNumber in (...)`` queries) and compare it again with the source."""
    spec = scheme.target
    items = read_parts(c["items"] for c in compared["repair_chunks"])
    for group in chunked(items, min(NUMBERS_PER_LOOKUP, spec.lookup_limit)):
        numbers = [number_of(item["row"], spec.number_field) or str(item["key"]) for item in group]
        found = {number_of(row, spec.number_field): row
                 for row in query_target(scheme, hook, in_filter(spec.number_field, sorted(set(numbers))))}
        for number, item in zip(numbers, group, strict=True):
            finding = _classify(scheme, item, found.get(number))
            if finding is not None:
                yield finding
