"""oms.trade.fullinfoget in the Jikeyun sandbox, over real HTTP: the trade generator over the sandbox's goods and
warehouses, ``fields`` projection, the one-criterion and 7-day rules, offset pages, scroll snapshots under edits,
scroll expiry, the unsure settings (where the scroll id comes back, the shop code's key, ids as numbers) and the
scripted trade lifecycle."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest

from jikeyun_kingdee.hooks.jikeyun import JikeyunError, JikeyunFatalError, JikeyunHook
from jikeyun_kingdee.sandbox.jikeyun import BEIJING, JikeyunSandbox, generate_warehouses
from jikeyun_kingdee.sandbox.jikeyun_common import parse_wire_time, wire_time
from jikeyun_kingdee.sandbox.jikeyun_goods import generate_catalogue
from jikeyun_kingdee.sandbox.jikeyun_trades import SCROLL_EXPIRED, TRADES_METHOD, generate_trades

from tests.support.jikeyun import control, control_refused, raw_call
from tests.support.sandboxes import connected_jikeyun

SECRET = "trades-sandbox-secret"
FROM, TO = datetime(2025, 6, 1, tzinfo=BEIJING), datetime(2025, 6, 29, tzinfo=BEIJING)
WEEK = {"startModified": "2025-06-08 00:00:00", "endModified": "2025-06-15 00:00:00"}  # about 200 trades
HEADER = "tradeNo,tradeId,tradeStatus,gmtModified,sellerMemo"


@pytest.fixture(scope="module")
def sandbox() -> Iterator[JikeyunSandbox]:
    """800 trades modified over four weeks of June 2025, shared by the module; tests that add trades use later
    weeks, tests that change a setting put it back."""
    with pytest.MonkeyPatch.context() as patch, connected_jikeyun(
        patch, SECRET, warehouses=20, goods=150, trades=800, seed=8, modified_from=FROM, modified_to=TO,
    ) as server:
        yield server


@pytest.fixture(scope="module")
def hook(sandbox: JikeyunSandbox) -> JikeyunHook:
    return JikeyunHook("jikeyun_default", retry_limit=1)


def in_week(sandbox: JikeyunSandbox) -> list[dict[str, Any]]:
    """The trades of :data:`WEEK` (both ends inclusive), by tradeId, as stored now."""
    start, end = WEEK["startModified"], WEEK["endModified"]
    return [sandbox.trades.records[i] for i in sorted(sandbox.trades.records)
            if start <= sandbox.trades.records[i]["gmtModified"] <= end]


def scroll(hook: JikeyunHook, biz: dict[str, Any], page_size: int = 50) -> tuple[list[str], int]:
    """Read by scroll until a short page: (trade numbers, calls)."""
    numbers, scroll_id, calls = [], "", 0
    while True:
        data = hook.call(TRADES_METHOD, {**biz, "pageSize": page_size, "scrollId": scroll_id})
        calls += 1
        numbers += [t["tradeNo"] for t in data["trades"]]
        if len(data["trades"]) < page_size:
            return numbers, calls
        scroll_id = data["scrollId"]


def offset(hook: JikeyunHook, biz: dict[str, Any], page_size: int = 50) -> list[str]:
    numbers, page_index = [], 0
    while True:
        page = hook.call(TRADES_METHOD, {**biz, "pageSize": page_size, "pageIndex": page_index})["trades"]
        numbers += [t["tradeNo"] for t in page]
        if len(page) < page_size:
            return numbers
        page_index += 1


# -- the generator ------------------------------------------------------------------------------------------------
def test_trades_are_deterministic_and_realistic_over_the_sandbox_goods_and_warehouses():
    skus, warehouses = generate_catalogue(300, seed=2), generate_warehouses(40, seed=2)
    trades = generate_trades(3000, skus=skus, warehouses=warehouses, seed=4, modified_from=FROM, modified_to=TO)
    assert trades == generate_trades(3000, skus=skus, warehouses=warehouses, seed=4, modified_from=FROM,
                                     modified_to=TO) != generate_trades(3000, skus=skus, warehouses=warehouses, seed=5)
    by_barcode = {s["skuBarcode"]: s for s in skus if not s["isDelete"]}
    active = {w["warehouseCode"] for w in warehouses if not w["isDelete"] and not w["isBlockup"]}
    statuses, types = Counter(t["tradeStatus"] for t in trades), Counter(t["tradeType"] for t in trades)
    assert 0.5 < statuses[9090] / 3000 < 0.66 and 0.1 < statuses[6000] / 3000 < 0.2 and statuses[4110] > 100
    assert 0.74 < types[1] / 3000 < 0.86 and types[8] > 100 and len({t["shopId"] for t in trades}) == 6
    assert len({t["tradeNo"] for t in trades}) == len({t["tradeId"] for t in trades}) == 3000
    lines = [line for t in trades for line in t["goodsDetail"]]
    assert len({line["subTradeId"] for line in lines}) == len(lines)
    assert max(len(t["goodsDetail"]) for t in trades) > 30 and Counter(len(t["goodsDetail"]) for t in trades)[1] > 1400
    assert any(line["isGift"] for line in lines) and all(line["sellPrice"] == 0 for line in lines if line["isGift"])
    for trade in trades:
        assert trade["warehouseCode"] in active
        assert FROM.strftime("%Y-%m-%d") <= trade["gmtModified"] < TO.strftime("%Y-%m-%d")
        times = [trade[k] for k in ("tradeTime", "gmtCreate", "auditTime", "consignTime", "completeTime",
                                    "gmtModified") if trade[k] is not None]
        assert times == sorted(times)
        assert (trade["consignTime"] is not None) == (trade["tradeStatus"] in (4130, 6000, 9090))
        cents = round(sum(line["shareFavourableAfterFee"] for line in trade["goodsDetail"]) * 100)
        assert cents == round((trade["totalFee"] - trade["discountFee"]) * 100)
        for line in trade["goodsDetail"]:
            sku = by_barcode[line["barcode"]]
            assert [line["goodsNo"], line["specName"], line["unit"]] == [sku["goodsNo"], sku["skuName"],
                                                                         sku["unitName"]]
            assert round(line["sellTotal"] - line["shareFavourableFee"], 2) == line["shareFavourableAfterFee"]
            assert (line["sellCount"] < 0) == (trade["tradeType"] == 8)
    with pytest.raises(ValueError, match="goods"):
        generate_trades(1, skus=[], warehouses=warehouses)


# -- fields, criteria, windows ------------------------------------------------------------------------------------
def test_fields_are_required_and_only_the_listed_fields_come_back(hook, sandbox):
    for fields in (None, "", " "):
        envelope = raw_call(sandbox, TRADES_METHOD, {**WEEK, **({"fields": fields} if fields is not None else {})})
        assert (envelope["code"], envelope["subCode"]) == (0, "0050030002") and "查询字段不能为空" in envelope["msg"]
    page = hook.call(TRADES_METHOD, {**WEEK, "fields": "tradeNo,goodsDetail.barcode,goodsDetail.sellCount,noSuchField"})
    assert page["trades"] and all(set(t) == {"tradeNo", "goodsDetail"} for t in page["trades"])
    assert {k for t in page["trades"] for line in t["goodsDetail"] for k in line} == {"barcode", "sellCount"}
    assert set(page) == {"trades"}  # no scrollId, no total unless asked
    whole = hook.call(TRADES_METHOD, {**WEEK, "pageSize": 200, "fields": "tradeNo,goodsDetail,goodsDelivery.batchNo"})
    stored = {t["tradeNo"]: t for t in in_week(sandbox)}
    assert all(t["goodsDetail"] == [{**line, "goodsDelivery": [{"batchNo": b["batchNo"]} for b in
                                                               line.get("goodsDelivery", [])]}
                                    for line in stored[t["tradeNo"]]["goodsDetail"]] for t in whole["trades"])
    assert any(line["goodsDelivery"] for t in whole["trades"] for line in t["goodsDetail"])


def test_one_criterion_is_required_and_windows_are_at_most_seven_days(hook, sandbox):
    def refused(biz: dict[str, Any]) -> str:
        with pytest.raises(JikeyunFatalError) as error:
            hook.call(TRADES_METHOD, {"fields": "tradeNo", **biz})
        assert error.value.sub_code == "0050030002"
        return error.value.msg

    assert "必传其一" in refused({"tradeStatus": 9090})
    too_long = "起止时间不能超过7天"
    assert too_long in refused({"startModified": "2025-06-08 00:00:00", "endModified": "2025-06-15 00:00:01"})
    assert too_long in refused({"startConsignTime": "2025-06-01 00:00:00", "endConsignTime": "2025-06-20 00:00:00"})
    assert "成对" in refused({"startModified": "2025-06-08 00:00:00"})
    assert "格式" in refused({"startModified": "2025-06-08", "endModified": "2025-06-09"})
    week = hook.call(TRADES_METHOD, {**WEEK, "fields": "tradeNo", "pageSize": 200, "hasTotal": 1})
    assert week["totalResults"] == len(in_week(sandbox)) > 150  # exactly 7 days is accepted
    numbers = [t["tradeNo"] for t in in_week(sandbox)[:3]]
    by_number = hook.call(TRADES_METHOD, {"tradeNo": ",".join(numbers), "fields": "tradeNo"})
    assert [t["tradeNo"] for t in by_number["trades"]] == numbers
    consign = {"startConsignTime": "2025-06-10 00:00:00", "endConsignTime": "2025-06-11 00:00:00"}
    consigned = hook.call(TRADES_METHOD, {**consign, "fields": "consignTime", "pageSize": 200})["trades"]
    assert consigned and all("2025-06-10" <= t["consignTime"] <= "2025-06-11 00:00:00" for t in consigned)


def test_filters(hook, sandbox):
    def read(**biz: Any) -> list[dict[str, Any]]:
        fields = "tradeNo,tradeStatus,tradeType,shopId,warehouseId,isDelete"
        days = {"startModified": "2025-06-08 00:00:00", "endModified": "2025-06-11 00:00:00"}  # fewer than 200
        return hook.call(TRADES_METHOD, {**days, **biz, "fields": fields, "pageSize": 200})["trades"]

    assert {t["tradeStatus"] for t in read(tradeStatusList="[9090, 6000]")} == {9090, 6000}
    assert {t["tradeStatus"] for t in read(tradeStatus=9090)} == {9090}
    assert {t["tradeType"] for t in read(tradeTypeList=[8])} == {8}
    shop = in_week(sandbox)[0]["shopId"]
    assert {t["shopId"] for t in read(shopIds=f'["{shop}"]')} == {shop}
    warehouse = in_week(sandbox)[0]["warehouseId"]
    assert {t["warehouseId"] for t in read(warehouseIds=[warehouse])} == {warehouse}
    everything, deleted, kept = read(), read(isDelete="1"), read(isDelete=0)
    assert {t["isDelete"] for t in deleted} == {1} and {t["isDelete"] for t in kept} == {0}
    assert len(everything) == len(deleted) + len(kept) < 200
    sandbox.trades.hide_deleted = True
    try:
        assert read() == kept
    finally:
        sandbox.trades.hide_deleted = False


# -- paging -------------------------------------------------------------------------------------------------------
def test_offset_pages_default_to_50_at_most_200_ordered_by_trade_id(hook, sandbox):
    first = hook.call(TRADES_METHOD, {**WEEK, "fields": "tradeId"})["trades"]
    assert len(first) == 50 and [int(t["tradeId"]) for t in first] == sorted(int(t["tradeId"]) for t in first)
    assert offset(hook, {**WEEK, "fields": "tradeNo"}, page_size=37) == [t["tradeNo"] for t in in_week(sandbox)]
    for page_size in (201, 0):
        with pytest.raises(JikeyunFatalError):
            hook.call(TRADES_METHOD, {**WEEK, "fields": "tradeNo", "pageSize": page_size})


def test_a_scroll_reads_a_snapshot_that_edits_do_not_shift(hook, sandbox):
    """Edits between page reads move trades out of the window: offset pages skip trades, the scroll does not."""
    expected = [t["tradeNo"] for t in in_week(sandbox)]
    later = datetime(2025, 6, 20, tzinfo=BEIJING)
    sandbox.trades.modify_during_paging(after_calls=1, count=5, modified_at=later, sellerMemo="移出窗口")
    read, calls = scroll(hook, {**WEEK, "fields": f"{HEADER},scrollId"})
    assert read == expected and calls == len(expected) // 50 + 1
    assert [t["tradeNo"] for t in in_week(sandbox)] == [n for n in expected if n not in expected[:5]]

    restart = [t["tradeNo"] for t in in_week(sandbox)]
    sandbox.trades.modify_during_paging(after_page=0, count=5, modified_at=later)
    shifted = offset(hook, {**WEEK, "fields": "tradeNo"})
    assert len(shifted) == len(restart) - 5 and set(restart) - set(shifted) == set(restart[50:55])


def test_a_scroll_shows_trades_as_they_were_when_it_began(hook, sandbox):
    numbers = [t["tradeNo"] for t in in_week(sandbox)]
    first = hook.call(TRADES_METHOD, {**WEEK, "fields": f"{HEADER},scrollId", "pageSize": 50, "scrollId": ""})
    sandbox.trades.edit_trade(numbers[60], sellerMemo="滚动之后改")
    second = hook.call(TRADES_METHOD, {"fields": f"{HEADER},scrollId", "pageSize": 50, "scrollId": first["scrollId"],
                                       "pageIndex": 7})  # pageIndex is ignored while scrolling
    assert [t["tradeNo"] for t in second["trades"]] == numbers[50:100]
    assert second["trades"][10]["sellerMemo"] != "滚动之后改"


def test_scroll_ids_are_replayable_expire_and_can_be_expired(hook, sandbox):
    biz = {**WEEK, "fields": "tradeNo,scrollId", "pageSize": 20}
    first = hook.call(TRADES_METHOD, {**biz, "scrollId": ""})
    second = hook.call(TRADES_METHOD, {**biz, "scrollId": first["scrollId"]})
    again = hook.call(TRADES_METHOD, {**biz, "scrollId": first["scrollId"]})  # a retried call: the same page
    assert again["trades"] == second["trades"] and again["scrollId"] != second["scrollId"]

    def expired(scroll_id: str) -> JikeyunError:
        with pytest.raises(JikeyunError) as error:
            hook.call(TRADES_METHOD, {**biz, "scrollId": scroll_id})
        sub_code, msg = SCROLL_EXPIRED
        assert (error.value.sub_code, error.value.msg) == (sub_code, f"[{sub_code}]{msg}")
        return error.value

    assert "made up" in expired("no-such-scroll").msg
    sandbox.trades.scroll_replay = False
    try:
        expired(first["scrollId"])
    finally:
        sandbox.trades.scroll_replay = True
    sandbox.advance_clock(sandbox.trades.scroll_idle + timedelta(seconds=1))  # idle too long on the sandbox's clock
    try:
        expired(again["scrollId"])
    finally:
        sandbox.clock.reset()
    sandbox.trades.scroll_max_uses = 2
    try:
        fresh = hook.call(TRADES_METHOD, {**biz, "scrollId": ""})
        fresh = hook.call(TRADES_METHOD, {**biz, "scrollId": fresh["scrollId"]})
        expired(fresh["scrollId"])
    finally:
        sandbox.trades.scroll_max_uses = None
    fresh = hook.call(TRADES_METHOD, {**biz, "scrollId": ""})
    assert control(sandbox, "expire-scrolls") >= 1
    expired(fresh["scrollId"])


@pytest.mark.parametrize("location", ["data", "rows", "last_row"])
def test_where_the_scroll_id_comes_back_is_configurable(hook, sandbox, location):
    sandbox.trades.scroll_id_location = location
    try:
        data = hook.call(TRADES_METHOD, {**WEEK, "fields": "tradeNo,scrollId", "pageSize": 5, "scrollId": ""})
        unlisted = hook.call(TRADES_METHOD, {**WEEK, "fields": "tradeNo", "pageSize": 5, "scrollId": ""})
    finally:
        sandbox.trades.scroll_id_location = "data"
    on_rows = [t.get("scrollId") for t in data["trades"]]
    if location == "data":
        assert data["scrollId"] and on_rows == [None] * 5
    elif location == "rows":
        assert "scrollId" not in data and len(set(on_rows)) == 1 and on_rows[0]
    else:
        assert "scrollId" not in data and on_rows[:4] == [None] * 4 and on_rows[4]
    assert "scrollId" not in unlisted and all("scrollId" not in t for t in unlisted["trades"])  # listed in fields only


def test_shop_code_key_and_long_ids_as_numbers(hook, sandbox):
    biz = {**WEEK, "fields": "tradeId,shopId,shopcode,shopCode,goodsDetail.subTradeId", "pageSize": 3}
    plain = hook.call(TRADES_METHOD, biz)["trades"][0]
    assert set(plain) == {"tradeId", "shopId", "shopcode", "goodsDetail"} and isinstance(plain["tradeId"], str)
    sandbox.trades.shop_code_key, sandbox.trades.ids_as_numbers = "shopCode", True
    try:
        renamed = hook.call(TRADES_METHOD, biz)["trades"][0]
    finally:
        sandbox.trades.shop_code_key, sandbox.trades.ids_as_numbers = "shopcode", False
    assert set(renamed) == {"tradeId", "shopId", "shopCode", "goodsDetail"} and renamed["shopCode"] == plain["shopcode"]
    assert renamed["tradeId"] == int(plain["tradeId"])
    assert renamed["goodsDetail"][0]["subTradeId"] == int(plain["goodsDetail"][0]["subTradeId"])


# -- scripting ----------------------------------------------------------------------------------------------------
def test_a_trade_ships_completes_cancels_and_is_deleted(hook, sandbox):
    moment = datetime(2025, 7, 1, 9, tzinfo=BEIJING)
    big = sandbox.trades.add_trade(lines=200, modified_at=moment, sellerMemo="两百行")
    number = big["tradeNo"]
    assert big["tradeStatus"] == 4110 and big["consignTime"] is None and big["gmtModified"] == "2025-07-01 09:00:00"
    read = hook.call(TRADES_METHOD, {"tradeNo": number, "fields": "tradeNo,sellerMemo,goodsDetail.barcode"})["trades"]
    assert len(read) == 1 and len(read[0]["goodsDetail"]) == 200 and read[0]["sellerMemo"] == "两百行"
    skus = {r["skuBarcode"] for r in sandbox.goods.records.values() if not r["isDelete"]}
    assert {line["barcode"] for line in read[0]["goodsDetail"]} <= skus

    shipped = sandbox.trades.ship(number, at=moment + timedelta(hours=5))
    assert (shipped["tradeStatus"], shipped["consignTime"], shipped["gmtModified"]) == (
        6000, "2025-07-01 14:00:00", "2025-07-01 14:00:00")
    assert shipped["stockoutNo"] and shipped["mainPostid"]
    batches = [b for line in shipped["goodsDetail"] for b in line.get("goodsDelivery", [])]
    assert all(b["productionDate"] < "2025-07-01" < b["expirationDate"] for b in batches)
    done = sandbox.trades.complete(number, at=moment + timedelta(days=3))
    assert (done["tradeStatus"], done["completeTime"]) == (9090, "2025-07-04 09:00:00")
    with pytest.raises(ValueError):
        sandbox.trades.cancel(number)
    other = sandbox.trades.add_trade(lines=[{"barcode": next(iter(sorted(skus))), "sellCount": 3, "sellPrice": 10}],
                                     modified_at=moment)
    assert (other["totalFee"], other["goodsDetail"][0]["sellTotal"]) == (30.0, 30.0)
    line = other["goodsDetail"][0]["subTradeId"]
    edited = sandbox.trades.edit_line(other["tradeNo"], line, sellCount=5, modified_at=moment + timedelta(hours=1))
    assert (edited["totalFee"], edited["tradeCount"], edited["gmtModified"]) == (50.0, 5, "2025-07-01 10:00:00")
    cancelled = sandbox.trades.cancel(other["tradeNo"], at=moment + timedelta(hours=2))
    assert (cancelled["tradeStatus"], cancelled["tradeStatusExplain"]) == (5010, "已取消")
    with pytest.raises(ValueError):
        sandbox.trades.ship(other["tradeNo"])
    assert sandbox.trades.delete(other["tradeNo"])["isDelete"] == 1
    with pytest.raises(ValueError):
        sandbox.trades.edit_trade(number, goodsDetail=[])


def test_trade_scripting_over_http(sandbox):
    added = control(sandbox, "add-trade", {"lines": 2, "status": 4110, "modified_at": "2025-07-10T10:00:00+08:00"})
    number = added["tradeNo"]
    assert len(added["goodsDetail"]) == 2 and added["gmtModified"] == "2025-07-10 10:00:00"
    assert control(sandbox, "edit-trade", {"trade_no": number, "sellerMemo": "备注"})["sellerMemo"] == "备注"
    line = added["goodsDetail"][0]["subTradeId"]
    assert control(sandbox, "edit-line", {"trade_no": number, "sub_trade_id": line, "goodsMemo": "行备注"})[
        "goodsDetail"][0]["goodsMemo"] == "行备注"
    shipped = control(sandbox, "ship-trade", {"trade_no": number, "at": "2025-07-10T12:00:00+08:00"})
    assert (shipped["tradeStatus"], shipped["consignTime"]) == (6000, "2025-07-10 12:00:00")
    assert control(sandbox, "complete-trade", {"trade_no": number})["tradeStatus"] == 9090
    second = control(sandbox, "add-trade", {"modified_at": "2025-07-10T10:00:00+08:00"})["tradeNo"]
    assert control(sandbox, "cancel-trade", {"trade_no": second})["tradeStatus"] == 5010
    assert control(sandbox, "delete-trade", {"trade_no": second})["isDelete"] == 1
    control(sandbox, "modify-trades-during-paging", {"after_calls": 10**6, "action": "ship"})
    assert len(control(sandbox, "trades")) == len(sandbox.trades.records)
    assert "cannot ship" in control_refused(sandbox, "ship-trade", {"trade_no": second})
    assert "no trade" in control_refused(sandbox, "complete-trade", {"trade_no": "JY-NONE"})
    assert parse_wire_time(wire_time(1_751_342_400_000)) == 1_751_342_400_000
