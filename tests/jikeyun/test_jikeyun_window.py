"""Keyset window reads (:class:`~jikeyun_kingdee.source_paging.TimeKeyset`) over real HTTP: calls against the
minimum ⌈(n+1)/P⌉, bulk seconds, concurrent edits, servers that do not sort by time, and reads resumed from any
page."""

from __future__ import annotations

import itertools
import logging
import math
import random
from collections import Counter
from datetime import datetime, timedelta, timezone

import pytest

from jikeyun_kingdee.source_paging import (
    CHAIN_OVERLAP,
    KEYSET_MIN_PAGE_SIZE,
    SORT_PROOF_CHANCE,
    Pages,
    PagingError,
    TimeKeyset,
    chain_page,
    is_time_ordered,
    offset_pages,
    read_window,
    sort_evidence,
    window_seconds,
)

from tests.support.jikeyun import (
    ALL,
    LIST_KEY,
    METHOD,
    P,
    in_window,
    ms,
    near_edges,
    plain_pages,
    warehouse_source,
)
from tests.support.jikeyun import codes as codes_of
from tests.support.jikeyun import read as read_records

BULK_AT = datetime(2025, 6, 1, 4, 0, 0, tzinfo=timezone.utc)
HOURS = (BULK_AT - timedelta(hours=1), BULK_AT + timedelta(hours=1))
HALF_YEAR = (datetime(2025, 3, 1, tzinfo=timezone.utc), datetime(2025, 9, 1, tzinfo=timezone.utc))


def minimum(n: int, page_size: int = P) -> int:
    """Offset paging's calls when nothing changes: the last page must be short, so a full one needs one more."""
    return math.ceil((n + 1) / page_size)


def read(hook, window=(None, None), page_size: int = P) -> list[str]:
    """Codes in the order yielded (repeats kept, so tests can see them)."""
    return codes_of(read_records(hook, window, page_size))


def modified_since(sandbox, before: dict[str, int]) -> set[str]:
    return {r["warehouseCode"] for r in sandbox.records.values() if r["gmtModified"] != before[r["warehouseId"]]}


def snapshot(sandbox) -> dict[str, int]:
    return {r["warehouseId"]: r["gmtModified"] for r in sandbox.records.values()}


# ------------------------------------------------------------------------------------------ pure functions
@pytest.mark.parametrize(("page_size", "share"), [(KEYSET_MIN_PAGE_SIZE, 0.65), (50, 0.8), (P, 0.9)])
def test_chain_pages_overlap_and_move_on(page_size, share):
    end = page_size
    for _ in range(300):  # 60,000 records of one second at P = 200
        index, size = chain_page(end, page_size)
        assert size <= page_size and index * size <= end - CHAIN_OVERLAP < end < (index + 1) * size
        end = (index + 1) * size
    assert end > 301 * page_size * share  # the share of a full page each call still adds, on average


def test_chain_page_after_one_full_page():
    assert chain_page(200, 200) == (1, 198)  # records 198..395: two of the first page, then 196 new


def test_time_order_and_its_evidence():
    assert is_time_ordered([1, 1, 2, 5]) and is_time_ordered([])
    assert not is_time_ordered([1, 3, 2]) and not is_time_ordered([1, None, 2])
    proof = -math.log(SORT_PROOF_CHANCE)
    assert sort_evidence(Counter({7: 200})) == 0  # ties prove nothing
    assert sort_evidence(Counter({7: 199, 8: 1})) < proof  # one in 200 random orders looks like this
    assert sort_evidence(Counter(range(10))) > proof  # ten distinct times: one order in 3.6 million
    assert sort_evidence(Counter({7: 100, 8: 100})) > proof


# ------------------------------------------------------------------------------------------------ sorted
@pytest.mark.parametrize("n", [0, 1, 199, 200, 201, 1000, 2000])
def test_sorted_server_costs_at_most_1_1_times_the_minimum(connect, make_sandbox, make_hook, n):
    sandbox = make_sandbox(warehouses=n)
    connect(sandbox)
    hook = make_hook()
    got = read(hook)
    assert sorted(got) == sorted(sandbox.warehouses)  # every one, once
    assert hook.call_counts[METHOD] == sandbox.calls[METHOD] <= 1.1 * minimum(n)


