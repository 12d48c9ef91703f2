"""erp.storage.goodslist in the Jikeyun sandbox, over real HTTP: the catalogue generator, one record per SKU, both
modification windows ANDed, the maxSkuId cursor, isQueryDelete, goods-level versus SKU-level edits, edits between
page reads, the daily quota and its reset when the sandbox's clock crosses Beijing midnight, scripting over HTTP."""

from __future__ import annotations

import argparse
import math
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pendulum
import pytest

from jikeyun_kingdee.hooks.jikeyun import JikeyunFatalError, JikeyunHook, JikeyunQuotaExhausted
from jikeyun_kingdee.sandbox.jikeyun import (
    BEIJING,
    DAILY_QUOTAS,
    DEFAULT_FROM,
    DEFAULT_TO,
    QUOTA_EXHAUSTED,
    JikeyunSandbox,
    add_arguments,
    build_server,
)
from jikeyun_kingdee.sandbox.jikeyun_common import ean13
from jikeyun_kingdee.sandbox.jikeyun_goods import GOODS_METHOD, generate_catalogue

from tests.support.jikeyun import control, control_refused, raw_call
from tests.support.sandboxes import connected_jikeyun

SECRET = "goods-sandbox-secret"
UNITS = {"个", "件", "瓶", "箱", "千克", "台", "双", "袋"}


@pytest.fixture(scope="module")
def sandbox() -> Iterator[JikeyunSandbox]:
    """500 generated goods (about 1,250 SKUs) over 2025, shared by the module; tests that edit use later days."""
    with pytest.MonkeyPatch.context() as patch, connected_jikeyun(patch, SECRET, warehouses=10, goods=500, seed=5) as s:
        yield s


@pytest.fixture(scope="module")
def hook(sandbox: JikeyunSandbox) -> JikeyunHook:
    return JikeyunHook("jikeyun_default", retry_limit=1)


def day(year: int, month: int, dom: int, hour: int = 0) -> datetime:
    return datetime(year, month, dom, hour, tzinfo=BEIJING)


def text(moment: datetime) -> str:
    return pendulum.instance(moment).in_timezone(BEIJING).format("YYYY-MM-DD HH:mm:ss")


def ms(moment: datetime) -> int:
    return round(moment.timestamp() * 1000)


def goods_window(start: datetime, end: datetime) -> dict[str, str]:
    return {"startDateModifiedGoods": text(start), "endDateModifiedGoods": text(end)}


def sku_window(start: datetime, end: datetime) -> dict[str, str]:
    return {"startDateModifiedSku": text(start), "endDateModifiedSku": text(end)}


def read_all(hook: JikeyunHook, biz: dict[str, Any], page_size: int = 200) -> tuple[list[dict[str, Any]], int]:
    """Offset pages until a short one: (records, calls)."""
    records, calls = [], 0
    while True:
        page = hook.call(GOODS_METHOD, {**biz, "pageIndex": calls, "pageSize": page_size})["goods"]
        calls += 1
        records += page
        if len(page) < page_size:
            return records, calls


