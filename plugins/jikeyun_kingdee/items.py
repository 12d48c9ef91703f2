"""What flows between the steps of a run: the staged items and the manifests the tasks hand each other (XCom).

Everything here is plain JSON (TypedDicts), so it crosses XCom and staged NDJSON files on every Airflow line without
serialisation settings; the steps (:mod:`jikeyun_kingdee.pipeline`, :mod:`jikeyun_kingdee.reconcile_steps`) and the
upsert import these shapes instead of knowing dict keys of their own. Pure: no I/O.

One run of the sync::

    extract ──► ExtractManifest (raw pages) ──► transform ──► TransformManifest (Items, rejects)
            ──► filter ──► FilterManifest (LoadChunks of LoadItems) ──► check_target ──► CheckManifest
            ──► load (per LoadChunk) ──► LoadManifest (LoadResults) ──► report ──► RunSummary
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from itertools import islice
from typing import Any, Literal, TypedDict, TypeVar

T = TypeVar("T")

#: a source record's lifecycle state (``lifecycle:`` of the scheme); ``filtered``: a document the condition no
#: longer keeps, staged so the load can tell whether it was posted before (it is never written)
State = Literal["active", "blocked", "deleted", "filtered"]
#: what became of one load item. Documents (``target.kind: document``) also end as ``exists`` (the number is in
#: Kingdee, posted by someone else: left alone), ``waiting`` (a base-data reference is not in Kingdee yet: kept and
#: retried by later runs) or ``changed_after_posting`` (the source changed after the document was posted: never
#: edited, reported)
Status = Literal["created", "updated", "enabled", "forbidden", "unchanged", "absent", "stale", "superseded",
                 "rejected", "exists", "waiting", "changed_after_posting"]
#: load statuses that changed Kingdee
WRITTEN: tuple[Status, ...] = ("created", "updated", "enabled", "forbidden")


# -- staged records ---------------------------------------------------------------------------------------------
class Item(TypedDict):
    """One transformed source record (``transform/part-*.ndjson``)."""

    key: str  # the source id (the scheme's ``source.id_field``)
    modified: int  # epoch ms: the latest of the record's modification times
    source: dict[str, Any]  # the source fields filter reads (the condition's and the lifecycle's)
    row: dict[str, Any]  # the Kingdee Model the record becomes


class LoadItem(TypedDict):
    """One item staged for load (``filter/chunk-*.ndjson``; the reconcile stages its repairs the same way)."""

    key: str
    modified: int
    row: dict[str, Any]
    state: State


class Reject(TypedDict):
    """A record transform could not map (``transform/rejects.ndjson``)."""

    key: str  # the source id, or ``record #<position>`` when it has none
    step: str
    reason: str


class LoadResult(TypedDict):
    """What became of one load item (``load/chunk-*.ndjson``)."""

    key: str
    status: Status
    id: int | None  # the Kingdee primary key
    modified: int
    field: str | None
    message: str | None


# -- manifests (XCom) -------------------------------------------------------------------------------------------
class LoadChunk(TypedDict):
    """One mapped load task's share of the items."""

    chunk: int
    items: str  # path of its NDJSON file of LoadItems
    rows: int


class ExtractManifest(TypedDict, total=False):
    pages: list[str]
    fetched: int
    window: list[str | None]  # [start, end] ISO, None for "everything"
    calls: dict[str, int]
    calls_by_day: dict[str, dict[str, int]]  # Beijing day → method → answered calls
    quota_waits: int  # times the read stopped for an exhausted quota and went on after its reset
    retries: int
    seconds: float
    read_at: str  # when the read began (ISO, UTC)


class TransformManifest(TypedDict, total=False):
    parts: list[str]
    items: int
    rejected: int
    rejects: str
    seconds: float


#: filter's counts ("in" is a Python keyword, hence the functional form)
FilterCounts = TypedDict("FilterCounts", {
    "in": int, "filtered_out": int, "duplicates": int, "rows": int, "retire": int, "chunks": int})


class FilterManifest(TypedDict, total=False):
    chunks: list[LoadChunk]
    counts: FilterCounts
    seconds: float


class CheckManifest(TypedDict, total=False):
    skipped: bool
    form_id: str
    organisation: str
    calls: dict[str, int]
    seconds: float


class LoadManifest(TypedDict, total=False):
    chunk: int
    results: str  # path of its NDJSON file of LoadResults
    counts: dict[str, int]
    calls: dict[str, int]
    retries: int
    seconds: float


class RunManifests(TypedDict):
    """What the report task is given, by task id."""

    check_target: CheckManifest
    extract: ExtractManifest
    transform: TransformManifest
    filter: FilterManifest


class RunSummary(TypedDict):
    """The report of one sync run (the report task's XCom, the metrics, the asset event's extra)."""

    window: list[str | None] | None
    fetched: int
    transform_rejected: int
    filtered_out: int
    duplicates_dropped: int
    rows: int
    retire: int
    load_chunks: int
    created: int
    updated: int
    unchanged: int
    forbidden: int
    enabled: int  # those whose fields changed are in "updated" as well
    absent: int
    stale_skipped: int
    rejected: int
    rejected_keys: list[str]  # the first ones (pipeline.REPORTED_REJECTS)
    exists: int  # documents: the number was in Kingdee already, posted by someone else
    waiting: dict[str, str]  # documents waiting for base data: key → what it lacks (the first REPORTED_REJECTS)
    waiting_total: int
    overdue: dict[str, str]  # documents waiting longer than base_data.max_wait_hours: key → since (ISO)
    changed_after_posting: dict[str, str]  # documents whose source changed after posting: key → what changed
    api_calls: dict[str, int]
    api_calls_total: int
    source_calls_by_day: dict[str, dict[str, int]]  # Beijing day → source method → answered calls
    quota_waits: int
    http_retries: int
    seconds: dict[str, float | None]


# -- chunking ---------------------------------------------------------------------------------------------------
def chunked(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Consecutive lists of ``size`` items (the last may be shorter), read lazily from any iterable."""
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


def rows_per_load_chunk(rows: int, rows_per_chunk: int, max_chunks: int) -> int:
    """Rows per load chunk: the scheme's ``rows_per_chunk``, more when that would need more than ``max_chunks``."""
    return max(rows_per_chunk, math.ceil(rows / max_chunks))