@pytest.mark.parametrize(("n", "span", "page_size"), [(2000, 500, P), (2000, 100, P), (1000, 3600, 50)])
def test_dense_seconds_stay_within_the_bound(connect, make_sandbox, make_hook, n, span, page_size):
    """4 and 20 records a second (keyset re-reads the last two seconds of a page), and the page size of 50."""
    start = datetime(2025, 5, 1, tzinfo=timezone.utc)
    sandbox = make_sandbox(warehouses=n, modified_from=start, modified_to=start + timedelta(seconds=span))
    connect(sandbox)
    hook = make_hook()
    got = read(hook, page_size=page_size)
    assert sorted(got) == sorted(sandbox.warehouses)
    assert hook.call_counts[METHOD] <= 1.1 * minimum(n, page_size)


# ------------------------------------------------------------------------------------------- bulk second
@pytest.mark.parametrize("size", [201, 1000])
@pytest.mark.parametrize("spread_ms", [0, 999], ids=["same millisecond", "spread over the second"])
def test_bulk_second_costs_about_one_call_per_page(connect, make_sandbox, make_hook, size, spread_ms):
    sandbox = make_sandbox(warehouses=2000)
    connect(sandbox)
    for i, code in enumerate(sandbox.bulk_edit(count=size, modified_at=BULK_AT, warehouseName="批量仓")):
        sandbox.modify_warehouse(code, modified_at=BULK_AT + timedelta(milliseconds=spread_ms * i // size))
    expected = in_window(sandbox, *HOURS)
    hook = make_hook()
    got = read(hook, HOURS)
    assert len(got) == len(set(got)) and expected <= set(got) and set(got) - expected <= near_edges(sandbox, *HOURS)
    assert hook.call_counts[METHOD] <= minimum(len(expected)) + 2


def test_bulk_second_inside_a_full_sync(connect, make_sandbox, make_hook):
    sandbox = make_sandbox(warehouses=3000)
    connect(sandbox)
    sandbox.bulk_edit(count=1000, modified_at=BULK_AT)
    hook = make_hook()
    got = read(hook)
    assert sorted(got) == sorted(sandbox.warehouses)
    assert hook.call_counts[METHOD] <= minimum(3000) + 2


def test_bulk_second_at_the_edge_of_the_window(connect, make_sandbox, make_hook):
    """A bulk second just before the window is a neighbour the widening returns; nothing of the window is lost."""
    sandbox = make_sandbox(warehouses=2000)
    connect(sandbox)
    start = HOURS[0]
    sandbox.bulk_edit(count=500, modified_at=start - timedelta(milliseconds=1))  # the last second before the window
    sandbox.bulk_edit(codes=sorted(sandbox.warehouses)[500:900], modified_at=start)  # the window's first second
    got = read(make_hook(), HOURS)
    assert len(got) == len(set(got)) and in_window(sandbox, *HOURS) <= set(got)


# ------------------------------------------------------------------------------------- concurrent edits
@pytest.mark.parametrize("after_calls", [1, 3])
@pytest.mark.parametrize("count", [1, 3])
def test_keyset_read_loses_nothing_when_records_are_edited_meanwhile(
    connect, make_sandbox, make_hook, after_calls, count
):
    sandbox = make_sandbox(warehouses=2000)
    connect(sandbox)
    expected, before = in_window(sandbox, *HALF_YEAR), snapshot(sandbox)
    sandbox.modify_during_paging(after_calls=after_calls, count=count)
    hook = make_hook()
    got = set(read(hook, HALF_YEAR))
    modified = modified_since(sandbox, before)
    assert len(modified) == count
    assert expected - got <= modified  # every record that was not edited was read
    assert all(sandbox.warehouses[c]["gmtModified"] >= ms(HALF_YEAR[1]) for c in modified)  # the next run's job
    assert got - expected <= near_edges(sandbox, *HALF_YEAR)
    assert hook.call_counts[METHOD] <= 1.1 * minimum(len(expected))  # keyset paging needs no re-read


def test_dense_read_loses_nothing_when_records_are_edited_between_overlapping_pages(
    connect, make_sandbox, make_hook, caplog
):
    """20 records a second: the read pages by overlapping offsets; three edits at once shift the answer further
    than the overlap, and the read goes on from the last record it is sure of."""
    start = BULK_AT - timedelta(seconds=50)
    sandbox = make_sandbox(warehouses=2000, modified_from=start, modified_to=start + timedelta(seconds=100))
    connect(sandbox)
    before = snapshot(sandbox)
    sandbox.modify_during_paging(after_calls=2, count=3)
    hook = make_hook()
    with caplog.at_level(logging.INFO, logger="jikeyun_kingdee.source_paging"):
        got = read(hook, HOURS)
    modified = modified_since(sandbox, before)
    assert len(modified) == 3 and len(got) == len(set(got))
    assert set(sandbox.warehouses) - modified <= set(got)
    assert "shifted between pages; reading on from 2025-06-01 11:59:" in caplog.text
    assert hook.call_counts[METHOD] <= 1.1 * minimum(2000) + 1


def _bulk_only(make_sandbox, connect, size: int = 1000):
    sandbox = make_sandbox(warehouses=0)
    connect(sandbox)
    for i in range(size):
        sandbox.add_warehouse(warehouseCode=f"BULK{i:04d}", gmtModified=ms(BULK_AT))
    return sandbox


def test_offset_paging_of_a_bulk_second_loses_a_record_when_one_is_edited(connect, make_sandbox, make_hook):
    """The problem, shown on the scenario below: plain offset pages over one bulk second."""
    sandbox = _bulk_only(make_sandbox, connect)
    before = snapshot(sandbox)
    sandbox.modify_during_paging(after_calls=2)
    query = {"gmtModifiedStart": "2025-06-01 11:00:00", "gmtModifiedEnd": "2025-06-01 13:00:00"}
    got = {r["warehouseCode"] for page in offset_pages(plain_pages(make_hook(), ALL), query) for r in page}
    assert len(set(sandbox.warehouses) - got - modified_since(sandbox, before)) == 1


@pytest.mark.parametrize("count", [1, 3], ids=["one edit: absorbed by the overlap", "three: read again"])
def test_bulk_second_read_loses_nothing_when_records_are_edited_meanwhile(
    connect, make_sandbox, make_hook, caplog, count
):
    sandbox = _bulk_only(make_sandbox, connect)
    before = snapshot(sandbox)
    sandbox.modify_during_paging(after_calls=2, count=count)
    hook = make_hook()
    with caplog.at_level(logging.INFO, logger="jikeyun_kingdee.source_paging"):
        got = read(hook, HOURS)
    modified = modified_since(sandbox, before)
    assert len(modified) == count and len(got) == len(set(got))
    assert set(sandbox.warehouses) - modified <= set(got)
    reread = "shifted between pages" in caplog.text
    if count == 1:
        assert not reread and hook.call_counts[METHOD] <= minimum(1000) + 2
    else:
        assert reread and hook.call_counts[METHOD] > minimum(1000) + 2


def test_bulk_second_that_keeps_changing_gives_a_typed_error(connect, make_sandbox, make_hook, monkeypatch):
    sandbox = _bulk_only(make_sandbox, connect)
    calls = iter(range(10**6))
    original = sandbox._due_modification

    def every_second_page(page_index, page):  # three records leave after every second page served
        if next(calls) % 2 == 1:
            sandbox.modify_during_paging(after_calls=1, count=3)
        return original(page_index, page)

    monkeypatch.setattr(sandbox, "_due_modification", every_second_page)
    with pytest.raises(PagingError, match="kept changing"):
        read(make_hook(), HOURS)


# ------------------------------------------------------------------------------------------ unsorted server
def _bisection_calls(make_hook, window: tuple[int, int], page_size: int = P) -> int:
    """What the window cost before keyset paging: the bisection alone."""
    hook = make_hook()
    pages = Pages(hook.call, METHOD, (LIST_KEY,), page_size, ALL, warehouse_source().windows[0], "beijing")
    list(TimeKeyset(pages, window)._read_bisecting([(*window, True)], {}, None))
    return hook.call_counts[METHOD]


@pytest.mark.parametrize("n", [1000, 2000])
def test_unsorted_server_returns_everything_at_no_more_than_bisection_costs(connect, make_sandbox, make_hook, n):
    sandbox = make_sandbox(warehouses=n, sort_by_modified=False)
    connect(sandbox)
    hook = make_hook()
    got = read(hook)
    assert sorted(got) == sorted(sandbox.warehouses)
    now = datetime.now(timezone.utc)
    assert hook.call_counts[METHOD] <= _bisection_calls(make_hook, window_seconds(None, None, now))


def test_order_that_only_looks_like_time_order_loses_nothing(connect, make_sandbox, make_hook, caplog):
    """Ids that grow with time for the first records, then later ids with older times: the first page proves a sort
    that is not there; a later page shows it, and the whole window is bisected."""
    sandbox = make_sandbox(warehouses=0, sort_by_modified=False)
    connect(sandbox)
    start, rng = datetime(2025, 1, 1, tzinfo=timezone.utc), random.Random(3)
    for i in range(300):
        sandbox.add_warehouse(
            warehouseId=f"1{i:05d}", warehouseCode=f"OLD{i:03d}", gmtModified=ms(start + timedelta(hours=i))
        )
    for i in range(300):
        sandbox.add_warehouse(
            warehouseId=f"2{i:05d}",
            warehouseCode=f"NEW{i:03d}",
            gmtModified=ms(start + timedelta(seconds=rng.randrange(300 * 3600))),
        )
    with caplog.at_level(logging.INFO, logger="jikeyun_kingdee.source_paging"):
        got = read(make_hook())
    assert set(got) == set(sandbox.warehouses)
    assert "reading the whole window by bisection" in caplog.text


# ------------------------------------------------------------------------------------------------- resume
class QuotaGone(Exception):
    """Stands for an exhausted quota: the call fails before it reaches the server."""


def stopped_and_resumed(hook, window, stop_after: int, page_size: int = P) -> tuple[list[str], list[str], int]:
    """Read until call ``stop_after + 1`` fails, then resume a new read from the position; return the codes of
    both reads and the calls of the resumed one."""
    source = warehouse_source(page_size)
    calls = iter(range(10**6))

    def call(method, bizcontent):
        if next(calls) >= stop_after:
            raise QuotaGone
        return hook.call(method, bizcontent)

    stopped = read_window(call, source, *window)
    first: list[str] = []
    with pytest.raises(QuotaGone):
        first.extend(record["warehouseCode"] for record in stopped)
    return first, *resumed_from(hook, window, stopped.position, page_size)


def resumed_from(hook, window, position, page_size: int = P) -> tuple[list[str], int]:
    """The codes and calls of a read resumed from ``position``."""
    resumed = read_window(hook.call, warehouse_source(page_size), *window, resume=position)
    return codes_of(resumed), resumed.calls


@pytest.mark.parametrize(
    ("case", "sandbox_args", "window", "full_calls", "stops"),
    [
        ("sorted, sparse", {"warehouses": 1000}, (None, None), 6, range(1, 6)),
        ("20 records a second", {"warehouses": 1000, "modified_from": BULK_AT - timedelta(seconds=25),
                                 "modified_to": BULK_AT + timedelta(seconds=25)}, HOURS, 6, range(1, 6)),
        ("server does not sort", {"warehouses": 1000, "sort_by_modified": False}, (None, None), 31,
         [1, 2, 3, 8, 17, 30]),
    ],
)
def test_a_read_stopped_after_any_page_and_resumed_yields_every_record(
    connect, make_sandbox, make_hook, case, sandbox_args, window, full_calls, stops
):
    sandbox = make_sandbox(**sandbox_args)
    connect(sandbox)
    expected = set(sandbox.warehouses) if window == (None, None) else in_window(sandbox, *window)
    for stop_after in stops:
        first, second, calls = stopped_and_resumed(make_hook(), window, stop_after)
        assert expected <= set(first) | set(second), (case, stop_after)
        assert len(first) + len(second) - len(set(first) | set(second)) <= P  # at most one page read again
        assert stop_after + calls <= full_calls + 1


def test_a_bulk_second_resumes_inside_its_chain_of_pages(connect, make_sandbox, make_hook):
    sandbox = _bulk_only(make_sandbox, connect)
    for stop_after in range(1, 6):
        first, second, calls = stopped_and_resumed(make_hook(), HOURS, stop_after)
        assert set(sandbox.warehouses) == set(first) | set(second)
        assert len(first) + len(second) - len(set(first) | set(second)) <= CHAIN_OVERLAP
        assert stop_after + calls <= minimum(1000) + 2


@pytest.mark.parametrize(
    ("case", "sandbox_args", "window", "records"),
    [
        ("sorted, sparse", {"warehouses": 1000}, (None, None), [1, 450, 999]),
        ("server does not sort", {"warehouses": 1000, "sort_by_modified": False}, (None, None), [1, 450, 999]),
    ],
)
def test_a_read_stopped_inside_a_page_resumes_without_a_loss(
    connect, make_sandbox, make_hook, case, sandbox_args, window, records
):
    """The consumer stops after some records (a killed task, say): the position is still the last whole page's."""
    sandbox = make_sandbox(**sandbox_args)
    connect(sandbox)
    for count in records:
        stopped = read_window(make_hook().call, warehouse_source(), *window)
        first = codes_of(itertools.islice(stopped, count))
        second, _ = resumed_from(make_hook(), window, stopped.position)
        assert set(sandbox.warehouses) == set(first) | set(second), (case, count)