# -- the catalogue generator --------------------------------------------------------------------------------------
def test_catalogue_is_deterministic_and_realistic():
    records = generate_catalogue(2000, seed=3)
    assert records == generate_catalogue(2000, seed=3) != generate_catalogue(2000, seed=4)
    per_goods = Counter(r["goodsNo"] for r in records)
    assert len(per_goods) == 2000 and set(per_goods.values()) == {1, 2, 3, 4, 5}
    assert 0.3 < sum(n == 1 for n in per_goods.values()) / 2000 < 0.5
    barcodes = [r["skuBarcode"] for r in records]
    assert len(set(barcodes)) == len(records) and all(ean13(b[:12]) == b for b in barcodes)
    assert len({r["skuId"] for r in records}) == len(records) and all(r["skuId"].isdigit() for r in records)
    assert {r["unitName"] for r in records} == UNITS
    goods = {r["goodsNo"]: r for r in records}.values()
    assert 0.03 < sum(g["isBlockup"] for g in goods) / 2000 < 0.07
    assert 0.01 < sum(g["isDelete"] for g in goods) / 2000 < 0.035
    assert 0.025 < sum(r["skuIsBlockup"] for r in records) / len(records) < 0.055
    low, high = ms(DEFAULT_FROM), ms(DEFAULT_TO)
    for record in records:
        assert low <= record["goodsGmtModified"] < high and low <= record["skuGmtModified"] < high
        modified = min(record["goodsGmtModified"], record["skuGmtModified"])
        assert record["gmtCreate"] <= record["skuGmtCreate"] <= modified
        assert record["goodsUnit"][0] == {"unitName": record["unitName"], "countRate": 1, "isBaseUnit": 1}
    multi = [no for no, n in per_goods.items() if n > 1]
    sku_names = {r["skuName"] for r in records if r["goodsNo"] == multi[0]}
    assert len(sku_names) == per_goods[multi[0]] and "默认规格" not in sku_names


def test_catalogue_sized_by_skus():
    assert len(generate_catalogue(skus=1234, seed=9)) == 1234
    with pytest.raises(ValueError):
        generate_catalogue(10, skus=10)


# -- the method ---------------------------------------------------------------------------------------------------
def test_one_record_per_sku_ordered_by_sku_id_with_the_live_success_answer(sandbox):
    envelope = raw_call(sandbox, GOODS_METHOD, {"pageIndex": 0, "pageSize": 200, "isQueryDelete": 1})
    assert (envelope["code"], envelope["subCode"], envelope["msg"]) == (200, "0030000004", "操作成功")
    page = envelope["result"]["data"]["goods"]
    assert len(page) == 200 and [int(r["skuId"]) for r in page] == sorted(int(r["skuId"]) for r in page)
    assert page == [sandbox.goods.records[int(r["skuId"])] for r in page]
    first = page[0]
    assert isinstance(first["goodsId"], str) and isinstance(first["skuGmtModified"], int)
    assert {r["goodsNo"] for r in page} < {r["goodsNo"] for r in sandbox.goods.records.values()}


@pytest.mark.parametrize("biz", [{"pageSize": 201}, {"pageSize": 0}, {"pageIndex": -1}, {"pageSize": "x"},
                                 {"maxSkuId": "abc"}, {"startDateModifiedSku": "yesterday"}, {"isBlockup": "x"}])
def test_bad_parameters_are_refused(hook, biz):
    with pytest.raises(JikeyunFatalError) as refused:
        hook.call(GOODS_METHOD, {"pageIndex": 0, "pageSize": 50, **biz})
    assert refused.value.sub_code == "0050030002"


def test_max_sku_id_reads_every_sku_once_in_about_n_over_p_calls(sandbox, hook):
    """The bootstrap mode: keep pageIndex 0, send the last skuId seen, stop on a short page."""
    for include_deleted in (0, 1):
        expected = {sku_id for sku_id, r in sandbox.goods.records.items() if include_deleted or not r["isDelete"]}
        seen, cursor, calls = [], 0, 0
        while True:
            page = hook.call(GOODS_METHOD, {"pageIndex": 0, "pageSize": 200, "maxSkuId": cursor,
                                            "isQueryDelete": include_deleted})["goods"]
            calls += 1
            seen += [int(r["skuId"]) for r in page]
            if len(page) < 200:
                break
            cursor = page[-1]["skuId"]  # a string, as the records carry it: compared as a number
        assert seen == sorted(expected) and calls == math.ceil((len(expected) + 1) / 200)
    assert any(r["isDelete"] for r in sandbox.goods.records.values())


