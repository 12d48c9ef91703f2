"""Conformance with a client nobody here wrote: qdata-adapter-jky, the adapter of the hosted platform this package
replaces (async, httpx), reads warehouses, goods and trades from the sandbox.

What qdata sends differs from the reference in ways these tests pin down: it pages with ``pageNo`` from 1 (the
sandbox, like the reference, knows only the 0-based ``pageIndex``, so qdata always gets the first page) and stops
after one page; it passes ``fields`` and windows through untouched (so it needs them from its caller); and it turns
any ``code: 0`` answer into an empty result, so a refused call (no ``fields``, a window over 7 days, an expired
timestamp) looks like "no data" to it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
import qdata_adapter_jky as qdata_jky  # test-only dependency, pinned in setup.cfg [test]
from qdata_adapter.context import ConnectorContext

from jikeyun_kingdee.sandbox.jikeyun import BAD_PARAMETER, BEIJING, TIMESTAMP_EXPIRED, JikeyunSandbox
from jikeyun_kingdee.sandbox.jikeyun_goods import GOODS_METHOD
from jikeyun_kingdee.sandbox.jikeyun_trades import TRADES_METHOD


@pytest.fixture
def host_timezone(monkeypatch: pytest.MonkeyPatch):
    """qdata signs with ``time.strftime`` — the host's local time — so it only works on a UTC+8 host."""

    def use(zone: str) -> None:
        monkeypatch.setenv("TZ", zone)
        time.tzset()

    yield use
    monkeypatch.undo()
    time.tzset()


@pytest.fixture(scope="module")
def catalogue_sandbox() -> Iterator[JikeyunSandbox]:
    """Goods (about 250 SKUs) and 300 trades over June 2025, shared by the goods and trades tests below."""
    june = datetime(2025, 6, 1, tzinfo=BEIJING), datetime(2025, 7, 1, tzinfo=BEIJING)
    with JikeyunSandbox(warehouses=10, goods=100, trades=300, seed=21, modified_from=june[0],
                        modified_to=june[1]) as server:
        yield server


def read_with_qdata(sandbox, page_size: int, method: str = "erp.warehouse.get",
                    filters: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    context = ConnectorContext(
        connector_id="conformance", app_software_code="jky", base_url=f"{sandbox.url}/open/openapi/do",
        auth_config={"AppKey": sandbox.appkey, "AppSecret": sandbox.appsecret, "token": "isv", "version": "v1.0"},
        retry_count=0,
    )

    async def read() -> list[dict[str, Any]]:
        adapter = qdata_jky.JkyAdapter(context)
        await adapter.initialize()
        try:
            sent = {"includeDeleteAndBlockup": 1} if filters is None else filters
            return [item async for item in adapter.list_objects(method, sent, page_size)]
        finally:
            await adapter.cleanup()

    return asyncio.run(read())


def test_qdata_reads_all_warehouses_from_the_sandbox(make_sandbox, host_timezone):
    sandbox = make_sandbox(warehouses=150)
    host_timezone("Asia/Shanghai")
    records = read_with_qdata(sandbox, page_size=200)
    assert sorted(records, key=lambda r: r["warehouseId"]) == sorted(sandbox.records.values(),
                                                                     key=lambda r: r["warehouseId"])
    sent = sandbox.last_request["params"]
    assert sent["token"] == "isv" and sandbox.calls["erp.warehouse.get"] == 1


def test_qdata_reads_only_the_first_page(make_sandbox, host_timezone):
    """Why this package exists: qdata sends ``pageNo`` (not ``pageIndex``) and stops after one page."""
    sandbox = make_sandbox(warehouses=250)
    host_timezone("Asia/Shanghai")
    assert len(read_with_qdata(sandbox, page_size=200)) == 200


def test_qdata_on_a_utc_host_is_rejected_and_reports_nothing(make_sandbox, host_timezone):
    """On a UTC host the sandbox rejects qdata's timestamp, and qdata turns ``code: 0`` into an empty result."""
    sandbox = make_sandbox(warehouses=5)
    host_timezone("UTC")
    assert read_with_qdata(sandbox, page_size=50) == []
    assert sandbox.calls[f"erp.warehouse.get:{TIMESTAMP_EXPIRED}"] == 1


def test_qdata_reads_the_first_goods_page_in_sku_id_order(catalogue_sandbox, host_timezone):
    sandbox = catalogue_sandbox
    host_timezone("Asia/Shanghai")
    records = read_with_qdata(sandbox, 200, GOODS_METHOD, {"isQueryDelete": 1})
    assert records == [sandbox.goods.records[i] for i in sorted(sandbox.goods.records)][:200]
    assert len(sandbox.goods.records) > 200  # qdata's one page is not the whole catalogue
    sent = sandbox.last_request["params"]
    assert '"pageNo":1' in sent["bizcontent"].replace(" ", "") and "pageIndex" not in sent["bizcontent"]
    window = {"startDateModifiedSku": "2025-06-10 00:00:00", "endDateModifiedSku": "2025-06-12 00:00:00"}
    in_window = read_with_qdata(sandbox, 200, GOODS_METHOD, window)
    low, high = (round(datetime(2025, 6, d, tzinfo=BEIJING).timestamp() * 1000) for d in (10, 12))
    assert in_window == [r for r in (sandbox.goods.records[i] for i in sorted(sandbox.goods.records))
                         if low <= r["skuGmtModified"] <= high and not r["isDelete"]]


def test_qdata_reads_trades_only_with_fields_and_a_short_window(catalogue_sandbox, host_timezone):
    sandbox = catalogue_sandbox
    host_timezone("Asia/Shanghai")
    window = {"startModified": "2025-06-01 00:00:00", "endModified": "2025-06-08 00:00:00"}
    trades = read_with_qdata(sandbox, 50, TRADES_METHOD, {**window, "fields": "tradeNo,goodsDetail.barcode"})
    stored = [t for t in (sandbox.trades.records[i] for i in sorted(sandbox.trades.records))
              if window["startModified"] <= t["gmtModified"] <= window["endModified"]]
    assert len(stored) > 50 and trades == [
        {"tradeNo": t["tradeNo"], "goodsDetail": [{"barcode": line["barcode"]} for line in t["goodsDetail"]]}
        for t in stored[:50]]
    refused = sandbox.calls[f"{TRADES_METHOD}:{BAD_PARAMETER}"]
    assert read_with_qdata(sandbox, 50, TRADES_METHOD, window) == []  # no fields: refused, read as "no data"
    too_long = {"startModified": "2025-06-01 00:00:00", "endModified": "2025-06-09 00:00:00", "fields": "tradeNo"}
    assert read_with_qdata(sandbox, 50, TRADES_METHOD, too_long) == []
    assert sandbox.calls[f"{TRADES_METHOD}:{BAD_PARAMETER}"] == refused + 2
