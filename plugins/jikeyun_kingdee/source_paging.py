"""Source paging: the strategies that read a scheme's source window page by page without losing a record.

Pure apart from the ``call`` they are given — the hook's :meth:`~jikeyun_kingdee.hooks.jikeyun.JikeyunHook.call`,
``call(method, bizcontent) -> result.data`` — so they run alike against Jikeyun, the sandbox or an in-memory list.
:func:`read_window` reads a run's window: for each window pair of the scheme (a *pass*), for each slice of at most
``max_window_days`` (a *slice*), the read of the scheme's ``paging`` style:

=================  ==========================================================================================
``time_keyset``    :class:`TimeKeyset` — keyset on the modification time, overlapping offsets for a bulk second,
                   bisection on a server that does not sort by time (``erp.warehouse.get``)
``id_cursor``      :class:`IdCursor` — "ids greater than the cursor" within the window filters, overlapping
                   offsets when the server ignores the cursor (``erp.storage.goodslist``, ``maxSkuId``)
``scroll``         :class:`ServerScroll` — a server-side snapshot scroll (``oms.trade.fullinfoget``, ``scrollId``)
``offset``         :class:`OffsetPages` — plain ``pageIndex`` pages of a source without a window
=================  ==========================================================================================

In the formulas, n is the number of records a pass of a slice holds and P the page size; ⌈(n+1)/P⌉ is what plain
offset paging needs when nothing changes (a full last page needs one more, empty, page to end).

Windows. Every request asks for the whole seconds ``[first, last]`` widened by one second at each end, so nothing
is lost whether the server treats either end as inclusive or exclusive or compares at second or millisecond
precision — the gateway documents neither. The widening may return records of the neighbouring seconds; they are
yielded too (the next window may yield them again). Bounds go out in the scheme's ``time_format`` (Beijing
``yyyy-MM-dd HH:mm:ss`` or epoch milliseconds); record times are read tolerantly
(:func:`~jikeyun_kingdee.records.parse_jikeyun_time`). A record whose time lies outside the request means the
server ignored the window (a wrong parameter name, say): the read fails at once rather than read everything. A
slice's request spans at most ``max_window_days``, widening included. A full read (no start and no end) of a style
that needs no window (``id_cursor``, ``offset``) is one pass without window parameters; ``time_keyset`` and
``scroll`` read from :data:`HISTORY_START` to now instead.

Positions. After each page it has fully yielded, a read exposes :attr:`WindowRead.position` — pass, slice and the
strategy's own small JSON state (a second, a cursor, a page, a scroll id); ``read_window(..., resume=position)``
continues from there, so a read stopped by an exhausted quota goes on another day. A resumed read re-reads at most
the page it stopped in — except a scroll stopped inside a page, which reads its slice again (a server scroll cannot
go back), and a second of an unsorted server denser than a page, which is read again whole. Records read again may
be yielded again; downstream de-duplicates by key.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections import Counter
from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol, TypedDict

import pendulum

from jikeyun_kingdee.records import BEIJING, beijing_time, parse_jikeyun_time
from jikeyun_kingdee.scheme import (
    IdCursorPaging,
    OffsetPaging,
    ScrollPaging,
    SourceSpec,
    WindowPair,
)

log = logging.getLogger(__name__)

#: ``call(method, bizcontent)`` → ``result.data`` of the answer (the hook's ``call``)
Call = Callable[[str, dict[str, Any]], dict[str, Any]]
#: a strategy's place within one pass of one slice (JSON); ``None`` is its start
State = dict[str, Any]
Position = TypedDict("Position", {"pass": int, "slice": int, "at": State | None})

#: first second considered when a window has no start (a full read of a style that needs a window)
HISTORY_START = pendulum.datetime(2000, 1, 1, tz=BEIJING)
#: re-reads of one request before a read gives up because the records keep changing
STABLE_READ_PASSES = 5
#: reads of one slice again, from an empty scroll id, before a scroll that breaks off is taken as an error
SCROLL_RESTARTS = 3
#: records an offset page re-reads of the one before it: with two, one record may leave the answer between calls
CHAIN_OVERLAP = 2
#: a page proves that the server sorts by time when a random order would be that sorted with at most this chance
SORT_PROOF_CHANCE = 1e-6
#: smaller pages overlap poorly (the offsets of pages up to 12 records cannot always start 2 before an end): bisect
KEYSET_MIN_PAGE_SIZE = 20


class PagingError(RuntimeError):
    """A read that cannot go on without risking a loss: the records kept changing, the server ignored the window
    or the scroll, or an answer has something other than a list where the scheme says the records are. Names the
    method; never a secret."""

    def __init__(self, method: str, message: str) -> None:
        super().__init__(f"Jikeyun {method}: {message}")
        self.method = method


# ------------------------------------------------------------------------------------------- pure functions
def window_seconds(window_start: datetime | None, window_end: datetime | None, now: datetime) -> tuple[int, int]:
    """The whole epoch seconds ``[lo, hi]`` whose records a half-open window ``[start, end)`` needs.

    ``None`` start means all history (:data:`HISTORY_START`), ``None`` end means ``now``. ``hi < lo`` for an
    empty window.
    """
    start = window_start or HISTORY_START
    end = window_end or now
    for moment in (start, end):
        if moment.tzinfo is None:
            raise ValueError("Jikeyun windows need timezone-aware datetimes")
    if end < start:
        raise ValueError(f"window ends before it starts: [{start}, {end})")
    return math.floor(start.timestamp()), math.ceil(end.timestamp()) - 1


def window_slices(lo: int, hi: int, max_seconds: int | None) -> list[tuple[int, int]]:
    """``[lo, hi]`` cut into slices whose requests, widened by one second at each end, span at most
    ``max_seconds``; one slice when ``None``, none when the window is empty."""
    if hi < lo:
        return []
    if max_seconds is None:
        return [(lo, hi)]
    width = max_seconds - 1  # seconds of a slice: [first, first + width - 1], asked as [first - 1, first + width]
    if width < 1:
        raise ValueError(f"a window of {max_seconds} s leaves no room for the one-second widening")
    return [(first, min(first + width - 1, hi)) for first in range(lo, hi + 1, width)]


def split_second(seconds: list[int | None], first: int, last: int) -> int | None:
    """Where to split a full sub-window ``[first, last]`` (the last second of the left part), guided by its page.

    When the page is sorted by modification time, it holds the earliest records, so everything before the second
    of its last record, minus the one-second widening, is already known and ``[first, that - 2]`` should answer a
    short page. ``None`` (halve instead) when the page is unsorted, has unreadable times, or the split would not
    make progress. Only the cost depends on this, never correctness.
    """
    last_second = seconds[-1] if seconds else None
    if last_second is None or not is_time_ordered(seconds):
        return None
    split = last_second - 2
    return split if first <= split < last else None


def is_time_ordered(seconds: list[int | None]) -> bool:
    """Every time readable and none earlier than the one before it (equal times in any order)."""
    previous = -math.inf
    for second in seconds:
        if second is None or second < previous:
            return False
        previous = second
    return True


def sort_evidence(seconds: Counter[int]) -> float:
    """How improbable it is that records of these seconds come sorted by chance: the natural log of the number of
    their distinct orders (a server whose order has nothing to do with time sorts them with chance ``exp(-x)``)."""
    total = sum(seconds.values())
    return math.lgamma(total + 1) - sum(math.lgamma(count + 1) for count in seconds.values())


def chain_page(end: int, page_size: int, overlap: int = CHAIN_OVERLAP) -> tuple[int, int]:
    """``(pageIndex, pageSize)`` of the next offset page after records ``[0, end)`` of one request: it starts at
    least ``overlap`` records before ``end`` and reaches as far as possible. Offsets are multiples of the page
    size, so a slightly smaller page usually starts where the larger one cannot.

    :raises ValueError: when no page of at most ``page_size`` records does (tiny pages).
    """
    best_index, best_size, best_end = 0, 0, end
    for size in range(page_size, 0, -1):
        if end - overlap + size <= best_end:
            break  # no smaller page can reach further
        index = (end - overlap) // size
        if (index + 1) * size > best_end:
            best_index, best_size, best_end = index, size, (index + 1) * size
    if not best_size:
        raise ValueError(f"no page of at most {page_size} records starts {overlap} before {end} and reaches past it")
    return best_index, best_size


def record_key(record: Any) -> str:
    """Identity of one record version: its canonical JSON (the same record twice is one; a changed record is new)."""
    return json.dumps(record, sort_keys=True, ensure_ascii=False, default=str)


def record_digest(record: Any) -> bytes:
    """:func:`record_key` in 16 bytes, for remembering many records."""
    return hashlib.blake2b(record_key(record).encode("utf-8"), digest_size=16).digest()


def record_second(record: Any, field: str) -> int | None:
    """The whole epoch second of a record's time field, ``None`` when missing or unreadable (a malformed record is
    staged raw and rejected later, never fatal here)."""
    try:
        moment = parse_jikeyun_time(record.get(field)) if isinstance(record, dict) else None
    except ValueError:
        return None
    return None if moment is None else math.floor(moment.timestamp())


def record_id(record: Any, field: str) -> int | None:
    """A record's numeric id (Jikeyun sends long ids as strings), ``None`` when missing or not a whole number."""
    return as_id(record.get(field) if isinstance(record, dict) else None)