def test_goods_level_and_sku_level_edits_each_move_their_own_time(sandbox, hook):
    goods = sandbox.goods.add_goods(skus=3, modified_at=day(2030, 1, 1))
    goods_no, sku_ids = goods[0]["goodsNo"], [r["skuId"] for r in goods]
    renamed = sandbox.goods.edit_goods(goods_no, modified_at=day(2030, 1, 2), goodsName="改名货品", cateName="新分类")
    assert [r["skuId"] for r in renamed] == sku_ids
    assert {(r["goodsName"], r["cateName"], r["goodsGmtModified"], r["skuGmtModified"]) for r in renamed} == {
        ("改名货品", "新分类", ms(day(2030, 1, 2)), ms(day(2030, 1, 1)))}
    sku = sandbox.goods.edit_sku(sku_ids[1], modified_at=day(2030, 1, 3), skuName="大号", skuBarcode="6901234567892",
                                 unitName="箱")
    assert (sku["goodsGmtModified"], sku["skuGmtModified"]) == (ms(day(2030, 1, 2)), ms(day(2030, 1, 3)))
    assert sku["goodsUnit"][0]["unitName"] == "箱" and sku["goodsName"] == "改名货品"
    others = [sandbox.goods.sku(s) for s in (sku_ids[0], sku_ids[2])]
    assert {(r["skuName"], r["skuGmtModified"]) for r in others} == {("规格1", ms(day(2030, 1, 1))),
                                                                     ("规格3", ms(day(2030, 1, 1)))}
    sandbox.goods.block_goods(goods_no, modified_at=day(2030, 1, 4))
    sandbox.goods.block_sku(sku_ids[2], modified_at=day(2030, 1, 5))
    page = {"pageIndex": 0, "pageSize": 50}
    by_goods = hook.call(GOODS_METHOD, {**page, **goods_window(day(2030, 1, 4), day(2030, 1, 4))})
    by_sku = hook.call(GOODS_METHOD, {**page, **sku_window(day(2030, 1, 5), day(2030, 1, 5))})
    assert [r["skuId"] for r in by_goods["goods"]] == sku_ids and {r["isBlockup"] for r in by_goods["goods"]} == {1}
    assert [(r["skuId"], r["skuIsBlockup"]) for r in by_sku["goods"]] == [(sku_ids[2], 1)]
    with pytest.raises(ValueError, match="skuName"):
        sandbox.goods.edit_goods(goods_no, skuName="规格名是规格级")
    with pytest.raises(ValueError, match="goodsName"):
        sandbox.goods.edit_sku(sku_ids[0], goodsName="货品名是货品级")
    with pytest.raises(ValueError, match="exists"):
        sandbox.goods.edit_sku(sku_ids[0], skuBarcode="6901234567892")


def test_both_windows_sent_are_anded(sandbox, hook):
    """One level's window alone misses the other level's edits: clients read each in its own pass."""
    only_goods = sandbox.goods.add_goods(skus=2, modified_at=day(2031, 3, 1))[0]["goodsNo"]
    only_sku = sandbox.goods.add_goods(skus=2, modified_at=day(2031, 3, 1))[1]["skuId"]
    both = sandbox.goods.add_goods(skus=2, modified_at=day(2031, 3, 1))
    sandbox.goods.edit_goods(only_goods, modified_at=day(2031, 3, 10))
    sandbox.goods.edit_sku(only_sku, modified_at=day(2031, 3, 10))
    sandbox.goods.edit_goods(both[0]["goodsNo"], modified_at=day(2031, 3, 10))
    sandbox.goods.edit_sku(both[0]["skuId"], modified_at=day(2031, 3, 10))
    window = (day(2031, 3, 10), day(2031, 3, 11))

    def read(**biz: str) -> set[str]:
        return {r["skuId"] for r in hook.call(GOODS_METHOD, {"pageIndex": 0, "pageSize": 200, **biz})["goods"]}

    goods_level = read(**goods_window(*window))
    sku_level = read(**sku_window(*window))
    assert goods_level == {r["skuId"] for r in sandbox.goods.goods_skus(only_goods)} | {r["skuId"] for r in both}
    assert sku_level == {only_sku, both[0]["skuId"]}
    assert read(**goods_window(*window), **sku_window(*window)) == {both[0]["skuId"]}


