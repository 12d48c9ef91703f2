"""The id cursor, the server scroll and offset pages, against in-memory data sources that behave as the goods and
trades APIs are documented to (docs/protocol/jikeyun.md): edits between pages, a cursor the server ignores, scroll
snapshots and expiry, and reads stopped after any page and resumed from their position. The strategies are pure
(``call`` is all they use), so these sources test them fully; the sandboxes serve these APIs over HTTP elsewhere."""

from __future__ import annotations

import copy
import itertools
import json
import logging
import math
import random
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta, timezone
from typing import Any

import pendulum
import pytest

from jikeyun_kingdee.hooks.jikeyun import JikeyunError, JikeyunFatalError, JikeyunQuotaExhausted
from jikeyun_kingdee.scheme import SourceSpec
from jikeyun_kingdee.source_paging import SCROLL_RESTARTS, Call, PagingError, Position, read_window, window_slices

UTC = timezone.utc
BEIJING = pendulum.timezone("Asia/Shanghai")
DAY = (datetime(2025, 6, 1, tzinfo=UTC), datetime(2025, 6, 2, tzinfo=UTC))
LATER = datetime(2025, 7, 1, tzinfo=UTC)  # edits during a read happen now, after every window read here
P = 50
GOODS = "erp.storage.goodslist"
TRADES = "oms.trade.fullinfoget"


def ms(moment: datetime) -> int:
    return round(moment.timestamp() * 1000)


def beijing(moment: datetime) -> str:
    return pendulum.instance(moment).in_timezone(BEIJING).format("YYYY-MM-DD HH:mm:ss")


def from_beijing(text: str) -> datetime:
    return pendulum.from_format(text, "YYYY-MM-DD HH:mm:ss", tz=BEIJING)


def goods_source(**changes: Any) -> SourceSpec:
    """The goods scheme's source section (two passes, an id cursor, epoch-ms bounds)."""
    return SourceSpec.model_validate({
        "method": GOODS, "list_path": "result.data.goods", "page_size": P, "id_field": "skuBarcode",
        "paging": {"style": "id_cursor", "cursor_param": "maxSkuId", "cursor_field": "skuId"},
        "windows": [
            {"start_param": "startDateModifiedGoods", "end_param": "endDateModifiedGoods",
             "modified_field": "goodsGmtModified"},
            {"start_param": "startDateModifiedSku", "end_param": "endDateModifiedSku",
             "modified_field": "skuGmtModified"},
        ],
        "time_format": "epoch_ms", "request": {"isQueryDelete": 1}, **changes,
    })


def trades_source(**changes: Any) -> SourceSpec:
    """The trades scheme's source section (a scroll, slices of at most 7 days, a field list)."""
    return SourceSpec.model_validate({
        "method": TRADES, "list_path": "trades", "page_size": P, "id_field": "tradeNo",
        "paging": {"style": "scroll", "scroll_param": "scrollId"},
        "windows": [{"start_param": "startModified", "end_param": "endModified", "modified_field": "gmtModified"}],
        "max_window_days": 7, "request": {"fields": "tradeNo,gmtModified,goodsDetail.goodsNo"}, **changes,
    })