def as_id(value: Any) -> int | None:
    """A numeric id given as a number or a string, ``None`` when it is not a whole number."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        return int(str(value).strip())
    except ValueError:
        return None


def _forget_before(recent: dict[bytes, int], second: int) -> None:
    """Drop the digests of records older than ``second``: no later request returns them."""
    for digest in [digest for digest, received in recent.items() if received < second]:
        del recent[digest]


def _remember(
    recent: dict[bytes, int], page: list[dict[str, Any]], seconds: list[int], digests: list[bytes | None],
    chosen: Iterable[int],
) -> set[bytes]:
    """Put the chosen records of a page into ``recent`` (digest → second), computing digests not known yet; return
    the page's known digests."""
    for i in chosen:
        digest = digests[i]
        if digest is None:
            digests[i] = digest = record_digest(page[i])
        recent[digest] = seconds[i]
    return {digest for digest in digests if digest is not None}


# ------------------------------------------------------------------------------------------------- pages
@dataclass(frozen=True)
class Pages:
    """The requests of one pass over one slice: what stays the same over them, how a window is asked for and where
    the records are in the answer.

    :param pair: the window pair of the pass; ``None`` reads without a window.
    """

    call: Call
    method: str
    list_path: tuple[str, ...]
    page_size: int
    request: dict[str, Any]
    pair: WindowPair | None
    time_format: Literal["beijing", "epoch_ms"]

    def window(self, first: int, last: int) -> dict[str, Any]:
        """The request's bounds for the records of the whole seconds ``[first, last]``, widened by one second at
        each end (nothing without a window pair)."""
        if self.pair is None:
            return {}
        return {self.pair.start_param: self._bound(first - 1), self.pair.end_param: self._bound(last + 1)}

    def _bound(self, second: int) -> str | int:
        return beijing_time(second) if self.time_format == "beijing" else second * 1000

    def answer(self, params: dict[str, Any]) -> dict[str, Any]:
        """``result.data`` of one call with the fixed request parameters and ``params``."""
        return self.call(self.method, {**self.request, **params})

    def records(self, data: dict[str, Any]) -> list[dict[str, Any]]:
        """The records of an answer, at the scheme's ``list_path``; none when the path is absent or null."""
        found: Any = data
        for key in self.list_path:
            found = found.get(key) if isinstance(found, dict) else None
        if found is None:
            return []
        if not isinstance(found, list):
            raise PagingError(self.method, f"result.data.{'.'.join(self.list_path)} is not a list")
        return found

    def page(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        return self.records(self.answer(params))

    def seconds(self, page: list[dict[str, Any]], first: int, last: int) -> list[int | None]:
        """Modification times of a page in whole epoch seconds (``None`` where unreadable, and all ``None`` without
        a window); fails when a record lies outside the request for ``[first, last]``: the server ignored the
        window (a wrong parameter name would otherwise read on)."""
        if self.pair is None:
            return [None] * len(page)
        field = self.pair.modified_field
        seconds = [record_second(record, field) for record in page]
        for record, second in zip(page, seconds, strict=True):
            if second is not None and not first - 1 <= second < last + 2:
                raise PagingError(
                    self.method, f"server ignored the time window: {field}={record.get(field)} outside "
                    f"[{beijing_time(first - 1)}, {beijing_time(last + 2)}); check the window parameter names"
                )
        return seconds


def offset_pages(pages: Pages, params: dict[str, Any], first_index: int = 0) -> Iterator[list[dict[str, Any]]]:
    """Plain 0-based ``pageIndex`` pages of one request from ``first_index``; stops on a short or empty page (the
    empty one is not yielded)."""
    index = first_index
    while True:
        page = pages.page({**params, "pageIndex": index, "pageSize": pages.page_size})
        if page:
            yield page
        if len(page) < pages.page_size:
            return
        index += 1


class Strategy(Protocol):
    """One read of one pass over one slice: iterating yields its records raw; :attr:`position` is where a new read
    continues (``None``: from the start), valid after each page fully yielded; :attr:`how` says how it read."""

    position: State | None
    how: str

    def __iter__(self) -> Iterator[dict[str, Any]]: ...


# --------------------------------------------------------------------------------------------- strategies
@dataclass(frozen=True)
class _Handover:
    """Where bisection takes over a window read: from second ``start``, with its first answer if already read."""

    start: int
    first_page: list[dict[str, Any]] | None
    how: str


class TimeKeyset:
    """Keyset paging on the modification time, with overlapping offsets for a bulk second and bisection for a server
    that does not sort by time. Memory and CPU stay flat in the window's size: only the digests (16 bytes of a
    record's JSON) of records a later request may return again are kept, and only those records are digested.

    Each request asks for ``[cursor, window end]``; the next one starts at the second of the last record received,
    so a record modified during the read never shifts the pages still to come (plain offset paging then loses the
    record behind it): a modification moves a record to a later time, out of this window. Records of the boundary
    seconds that were already received come again and are dropped by identity. Whether the server sorts by time
    is not documented: it is read from the pages.

    * **Sorted server**: ⌈(n+1)/P⌉ calls, plus what the records of each page's last two seconds cost, which the next
      request returns again (the one-second widening): about one record a page for sparse data, within
      1.1 × ⌈(n+1)/P⌉ as long as a page spans more than a few seconds.
    * **Bulk second** (a bulk action or an import gives hundreds or thousands of records one time): when the cursor
      cannot move, the same request is paged by offset, each page starting two records before the end of the
      previous one (a page size a little below P makes ``pageIndex × pageSize`` land there): about one call per
      P - 3 records, nothing re-read. Between two calls records can only leave the answer (a modification moves
      them to a later time), shifting the rest towards its start; the first record of each page must therefore be
      one of the previous page — then nothing slipped between the two, even if one record left. If not, everything
      up to the previous page's last record is still read, so the cursor moves to its second; when that is no
      progress (one bulk second), the request is read again from its first page, at most
      :data:`STABLE_READ_PASSES` times before a :class:`PagingError`.
    * **Unsorted server** (a page whose times go down): the window is read by bisection. A time range is complete
      when one request returns a short page; a full page splits it (just below its last record when that page is
      sorted, else in the middle) down to one second, where offset pages are re-read until two passes agree. Cost
      ``2F + 1`` calls, F = ranges that answered a full page; when the window's first page shows the server
      unsorted, it is the bisection's first answer. When a later page shows it, the pages before only looked
      sorted (an order by an id that grows with time, say), so the whole window is bisected and records read before
      may be yielded a second time.
    * The cursor moves only once the pages prove the sort: a random order would come out that sorted with a chance
      below :data:`SORT_PROOF_CHANCE` (a page of one second's ties proves nothing and is paged by offset). Pages
      smaller than :data:`KEYSET_MIN_PAGE_SIZE` bisect. What no page can rule out is a server ordering by something
      merely correlated with time that puts an older record behind newer ones and never lets a later page show it.

    Position: ``{"second": s}`` (keyset from second s), with ``"chain"`` (the next offset page of that request
    and the digests of the overlap it must start in) inside a bulk second, or ``{"bisect": [[first, last,
    guided], …]}`` (the ranges still to read). Records of second s, of the overlap or of a range's edges may
    come again after a resume.
    """

    def __init__(self, pages: Pages, bounds: tuple[int, int], resume: State | None = None) -> None:
        if pages.pair is None:
            raise ValueError("time_keyset reads a window")
        self.pages, self.field = pages, pages.pair.modified_field
        self.lo, self.hi = bounds
        self.position: State | None = resume
        self.how = "empty window"

    def __iter__(self) -> Iterator[dict[str, Any]]:
        if self.hi < self.lo:
            return
        recent: dict[bytes, int] = {}
        resume = self.position or {}
        handover: _Handover | None = _Handover(self.lo, None, "bisection")
        if "bisect" in resume:
            self.how = "bisection (resumed)"
            yield from self._read_bisecting([(f, t, bool(g)) for f, t, g in resume["bisect"]], recent, None)
            return
        if self.pages.page_size >= KEYSET_MIN_PAGE_SIZE:
            self.how = "keyset"
            handover = yield from self._read_keyset(recent, resume)
        if handover is not None:
            self.how = handover.how
            yield from self._read_bisecting([(handover.start, self.hi, True)], recent, handover.first_page)

    def _read_keyset(
        self, recent: dict[bytes, int], resume: State
    ) -> Generator[dict[str, Any], None, _Handover | None]:
        """Keyset paging over ``[lo, hi]`` (from a resumed position, if any); return ``None`` when done, or where
        bisection must take over.

        :param recent: digest → second of the records received that the next request may return again; the
            caller reads what is left in it when bisection takes over.
        """
        pages, lo, hi, size_max = self.pages, self.lo, self.hi, self.pages.page_size
        cursor, passes, proven = int(resume.get("second", lo)), 0, False
        chain: State | None = resume.get("chain")
        newest = lo - 2  # the latest second received so far: only records up to it can be repeats
        while True:  # one request [cursor, hi], paged from its first page (or from a resumed chain)
            query = pages.window(cursor, hi)
            index, size, end, previous_last = 0, size_max, 0, cursor
            previous: set[bytes] = set()
            chain_seconds: Counter[int] = Counter()
            if chain is not None:
                index, size, end = chain["page"], chain["size"], chain["end"]
                overlap = {bytes.fromhex(digest): second for digest, second in chain["overlap"]}
                recent.update(overlap)
                previous, newest, chain = set(overlap), max(overlap.values(), default=newest), None
            while True:
                page = pages.page({**query, "pageIndex": index, "pageSize": size})
                seconds = pages.seconds(page, cursor, hi)
                if end and (not page or record_digest(page[0]) not in previous):
                    # More records left the answer between two calls than the pages overlap: records behind the
                    # previous page may have slipped past this one. Everything up to the previous page's last
                    # record is read, so a sorted server continues from its second; else read the answer again.
                    log.info("Jikeyun %s: the answer to %s shifted between pages; reading on from %s",
                             pages.method, query, beijing_time(max(cursor, previous_last) if proven else cursor))
                    if proven and previous_last > cursor:
                        cursor, passes = previous_last, 0
                        _forget_before(recent, cursor - 1)
                    else:
                        passes += 1
                        if passes >= STABLE_READ_PASSES:
                            raise PagingError(pages.method, f"records of {query} kept changing over {passes} reads")
                    self.position = {"second": cursor}
                    break
                if not is_time_ordered(seconds):
                    return self._unsorted(cursor, page if cursor == lo and index == 0 else None)
                ordered = [second for second in seconds if second is not None]
                # digests (the costly part) only of records that may repeat one received before
                digests = [record_digest(r) if t <= newest else None for r, t in zip(page, ordered, strict=True)]
                for record, digest, second in zip(page, digests, ordered, strict=True):
                    if digest is not None and digest in recent:
                        if digest not in previous:
                            chain_seconds[second] += 1
                        continue
                    chain_seconds[second] += 1
                    if digest is not None:
                        recent[digest] = second
                    yield record
                if len(page) < size:
                    return None
                offset, end, last = index * size, (index + 1) * size, ordered[-1]
                newest = max(newest, last)
                proven = proven or sort_evidence(chain_seconds) >= -math.log(SORT_PROOF_CHANCE)
                try:
                    index, size = chain_page(end, size_max)
                except ValueError:  # no page size fits the overlap here; the read so far is sound either way
                    _remember(recent, page, ordered, digests, range(len(page)))
                    return _Handover(cursor, None, f"keyset, bisection from {beijing_time(cursor)} (page offsets)")
                # the next request returns this page's last two seconds again, or starts inside this page
                boundary = [i for i, second in enumerate(ordered) if second >= last - 1]
                reread = sum(1 for t in recent.values() if t >= last - 1) + sum(digests[i] is None for i in boundary)
                if proven and last > cursor and size_max - reread >= (index + 1) * size - end:
                    cursor, passes = last, 0  # seconds before the last record's are complete
                    _forget_before(recent, cursor - 1)
                    _remember(recent, page, ordered, digests, boundary)
                    self.position = {"second": cursor}
                    break
                # chained: the next page starts inside this one. On a sorted server only its overlap and the last
                # two seconds can come again (a shift past the overlap moves the cursor, see above); otherwise a
                # shift reads the request again from its first page, so all of it must be known.
                overlap_at = range(max(0, index * size - offset), len(page))
                chosen = sorted({*boundary, *overlap_at}) if proven else range(len(page))
                previous, previous_last = _remember(recent, page, ordered, digests, chosen), last
                self.position = {"second": cursor, "chain": {
                    "page": index, "size": size, "end": end,
                    "overlap": [[digest.hex(), ordered[i]] for i in overlap_at if (digest := digests[i])],
                }}
                if proven:
                    _forget_before(recent, ordered[0] - 1)

    def _unsorted(self, cursor: int, first_page: list[dict[str, Any]] | None) -> _Handover:
        """Where bisection starts once a page is not sorted by time."""
        self.position = {"bisect": [[self.lo, self.hi, True]]}
        if cursor == self.lo:
            return _Handover(self.lo, first_page, "bisection: the server does not sort by time")
        # Pages looked sorted, then one did not: the order only looked like time order (an id that grows with time,
        # say), so what keyset paging skipped as older is not proven read. Bisect the whole window; records read
        # before may come a second time (they are not remembered, to keep memory flat).
        log.warning("Jikeyun %s: a page is not sorted by time after %s; reading the whole window by bisection",
                    self.pages.method, beijing_time(cursor))
        return _Handover(self.lo, None, f"keyset until {beijing_time(cursor)}, then bisection of the whole window")

    def _read_bisecting(
        self, pending: list[tuple[int, int, bool]], received: dict[bytes, int], first_page: list[dict[str, Any]] | None,
    ) -> Iterator[dict[str, Any]]:
        """Bisection of the ranges ``pending`` (first, last, guided), for a server that does not sort.

        :param received: digest → second of records already yielded that these requests may return again.
            Records of the edge seconds of each completed range are added: only those can come again (from the
            neighbour range, through the one-second widening), so only those are digested.
        :param first_page: the answer to the first request, page 0 of the last range of ``pending``, when read.
        """
        pages = self.pages
        seen = set(received)
        seen_from = min(received.values(), default=math.inf)
        while pending:
            self.position = {"bisect": [list(item) for item in pending]}
            first, last, guided = pending.pop()
            query = pages.window(first, last)
            if first_page is None:
                page = pages.page({**query, "pageIndex": 0, "pageSize": pages.page_size})
            else:
                page, first_page = first_page, None
            seconds = pages.seconds(page, first, last)
            if len(page) < pages.page_size:
                records = page
            elif first < last:
                split = split_second(seconds, first, last) if guided else None
                if split is None:  # halve; the left half is read first, so records come roughly in time order
                    pending += [((first + last) // 2 + 1, last, False), (first, (first + last) // 2, False)]
                else:  # the left part is expected to be short; if it is not, it falls back to halving
                    pending += [(split + 1, last, True), (first, split, False)]
                continue
            else:
                records = self._read_stable(query)
            edges = {first - 1, first, last, last + 1}
            for record in records:
                second = record_second(record, self.field)
                if second is None or second in edges or second >= seen_from:
                    digest = record_digest(record)
                    if digest in seen:
                        continue
                    seen.add(digest)
                yield record
        self.position = {"bisect": []}

    def _read_stable(self, query: dict[str, Any]) -> list[dict[str, Any]]:
        """Offset-page one dense second until two consecutive passes return the same records; return the union.

        A pass disturbed by a concurrent modification differs from the next one, so two equal passes mean one of
        them saw the second unshifted.
        """
        union: dict[bytes, dict[str, Any]] = {}
        previous: set[bytes] | None = None
        for _ in range(STABLE_READ_PASSES):
            current = {record_digest(r): r for page in offset_pages(self.pages, query) for r in page}
            union.update(current)
            if current.keys() == previous:
                return list(union.values())
            previous = set(current)
        raise PagingError(self.pages.method, f"records of {query} kept changing over {STABLE_READ_PASSES} reads")


class IdCursor:
    """An id cursor within the window filters: each request asks for the records whose id is greater than the
    cursor (``maxSkuId``), from ``pageIndex`` 0; the next cursor is the last record's id; a short page ends.

    Calls: ⌈(n+1)/P⌉ per pass. The server orders by the id, which no modification changes, so an edit during the
    read moves nothing across the cursor: an edited record keeps its place, or leaves the window for a later one
    (its new time is after the window's end); ids of new records are greater than every id read.

    Whether the server honours the cursor together with the window filters is not documented: each page must show
    it — ids all greater than the cursor and ascending. If one does not, the read falls back to offset pages
    without the cursor, each starting two records before the end of the previous one (:func:`chain_page`); the
    first record of each page must be one of the previous page's (then nothing slipped past between the two
    calls, as in :class:`TimeKeyset`'s bulk second), else the pass is read again from its first page (at most
    :data:`STABLE_READ_PASSES` times). Records known read are not yielded again: those up to the cursor once a page
    asked with a later cursor showed it honoured, and those up to the end of an ascending chain read before.
    Fallback calls: the offsets are multiples of the page size, so pages vary in size to start two records before
    the previous end — about n / 0.9P calls at P = 200 (n / 0.8P at P = 50) — plus the page that showed the cursor
    ignored, plus one pass per shift. The fallback is logged as a warning.

    Position: ``{"cursor": id}``, or in the fallback ``{"page", "size", "end", "previous", "high"}`` (the next
    offset page, the identities it must start in, and the id up to which records were read).
    """

    def __init__(self, pages: Pages, bounds: tuple[int, int] | None, paging: IdCursorPaging,
                 resume: State | None = None) -> None:
        self.pages, self.bounds, self.paging = pages, bounds, paging
        self.position: State | None = resume
        self.how = f"id cursor {paging.cursor_param}"

    def _window(self) -> dict[str, Any]:
        return self.pages.window(*self.bounds) if self.bounds else {}

    def _check(self, page: list[dict[str, Any]]) -> None:
        if self.bounds:
            self.pages.seconds(page, *self.bounds)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        state = self.position or {}
        if "page" in state:
            self.how = f"offset pages (resumed; the server ignored {self.paging.cursor_param})"
            yield from self._offset_chain(state)
            return
        pages, field = self.pages, self.paging.cursor_field
        cursor = str(state.get("cursor", self.paging.first_cursor))
        proven = False  # a page asked with a cursor other than the first showed it honoured
        while True:
            page = pages.page({**self._window(), self.paging.cursor_param: cursor, "pageIndex": 0,
                               "pageSize": pages.page_size})
            self._check(page)
            ids = [record_id(record, field) for record in page]
            if not _above_and_ascending(ids, as_id(cursor)):
                log.warning("Jikeyun %s: the server did not honour %s=%s (ids not all greater and ascending); "
                            "reading by overlapping offset pages instead", pages.method, self.paging.cursor_param,
                            cursor)
                self.how = f"offset pages: the server ignored {self.paging.cursor_param}"
                self.position = {"page": 0, "size": pages.page_size, "end": 0, "previous": [],
                                 "high": cursor if proven else None}
                yield from self._offset_chain(self.position)
                return
            proven = proven or cursor != self.paging.first_cursor
            yield from page
            if len(page) < pages.page_size:
                return
            cursor = str(ids[-1])
            self.position = {"cursor": cursor}

    def _identity(self, record: dict[str, Any]) -> str:
        found = record_id(record, self.paging.cursor_field)
        return str(found) if found is not None else record_digest(record).hex()

    def _offset_chain(self, state: State) -> Iterator[dict[str, Any]]:
        """Overlapping offset pages without the cursor (see the class docstring)."""
        pages, field, size_max = self.pages, self.paging.cursor_field, self.pages.page_size
        index, size, end = state["page"], state["size"], state["end"]
        previous: set[str] = set(state["previous"])
        high = as_id(state.get("high"))
        ascending, last_id, passes = False, None, 0  # ascending: the pages read since page 0 in this call were
        while True:
            page = pages.page({**self._window(), "pageIndex": index, "pageSize": size})
            self._check(page)
            keys = [self._identity(record) for record in page]
            if end and (not page or keys[0] not in previous):
                passes += 1
                if passes >= STABLE_READ_PASSES:
                    raise PagingError(pages.method, f"records kept changing over {passes} reads of offset pages")
                if ascending and last_id is not None:
                    high = last_id if high is None else max(high, last_id)
                log.info("Jikeyun %s: the offset pages shifted between two calls; reading the pass again from its "
                         "first page", pages.method)
                index, size, end, previous, ascending = 0, size_max, 0, set(), False
                self.position = {"page": 0, "size": size, "end": 0, "previous": [], "high": _text(high)}
                continue
            ids = [record_id(record, field) for record in page]
            ascending = (ascending or not end) and _above_and_ascending(ids, None)
            for record, key, found in zip(page, keys, ids, strict=True):
                if key in previous or (high is not None and found is not None and found <= high):
                    continue
                yield record
            if len(page) < size:
                return
            offset, end = index * size, (index + 1) * size
            try:
                index, size = chain_page(end, size_max)
            except ValueError:
                raise PagingError(pages.method, f"page_size {size_max} is too small to overlap pages") from None
            previous, last_id = {keys[i] for i in range(max(0, index * size - offset), len(page))}, ids[-1]
            self.position = {"page": index, "size": size, "end": end, "previous": sorted(previous),
                             "high": _text(high)}


def _above_and_ascending(ids: list[int | None], floor: int | None) -> bool:
    """Every id readable, strictly ascending, and greater than ``floor`` (when given)."""
    previous = -math.inf if floor is None else floor
    for found in ids:
        if found is None or found <= previous:
            return False
        previous = found
    return True


def _text(value: int | None) -> str | None:
    return None if value is None else str(value)


class ServerScroll:
    """A server scroll over one slice: the first request sends an empty scroll id (and lists the scroll parameter
    in the request's field list), each later one the id the previous answer returned (``result.data.<param>``, or
    on the last record — where Jikeyun puts it is not documented, both are read). A page shorter than P, an empty
    page or an answer without a scroll id ends the slice.

    Calls: ⌈(n+1)/P⌉ per slice, at least one per slice. The scroll is a snapshot taken by the first request, so
    records that change during the read change nothing of what it returns. The scroll breaks off, and the slice is
    read again from an empty scroll id (at most :data:`SCROLL_RESTARTS` times; the new snapshot holds every record
    of the slice, so nothing is lost, and records may come twice), when:

    * it expired: an error answer to a request with a scroll id whose sub-code is one of ``expired_sub_codes`` or
      whose message has one of ``expired_words`` (Jikeyun's code is unknown);
    * it returned fewer records than the total its answers carry (``total_field``, sent when the request asks for
      it, e.g. ``hasTotal: 1``): a page was skipped, as a call retried after its answer was lost skips one on a
      server whose scroll moves on with each call.

    A server that answers the same page twice ignores the scroll: :class:`PagingError`.

    Position: ``{"scroll": id, "received": n}`` after a page; while a page is being yielded, the slice's start
    (the server's scroll has moved past it, so only a new scroll reads it again). Resuming with an id that expired
    meanwhile reads the slice again.
    """

    def __init__(self, pages: Pages, bounds: tuple[int, int], paging: ScrollPaging,
                 resume: State | None = None) -> None:
        self.pages, self.bounds, self.paging = pages, bounds, paging
        self.position: State | None = resume
        self.how = f"scroll {paging.scroll_param}"

    def _fixed(self) -> dict[str, Any]:
        """The window, and the field list with the scroll parameter in it."""
        params = self.pages.window(*self.bounds)
        fields = self.pages.request.get(self.paging.fields_param)
        if isinstance(fields, str):
            names = [name.strip() for name in fields.split(",") if name.strip()]
            if self.paging.scroll_param not in names:
                params[self.paging.fields_param] = ",".join([*names, self.paging.scroll_param])
        return params

    def _expired(self, error: Exception) -> bool:
        """Whether an error answer says the scroll expired (duck-typed: the hook's errors carry ``sub_code``,
        ``msg``)."""
        if getattr(error, "sub_code", None) in self.paging.expired_sub_codes:
            return True
        message = str(getattr(error, "msg", None) or error).lower()
        return any(word.lower() in message for word in self.paging.expired_words)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        state = self.position or {}
        scroll, received = str(state.get("scroll", "")), int(state.get("received", 0))
        for restart in range(1, SCROLL_RESTARTS + 2):
            broken = yield from self._read_scroll(scroll, received)
            if broken is None:
                return
            if restart > SCROLL_RESTARTS:
                raise broken
            log.warning("Jikeyun %s: the scroll broke off (%s); reading the slice again from its start",
                        self.pages.method, broken)
            self.how = f"scroll {self.paging.scroll_param}, read again {restart}×"
            scroll, received, self.position = "", 0, None

    def _read_scroll(self, scroll: str, received: int) -> Generator[dict[str, Any], None, Exception | None]:
        """One scroll to its end (``None``), or the error it broke off with."""
        pages, param, fixed = self.pages, self.paging.scroll_param, self._fixed()
        previous: set[bytes] = set()
        while True:
            try:
                data = pages.answer({**fixed, param: scroll, "pageIndex": 0, "pageSize": pages.page_size})
            except Exception as error:
                if scroll and self._expired(error):
                    return error
                raise
            page = pages.records(data)
            pages.seconds(page, *self.bounds)
            digests = {record_digest(record) for record in page}
            if page and digests <= previous:
                raise PagingError(pages.method, f"the same page came twice: the server ignored {param}")
            self.position = None  # the server's scroll has moved on: only a new one reads this page again
            yield from page
            received += len(page)
            following = data.get(param) or (page[-1].get(param) if page else None)
            if len(page) < pages.page_size or not following:
                total = as_id(data.get(self.paging.total_field))
                if total is not None and received < total:
                    return PagingError(pages.method, f"the scroll returned {received} of its {total} records")
                return None
            scroll, previous = str(following), digests
            self.position = {"scroll": scroll, "received": received}


class OffsetPages:
    """Plain 0-based ``pageIndex`` pages of a source without a window; a short or empty page ends.

    Calls: ⌈(n+1)/P⌉. Loses nothing as long as the list does not change during the read; a record removed
    between two calls shifts the one behind it past both pages. Such a source has no window, so every run reads
    it whole, and the next run reads what this one missed. Use the other strategies where the API has a window.

    Position: ``{"page": index}``.
    """

    def __init__(self, pages: Pages, resume: State | None = None) -> None:
        self.pages = pages
        self.position: State | None = resume
        self.how = "offset pages"

    def __iter__(self) -> Iterator[dict[str, Any]]:
        first = int((self.position or {}).get("page", 0))
        for index, page in enumerate(offset_pages(self.pages, {}, first), first):
            yield from page
            self.position = {"page": index + 1}


# ---------------------------------------------------------------------------------------------- the window
class WindowRead:
    """The read of one run's window (see :func:`read_window`): iterate for the records, raw; :attr:`position` after
    each page fully yielded; :attr:`calls` made so far."""

    def __init__(self, call: Call, source: SourceSpec, start: datetime | None, end: datetime | None,
                 resume: Position | None = None) -> None:
        self.source = source
        self.calls = 0

        def counted(method: str, bizcontent: dict[str, Any]) -> dict[str, Any]:
            self.calls += 1
            return call(method, bizcontent)

        self._call = counted
        windowless = not source.windows or (
            start is None and end is None and isinstance(source.paging, (IdCursorPaging, OffsetPaging))
        )
        self.passes: list[WindowPair | None] = [None] if windowless else list(source.windows)
        self.slices: list[tuple[int, int] | None] = [None]
        if not windowless:
            lo, hi = window_seconds(start, end, pendulum.now("UTC"))
            max_seconds = None if source.max_window is None else math.floor(source.max_window.total_seconds())
            self.slices = [*window_slices(lo, hi, max_seconds)]
        resume = resume or {"pass": 0, "slice": 0, "at": None}
        self._pass, self._slice, self._at = resume["pass"], resume["slice"], resume["at"]
        self._strategy: Strategy | None = None

    @property
    def position(self) -> Position:
        """Where a new read continues (``read_window(..., resume=position)``) after the pages yielded so far."""
        at = self._strategy.position if self._strategy is not None else self._at
        return {"pass": self._pass, "slice": self._slice, "at": at}

    def __iter__(self) -> Iterator[dict[str, Any]]:
        source = self.source
        while self._pass < len(self.passes) and self.slices:
            pair = self.passes[self._pass]
            while self._slice < len(self.slices):
                bounds = self.slices[self._slice]
                pages = Pages(self._call, source.method, tuple(source.list_path.split(".")), source.page_size,
                              dict(source.request), pair, source.time_format)
                strategy = self._strategy = _strategy(source, pages, bounds, self._at)
                calls, records = self.calls, 0
                for record in strategy:
                    records += 1
                    yield record
                log.info("Jikeyun %s %s: %d records in %d calls (%s)", source.method, _describe(pair, bounds),
                         records, self.calls - calls, strategy.how)
                self._strategy, self._at, self._slice = None, None, self._slice + 1
            self._pass, self._slice = self._pass + 1, 0


def _strategy(source: SourceSpec, pages: Pages, bounds: tuple[int, int] | None, resume: State | None) -> Strategy:
    paging = source.paging
    if isinstance(paging, IdCursorPaging):
        return IdCursor(pages, bounds, paging, resume)
    if isinstance(paging, OffsetPaging):
        return OffsetPages(pages, resume)
    if bounds is None:
        raise ValueError(f"paging {paging.style} reads a window")
    if isinstance(paging, ScrollPaging):
        return ServerScroll(pages, bounds, paging, resume)
    return TimeKeyset(pages, bounds, resume)


def _describe(pair: WindowPair | None, bounds: tuple[int, int] | None) -> str:
    if pair is None or bounds is None:
        return "everything"
    return f"{pair.start_param}/{pair.end_param} [{beijing_time(bounds[0])}, {beijing_time(bounds[1])}]"


def read_window(call: Call, source: SourceSpec, start: datetime | None, end: datetime | None, *,
                resume: Position | None = None) -> WindowRead:
    """Every record of the source modified in ``[start, end)`` — each pass, each slice, read by the scheme's
    paging strategy — raw as Jikeyun sent it, none lost.

    :param call: ``call(method, bizcontent) -> result.data``, the hook's ``call``.
    :param start: aware datetime; ``None`` with ``end`` ``None``: a full read (see the module docstring).
    :param end: aware datetime, exclusive; ``None`` = now.
    :param resume: a :attr:`WindowRead.position` of an earlier read of the same window: go on from there.
    """
    return WindowRead(call, source, start, end, resume)