def test_windows_take_epoch_ms_and_the_creation_window(sandbox, hook):
    added = sandbox.goods.add_goods(skus=2, modified_at=day(2032, 5, 5, 10))
    start, end = ms(day(2032, 5, 5)), ms(day(2032, 5, 6))
    by_ms = hook.call(GOODS_METHOD, {"pageIndex": 0, "pageSize": 50, "startDateModifiedSku": start,
                                     "endDateModifiedSku": str(end)})["goods"]
    created = hook.call(GOODS_METHOD, {"pageIndex": 0, "pageSize": 50, "startDate": text(day(2032, 5, 5)),
                                       "endDate": text(day(2032, 5, 6))})["goods"]
    assert by_ms == created == added


def test_window_ends_are_inclusive_or_exclusive_as_configured():
    for start_inclusive, end_inclusive in ((True, True), (False, False)):
        with JikeyunSandbox(warehouses=0, start_inclusive=start_inclusive, end_inclusive=end_inclusive) as server:
            edge_start = server.goods.add_goods(modified_at=day(2030, 6, 1, 10))[0]["skuId"]
            edge_end = server.goods.add_goods(modified_at=day(2030, 6, 1, 12))[0]["skuId"]
            inside = server.goods.add_goods(modified_at=day(2030, 6, 1, 11))[0]["skuId"]
            page = server.goods.handle({"pageIndex": 0, "pageSize": 10, **sku_window(day(2030, 6, 1, 10),
                                                                                     day(2030, 6, 1, 12))})
            expected = {edge_start, inside, edge_end} if start_inclusive else {inside}
            assert {r["skuId"] for r in page["goods"]} == expected


def test_cursor_with_a_window_is_configurable(sandbox, hook):
    added = [sandbox.goods.add_goods(skus=1, modified_at=day(2033, 1, 1, h))[0]["skuId"] for h in range(5)]
    biz = {"pageIndex": 0, "pageSize": 50, "maxSkuId": added[1], **sku_window(day(2033, 1, 1), day(2033, 1, 2))}
    assert [r["skuId"] for r in hook.call(GOODS_METHOD, biz)["goods"]] == added[2:]
    sandbox.goods.cursor_with_window = False
    try:
        assert [r["skuId"] for r in hook.call(GOODS_METHOD, biz)["goods"]] == added
    finally:
        sandbox.goods.cursor_with_window = True


def test_deleted_goods_only_with_is_query_delete_and_the_flag_filters(sandbox, hook):
    goods = sandbox.goods.add_goods(skus=2, modified_at=day(2034, 2, 2))
    sandbox.goods.delete_goods(goods[0]["goodsNo"], modified_at=day(2034, 2, 3))
    window = goods_window(day(2034, 2, 3), day(2034, 2, 4))
    assert hook.call(GOODS_METHOD, {"pageIndex": 0, "pageSize": 50, **window})["goods"] == []
    deleted = hook.call(GOODS_METHOD, {"pageIndex": 0, "pageSize": 50, "isQueryDelete": 1, **window})["goods"]
    assert [(r["skuId"], r["isDelete"]) for r in deleted] == [(g["skuId"], 1) for g in goods]
    blocked, _ = read_all(hook, {"isBlockup": 1, "skuIsBlockup": 0})
    assert blocked and all(r["isBlockup"] == 1 and r["skuIsBlockup"] == 0 for r in blocked)
    numbers = sorted(sandbox.goods.goods_nos)[:3]
    by_number = hook.call(GOODS_METHOD, {"pageIndex": 0, "pageSize": 50, "goodsNos": ",".join(numbers),
                                         "isQueryDelete": 1})["goods"]
    assert {r["goodsNo"] for r in by_number} == set(numbers)
    barcode = by_number[0]["skuBarcode"]
    assert [r["skuBarcode"] for r in hook.call(GOODS_METHOD, {"pageIndex": 0, "pageSize": 50, "skuBarcode": barcode,
                                                              "isQueryDelete": 1})["goods"]] == [barcode]