# ------------------------------------------------------------------------------------------- data sources
class DataSource:
    """An API over in-memory records: ``call`` it as the hook's ``call``; :attr:`edited` holds the keys of the
    records edited during a read."""

    key: str

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.edited: set[str] = set()

    def __call__(self, method: str, bizcontent: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    def in_window(self, start: datetime, end: datetime) -> set[str]:
        """Keys of the records modified in ``[start, end)`` now."""
        raise NotImplementedError

    def everything(self) -> set[str]:
        raise NotImplementedError


class GoodsList(DataSource):
    """``erp.storage.goodslist`` over an in-memory catalogue: one row per SKU, ordered by ``skuId`` (or by
    ``order``); both window pairs filter (ANDed when both are sent, ends inclusive, epoch ms); ``isQueryDelete: 1``
    adds deleted SKUs; ``maxSkuId`` keeps ids greater than it unless ``honours_cursor`` is false; then
    ``pageIndex`` × ``pageSize``. ``edits`` random edits follow each answer (a goods or SKU edit, a new SKU, a
    delete), each at a time after the window, as edits made during a read are."""

    def __init__(self, skus: int, *, seed: int = 1, honours_cursor: bool = True, order: str = "skuId",
                 edits: int = 0) -> None:
        super().__init__()
        self.rng = random.Random(seed)
        start, span = ms(DAY[0]) - 3_600_000, ms(DAY[1]) - ms(DAY[0]) + 7_200_000  # goods: the day and an hour
        day = ms(DAY[1]) - ms(DAY[0])  # SKUs: the day before, the day and the day after, so passes overlap little
        self.skus: dict[str, dict[str, Any]] = {}
        for i in range(skus):
            sku_id = str(10**15 + self.rng.randrange(10**12))
            self.skus[sku_id] = {
                "skuId": sku_id, "goodsId": f"G{i // 3}", "skuBarcode": f"B{i:05d}", "isDelete": 0,
                "goodsGmtModified": start + self.rng.randrange(span),
                "skuGmtModified": ms(DAY[0]) - day + self.rng.randrange(3 * day),
            }
        self.honours_cursor, self.order, self.edits = honours_cursor, order, edits
        self.clock = ms(LATER)

    def everything(self) -> set[str]:
        return set(self.skus)

    def in_window(self, start: datetime, end: datetime,
                  fields: tuple[str, ...] = ("goodsGmtModified", "skuGmtModified")) -> set[str]:
        return {s for s, sku in self.skus.items() if any(ms(start) <= sku[f] < ms(end) for f in fields)}

    def __call__(self, method: str, bizcontent: dict[str, Any]) -> dict[str, Any]:
        assert method == GOODS
        self.requests.append(dict(bizcontent))
        rows = sorted((s for s in self.skus.values() if self._matches(s, bizcontent)),
                      key=lambda s: int(s["skuId"]) if self.order == "skuId" else s[self.order])
        if self.honours_cursor and "maxSkuId" in bizcontent:
            rows = [s for s in rows if int(s["skuId"]) > int(bizcontent["maxSkuId"])]
        size, index = bizcontent["pageSize"], bizcontent["pageIndex"]
        page = copy.deepcopy(rows[index * size:(index + 1) * size])
        for _ in range(self.edits):
            self._edit()
        return {"goods": page}

    @staticmethod
    def _matches(sku: dict[str, Any], bizcontent: dict[str, Any]) -> bool:
        if sku["isDelete"] and bizcontent.get("isQueryDelete") != 1:
            return False
        pairs = (("goodsGmtModified", "startDateModifiedGoods", "endDateModifiedGoods"),
                 ("skuGmtModified", "startDateModifiedSku", "endDateModifiedSku"))
        return all(bizcontent[lo] <= sku[field] <= bizcontent[hi] for field, lo, hi in pairs if lo in bizcontent)

    def _edit(self) -> None:
        self.clock += 1000
        kind = self.rng.choice(["goods", "sku", "new", "delete"])
        sku = self.skus[self.rng.choice(sorted(self.skus))]
        if kind == "goods":  # a goods edit touches each of its SKUs
            for other in self.skus.values():
                if other["goodsId"] == sku["goodsId"]:
                    other["goodsGmtModified"] = self.clock
                    self.edited.add(other["skuId"])
        elif kind == "new":
            sku_id = str(max(int(s) for s in self.skus) + 1)
            self.skus[sku_id] = {**sku, "skuId": sku_id, "skuBarcode": f"N{sku_id}", "skuGmtModified": self.clock}
        else:
            sku.update(skuGmtModified=self.clock, isDelete=int(kind == "delete"))
            self.edited.add(sku["skuId"])


class TradeList(DataSource):
    """``oms.trade.fullinfoget`` over in-memory trades: ``fields`` must list ``scrollId``; the window
    ``startModified``/``endModified`` (Beijing time, ends inclusive) may not exceed 7 days; an empty ``scrollId``
    takes a snapshot of the window's trades, later calls page through it with the id returned (in
    ``result.data.scrollId`` or, ``scroll_on_rows``, on every trade row); ``expire_after`` calls of a scroll expire
    it (an error answer), for the first ``expiries`` scrolls. ``honours_scroll`` false: every call starts afresh.
    ``hasTotal: 1`` adds ``totalResults``. ``skip_at``: that call (1-based) skips a page, as a call retried after
    its answer was lost does on a server whose scroll moves on with each call. ``edits`` trades are edited after
    each answer (their ``gmtModified`` moves after the window)."""

    def __init__(self, trades: int, *, seed: int = 2, scroll_on_rows: bool = False, expire_after: int = 0,
                 expiries: int = 0, honours_scroll: bool = True, skip_at: int = 0, edits: int = 0,
                 span: timedelta = DAY[1] - DAY[0]) -> None:
        super().__init__()
        self.rng = random.Random(seed)
        seconds = int(span.total_seconds())
        self.trades: dict[str, dict[str, Any]] = {
            f"T{i:05d}": {"tradeNo": f"T{i:05d}", "goodsDetail": [{"goodsNo": "G1"}],
                          "gmtModified": beijing(DAY[0] + timedelta(seconds=self.rng.randrange(seconds)))}
            for i in range(trades)
        }
        self.scroll_on_rows, self.honours_scroll, self.edits = scroll_on_rows, honours_scroll, edits
        self.expire_after, self.expiries, self.skip_at = expire_after, expiries, skip_at
        self.scrolls: dict[str, tuple[list[dict[str, Any]], int, int]] = {}  # id -> snapshot, next, calls
        self.taken = 0  # snapshots taken

    def everything(self) -> set[str]:
        return set(self.trades)

    def in_window(self, start: datetime, end: datetime) -> set[str]:
        return {t for t, trade in self.trades.items() if beijing(start) <= trade["gmtModified"] < beijing(end)}

    def __call__(self, method: str, bizcontent: dict[str, Any]) -> dict[str, Any]:
        assert method == TRADES
        self.requests.append(dict(bizcontent))
        if "scrollId" not in bizcontent["fields"].split(","):
            raise JikeyunError(method, "fields须包含scrollId", code=0, sub_code="0050030002")
        start, end = bizcontent["startModified"], bizcontent["endModified"]
        if from_beijing(end) - from_beijing(start) > timedelta(days=7):
            raise JikeyunFatalError(method, "起止时间不能超过7天", code=0, sub_code="0050030002")
        scroll = bizcontent["scrollId"]
        if not scroll or not self.honours_scroll:
            scroll, self.taken = f"S{self.taken}", self.taken + 1
            snapshot = sorted((t for t in self.trades.values() if start <= t["gmtModified"] <= end),
                              key=lambda t: t["tradeNo"])
            self.scrolls[scroll] = (copy.deepcopy(snapshot), 0, 0)
        elif scroll not in self.scrolls:
            raise JikeyunError(method, "scrollId已过期或不存在", code=0, sub_code="0130099998")
        rows, at, calls = self.scrolls[scroll]
        if len(self.requests) == self.skip_at:
            at += bizcontent["pageSize"]
        page = rows[at:at + bizcontent["pageSize"]]
        if int(scroll[1:]) < self.expiries and calls + 1 >= self.expire_after:
            del self.scrolls[scroll]
        else:
            self.scrolls[scroll] = (rows, at + len(page), calls + 1)
        for _ in range(self.edits):
            trade = self.trades[self.rng.choice(sorted(self.trades))]
            trade["gmtModified"] = beijing(LATER)
            self.edited.add(trade["tradeNo"])
        total = {"totalResults": len(rows)} if bizcontent.get("hasTotal") == 1 else {}
        if self.scroll_on_rows:
            return {"trades": [{**row, "scrollId": scroll} for row in page], **total}
        return {"trades": page, "scrollId": scroll, **total}


def keys(records: Iterable[dict[str, Any]], field: str) -> list[str]:
    return [r[field] for r in records]


def with_quota(call: Call, calls: int) -> Call:
    """``call`` for ``calls`` calls, then the quota error."""
    left = iter(range(calls))

    def limited(method: str, bizcontent: dict[str, Any]) -> dict[str, Any]:
        if next(left, None) is None:
            raise JikeyunQuotaExhausted(method, "额度不足", code=0, sub_code="0130000609")
        return call(method, bizcontent)

    return limited


def read_with_stops(call: Call, source: SourceSpec, window: tuple[datetime | None, datetime | None],
                    rng: random.Random, inside_pages: bool = True) -> tuple[list[dict[str, Any]], int]:
    """Read the window in parts, each resumed from the position the part before left (passed through JSON). A part
    ends when its random budget of calls is spent (the quota error, between pages), or (``inside_pages``) when its
    consumer stops after a random number of records (inside a page, say the task was killed). Returns the records
    and the number of parts."""
    records: list[dict[str, Any]] = []
    position: Position | None = None
    for part in range(1, 10_000):
        read = read_window(with_quota(call, rng.randint(1, 4)), source, *window, resume=position)
        wanted = rng.choice([0, rng.randint(1, 2 * P)]) if inside_pages else 0  # 0: until the quota is spent
        try:
            for count, record in enumerate(read, 1):
                records.append(record)
                if count == wanted:
                    break
            else:
                return records, part
        except JikeyunQuotaExhausted:
            pass
        position = json.loads(json.dumps(read.position))
    raise AssertionError("the read never ended")


# ---------------------------------------------------------------------------------------------- id cursor
def test_id_cursor_reads_each_pass_by_its_window_pair_and_the_cursor():
    goods = GoodsList(400)
    got = list(read_window(goods, goods_source(), *DAY))
    by_pass = [{s for s, sku in goods.skus.items() if ms(DAY[0]) <= sku[f] < ms(DAY[1])}
               for f in ("goodsGmtModified", "skuGmtModified")]
    assert sorted(keys(got, "skuId")) == sorted([*by_pass[0], *by_pass[1]])  # each pass once; merged downstream
    assert len(goods.requests) == sum(math.ceil((len(ids) + 1) / P) for ids in by_pass)
    first = goods.requests[0]
    assert first == {"isQueryDelete": 1, "startDateModifiedGoods": ms(DAY[0]) - 1000,
                     "endDateModifiedGoods": ms(DAY[1]), "maxSkuId": "0", "pageIndex": 0, "pageSize": P}
    second_pass = goods.requests[math.ceil((len(by_pass[0]) + 1) / P)]
    assert "startDateModifiedSku" in second_pass and "startDateModifiedGoods" not in second_pass
    assert second_pass["maxSkuId"] == "0"
    assert all(r["pageIndex"] == 0 for r in goods.requests)


def test_a_full_read_by_id_cursor_is_one_pass_without_a_window():
    goods = GoodsList(230)
    got = keys(read_window(goods, goods_source(), None, None), "skuId")
    assert sorted(got) == sorted(goods.skus)
    assert len(goods.requests) == math.ceil(231 / P)
    assert not any("startDateModifiedSku" in r or "startDateModifiedGoods" in r for r in goods.requests)


@pytest.mark.parametrize(("honours_cursor", "order"), [(False, "skuId"), (True, "goodsGmtModified")],
                         ids=["cursor ignored", "cursor honoured, not ordered by id"])
def test_a_cursor_the_server_does_not_honour_falls_back_to_overlapping_offset_pages(caplog, honours_cursor, order):
    goods = GoodsList(600, honours_cursor=honours_cursor, order=order)
    expected = goods.in_window(*DAY)
    with caplog.at_level(logging.WARNING, logger="jikeyun_kingdee.source_paging"):
        got = keys(read_window(goods, goods_source(), *DAY), "skuId")
    assert set(got) == expected
    assert "did not honour maxSkuId" in caplog.text
    for pair in ("Goods", "Sku"):
        n = sum(1 for r in goods.requests if f"startDateModified{pair}" in r)
        in_pass = sum(1 for s in goods.skus.values() if ms(DAY[0]) <= s[f"{pair.lower()}GmtModified"] < ms(DAY[1]))
        # offsets are multiples of the page size: pages vary in size to start two records before the last end,
        # about 0.8 P new records a call at P = 50 (0.9 P at 200); plus the page that showed the cursor ignored
        assert n <= math.ceil((in_pass + 1) / (0.8 * P)) + 2
    assert not any("maxSkuId" in r and r["pageIndex"] for r in goods.requests)  # offsets go without the cursor


@pytest.mark.parametrize("seed", range(20))
@pytest.mark.parametrize("honours_cursor", [True, False], ids=["cursor honoured", "cursor ignored"])
@pytest.mark.parametrize("one_pass", [0, 1], ids=["goods pass", "SKU pass"])
def test_id_cursor_loses_nothing_when_the_catalogue_changes_between_pages(seed, honours_cursor, one_pass):
    goods = GoodsList(500, seed=seed, honours_cursor=honours_cursor, edits=random.Random(seed).randint(1, 4))
    pair = goods_source().windows[one_pass]  # one pass alone, so that the other cannot make up for a loss
    expected = goods.in_window(*DAY, fields=(pair.modified_field,))
    got = set(keys(read_window(goods, goods_source(windows=[pair.model_dump()]), *DAY), "skuId"))
    assert expected - goods.edited <= got  # an edited SKU left the window: the next one reads it
    assert goods.edited  # the edits happened during the read


@pytest.mark.parametrize("seed", range(10))
def test_a_full_read_by_id_cursor_loses_nothing_edited_or_not(seed):
    goods = GoodsList(500, seed=seed, edits=2)
    before = set(goods.skus)
    got = set(keys(read_window(goods, goods_source(), None, None), "skuId"))
    assert before <= got  # without a window, an edited or deleted SKU is still there to be read


def test_offset_pages_of_a_source_without_a_window():
    goods = GoodsList(120)
    source = goods_source(paging={"style": "offset"}, windows=[])
    assert sorted(keys(read_window(goods, source, *DAY), "skuId")) == sorted(goods.skus)
    assert [r["pageIndex"] for r in goods.requests] == [0, 1, 2]
    assert not any("maxSkuId" in r for r in goods.requests)


# ------------------------------------------------------------------------------------------------- scroll
@pytest.mark.parametrize("scroll_on_rows", [False, True], ids=["result.data.scrollId", "on the last trade row"])
def test_scroll_reads_a_slice_through_the_returned_scroll_id(scroll_on_rows):
    trades = TradeList(260, scroll_on_rows=scroll_on_rows)
    got = keys(read_window(trades, trades_source(), *DAY), "tradeNo")
    assert sorted(got) == sorted(trades.in_window(*DAY))
    assert [r["scrollId"] for r in trades.requests] == ["", "S0", "S0", "S0", "S0", "S0"]
    assert trades.requests[0]["fields"] == "tradeNo,gmtModified,goodsDetail.goodsNo,scrollId"
    assert trades.requests[0]["startModified"] == "2025-06-01 07:59:59"  # Beijing time, widened by a second


def test_a_long_window_is_read_in_slices_of_at_most_seven_days():
    month = (DAY[0], DAY[0] + timedelta(days=30))
    trades = TradeList(400, span=month[1] - month[0])
    got = keys(read_window(trades, trades_source(), *month), "tradeNo")
    assert sorted(got) == sorted(trades.in_window(*month))
    starts = [r["startModified"] for r in trades.requests if r["scrollId"] == ""]
    assert len(starts) == 5  # 30 days in slices of 7 days, widening included
    spans = {from_beijing(r["endModified"]) - from_beijing(r["startModified"]) for r in trades.requests}
    assert max(spans) == timedelta(days=7)


def test_slices_cover_the_window_once_and_their_requests_span_the_limit():
    lo, hi = 0, 30 * 86400 - 1
    slices = window_slices(lo, hi, 7 * 86400)
    assert slices[0][0] == lo and slices[-1][1] == hi
    assert all(b[0] == a[1] + 1 for a, b in itertools.pairwise(slices))
    assert all((last + 1) - (first - 1) <= 7 * 86400 for first, last in slices)
    assert window_slices(5, 4, 7 * 86400) == [] and window_slices(0, 9, None) == [(0, 9)]


@pytest.mark.parametrize("seed", range(15))
def test_scroll_loses_nothing_when_trades_change_during_the_read(seed):
    trades = TradeList(300, seed=seed, edits=3, span=timedelta(days=10))
    window = (DAY[0], DAY[0] + timedelta(days=10))
    expected = trades.in_window(*window)
    got = set(keys(read_window(trades, trades_source(), *window), "tradeNo"))
    assert expected - trades.edited <= got
    first_slice = {t for t in expected if trades.trades[t]["gmtModified"] < beijing(DAY[0] + timedelta(days=6))}
    assert first_slice <= got  # a snapshot: edits after it was taken change nothing of what it returns


def test_an_expired_scroll_reads_its_slice_again(caplog):
    trades = TradeList(260, expire_after=3, expiries=1)
    with caplog.at_level(logging.WARNING, logger="jikeyun_kingdee.source_paging"):
        read = read_window(trades, trades_source(), *DAY)
        got = keys(read, "tradeNo")
    assert set(got) == trades.in_window(*DAY)  # some twice; downstream de-duplicates by key
    assert caplog.text.count("the scroll broke off") == 1 and "scrollId已过期" in caplog.text
    assert len(got) > len(set(got))


def test_a_scroll_that_returned_fewer_records_than_its_total_is_read_again(caplog):
    source = trades_source(request={"fields": "tradeNo,gmtModified", "hasTotal": 1})
    with caplog.at_level(logging.WARNING, logger="jikeyun_kingdee.source_paging"):
        got = keys(read_window(TradeList(260, skip_at=3), source, *DAY), "tradeNo")
    assert set(got) == TradeList(260).in_window(*DAY)
    assert "the scroll returned 210 of its 260 records" in caplog.text
    without_total = keys(read_window(TradeList(260, skip_at=3), trades_source(), *DAY), "tradeNo")
    assert len(set(without_total)) == 210  # what the check is for


def test_a_scroll_that_always_expires_fails_after_a_few_restarts():
    trades = TradeList(260, expire_after=1, expiries=99)
    with pytest.raises(JikeyunError, match="过期") as info:
        list(read_window(trades, trades_source(), *DAY))
    assert info.value.sub_code == "0130099998"
    assert sum(1 for r in trades.requests if r["scrollId"] == "") == SCROLL_RESTARTS + 1


def test_an_error_of_the_first_call_is_no_expired_scroll():
    def token_expired(method: str, bizcontent: dict[str, Any]) -> dict[str, Any]:
        raise JikeyunFatalError(method, "token已过期", code=0, sub_code="0858030803")

    with pytest.raises(JikeyunFatalError, match="token"):
        list(read_window(token_expired, trades_source(), *DAY))


def test_a_server_that_ignores_the_scroll_is_caught():
    trades = TradeList(260, honours_scroll=False)
    with pytest.raises(PagingError, match="the same page came twice: the server ignored scrollId"):
        list(read_window(trades, trades_source(), *DAY))
    assert len(trades.requests) == 2


def test_a_record_outside_the_requested_window_fails_the_read():
    trades = TradeList(10)
    next(iter(trades.trades.values()))["gmtModified"] = "2025-06-01 07:59:57"  # before the widened start

    def answer_all(method: str, bizcontent: dict[str, Any]) -> dict[str, Any]:
        return {"trades": list(trades.trades.values()), "scrollId": "S0"}

    with pytest.raises(PagingError, match="server ignored the time window: gmtModified=2025-06-01 07:59:57"):
        list(read_window(answer_all, trades_source(), *DAY))


# ------------------------------------------------------------------------------------------------- resume
RESUMABLE: dict[str, Callable[[int, int], tuple[DataSource, SourceSpec, str]]] = {
    "id cursor": lambda seed, edits: (GoodsList(400, seed=seed, edits=edits), goods_source(), "skuId"),
    "id cursor ignored": lambda seed, edits: (
        GoodsList(400, seed=seed, honours_cursor=False, edits=edits), goods_source(), "skuId"),
    "scroll": lambda seed, edits: (
        TradeList(400, seed=seed, edits=edits, span=timedelta(days=10)), trades_source(), "tradeNo"),
    "offset": lambda seed, edits: (
        GoodsList(300, seed=seed, edits=edits), goods_source(paging={"style": "offset"}, windows=[]), "skuId"),
}
TEN_DAYS = (DAY[0], DAY[0] + timedelta(days=10))


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("case", RESUMABLE, ids=list(RESUMABLE))
def test_a_read_stopped_anywhere_resumes_from_its_position_without_a_loss(case, seed):
    server, source, key = RESUMABLE[case](seed, 1)
    expected = server.in_window(*TEN_DAYS) if source.windows else server.everything()
    records, parts = read_with_stops(server, source, TEN_DAYS, random.Random(seed))
    assert expected - server.edited <= set(keys(records, key))  # records edited meanwhile left the window
    assert parts > 1  # it was stopped and resumed


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("case", RESUMABLE, ids=list(RESUMABLE))
def test_a_read_stopped_between_pages_reads_at_most_one_page_again(case, seed):
    server, source, key = RESUMABLE[case](seed, 0)
    whole = keys(read_window(server, source, *TEN_DAYS), key)
    server, source, key = RESUMABLE[case](seed, 0)
    records, parts = read_with_stops(server, source, TEN_DAYS, random.Random(seed), inside_pages=False)
    got = keys(records, key)
    assert set(got) == set(whole)
    assert len(whole) <= len(got) <= len(whole) + (parts - 1) * P