def test_offset_pages_lose_an_edited_record_the_sku_id_cursor_does_not(sandbox, hook):
    """An edit between two page reads moves records out of the window: offset pages shift, a cursor does not."""
    moment = day(2035, 7, 7)
    chosen = sandbox.goods.bulk_edit_skus(modified_at=moment, count=250)
    window = {**sku_window(moment, moment), "isQueryDelete": 1}
    sandbox.goods.modify_during_paging(after_page=0, count=5, modified_at=day(2035, 8, 1))
    offset, _ = read_all(hook, window, page_size=100)
    assert len(offset) == 245 and {r["skuId"] for r in offset} == set(chosen) - set(chosen[100:105])

    sandbox.goods.bulk_edit_skus(modified_at=moment, sku_ids=chosen)
    sandbox.goods.modify_during_paging(after_calls=1, count=5, modified_at=day(2035, 8, 1))
    cursor, read = 0, []
    while True:
        page = hook.call(GOODS_METHOD, {"pageIndex": 0, "pageSize": 100, "maxSkuId": cursor, **window})["goods"]
        read += [r["skuId"] for r in page]
        if len(page) < 100:
            break
        cursor = page[-1]["skuId"]
    assert read == chosen


def test_a_goods_level_edit_between_pages_changes_every_sku_of_the_goods(sandbox, hook):
    goods = sandbox.goods.add_goods(skus=4, modified_at=day(2036, 1, 1))
    sandbox.goods.modify_during_paging(after_calls=1, level="goods", count=1, modified_at=day(2036, 1, 2),
                                       brandName="新品牌")
    first = hook.call(GOODS_METHOD, {"pageIndex": 0, "pageSize": 1, **goods_window(day(2036, 1, 1), day(2036, 1, 1))})
    assert first["goods"][0]["brandName"] != "新品牌"  # answered before the edit
    after = sandbox.goods.goods_skus(goods[0]["goodsNo"])
    assert {(r["brandName"], r["goodsGmtModified"], r["skuGmtModified"]) for r in after} == {
        ("新品牌", ms(day(2036, 1, 2)), ms(day(2036, 1, 1)))}
    with pytest.raises(ValueError):
        sandbox.goods.modify_during_paging(after_calls=1, level="goods", skuName="x")


# -- quota and clock ----------------------------------------------------------------------------------------------
def test_daily_quota_refuses_and_resets_at_beijing_midnight_of_the_sandbox_clock(monkeypatch):
    with connected_jikeyun(monkeypatch, SECRET, warehouses=3, goods=5) as server:
        assert server.daily_quota == dict(DAILY_QUOTAS) == {GOODS_METHOD: 1000}
        hook = JikeyunHook("jikeyun_default", retry_limit=1)
        control(server, "daily-quota", {"method": GOODS_METHOD, "calls": 3})
        midnight = pendulum.instance(server.clock.now()).in_timezone(BEIJING).add(days=1).start_of("day")
        for _ in range(3):
            hook.call(GOODS_METHOD, {"pageIndex": 0, "pageSize": 10})
        with pytest.raises(JikeyunQuotaExhausted) as spent:
            hook.call(GOODS_METHOD, {"pageIndex": 0, "pageSize": 10})
        assert spent.value.sub_code == QUOTA_EXHAUSTED and "额度不足" in spent.value.msg
        hook.call("erp.warehouse.get", {"pageIndex": 0, "pageSize": 10})  # another method, another quota
        assert control(server, "calls-today") == {GOODS_METHOD: 3, "erp.warehouse.get": 1}

        control(server, "travel", {"to": midnight.subtract(seconds=2).isoformat()})
        with pytest.raises(JikeyunQuotaExhausted):
            hook.call(GOODS_METHOD, {"pageIndex": 0, "pageSize": 10})
        control(server, "advance-clock", {"seconds": 3})  # the signature still goes by real time
        assert control(server, "clock")["beijing_day"] == midnight.date().isoformat()
        assert len(hook.call(GOODS_METHOD, {"pageIndex": 0, "pageSize": 10})["goods"]) == 10
        assert server.calls_today() == {GOODS_METHOD: 1}
        server.set_daily_quota(GOODS_METHOD, None)
        for _ in range(5):
            hook.call(GOODS_METHOD, {"pageIndex": 0, "pageSize": 1})
        assert server.calls_today() == {GOODS_METHOD: 6}


def test_edits_default_to_the_sandbox_clock():
    with JikeyunSandbox(warehouses=1) as server:
        server.travel(day(2040, 2, 2, 12))
        added = server.goods.add_goods()
        assert abs(added[0]["skuGmtModified"] - ms(day(2040, 2, 2, 12))) < 60_000
        server.advance_clock(timedelta(days=1))
        edited = server.goods.edit_goods(added[0]["goodsNo"], goodsMemo="次日")
        assert abs(edited[0]["goodsGmtModified"] - ms(day(2040, 2, 3, 12))) < 60_000


# -- scripting over HTTP and the command line ---------------------------------------------------------------------
def test_goods_scripting_over_http(sandbox):
    added = control(sandbox, "add-goods", {"skus": [{"skuName": "红色"}, {"skuName": "蓝色"}], "goodsName": "测试货品",
                                           "modified_at": "2037-01-01T10:00:00+08:00"})
    goods_no, sku_id = added[0]["goodsNo"], added[1]["skuId"]
    assert [r["skuName"] for r in added] == ["红色", "蓝色"] and added[0]["goodsGmtModified"] == ms(day(2037, 1, 1, 10))
    assert control(sandbox, "edit-goods", {"goods_no": goods_no, "goodsName": "新名"})[1]["goodsName"] == "新名"
    assert control(sandbox, "edit-sku", {"sku_id": sku_id, "retailPrice": 9.9})["retailPrice"] == 9.9
    assert {r["isBlockup"] for r in control(sandbox, "block-goods", {"goods_no": goods_no})} == {1}
    assert control(sandbox, "block-sku", {"sku_id": sku_id, "blocked": False})["skuIsBlockup"] == 0
    assert {r["isDelete"] for r in control(sandbox, "delete-goods", {"goods_no": goods_no})} == {1}
    edited = control(sandbox, "bulk-edit-skus", {"sku_ids": [sku_id], "modified_at": "2037-02-01T00:00:00+08:00",
                                                 "memo": "批量"})
    assert edited == [sku_id] and sandbox.goods.sku(sku_id)["skuGmtModified"] == ms(day(2037, 2, 1))
    assert control(sandbox, "bulk-edit-goods", {"goods_nos": [goods_no], "modified_at": "2037-02-02T00:00:00+08:00"})
    control(sandbox, "modify-goods-during-paging", {"after_calls": 1, "level": "goods", "goodsMemo": "翻页时改"})
    served = control(sandbox, "goods")
    assert len(served) == len(sandbox.goods.records) and served[0] == sandbox.goods.records[min(sandbox.goods.records)]
    assert "skuName" in control_refused(sandbox, "edit-goods", {"goods_no": goods_no, "skuName": "x"})
    assert "no goods" in control_refused(sandbox, "edit-goods", {"goods_no": "NO-SUCH", "goodsName": "x"})
    sandbox.goods.modify_during_paging(after_calls=10**6)  # leave no scripted edit to the next test


def test_command_line_options_for_goods():
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    server = build_server(parser.parse_args(["--warehouses", "3", "--goods", "4", "--trades", "0",
                                             "--goods-quota", "0", "--cursor-without-window"]))
    assert len(server.goods.goods_nos) == 4 and server.daily_quota == {} and not server.goods.cursor_with_window
    server = build_server(parser.parse_args(["--warehouses", "3", "--skus", "17", "--trades", "0"]))
    assert len(server.goods.records) == 17 and server.daily_quota == {GOODS_METHOD: 1000}
