"""Conformance with a client nobody here wrote: qdata-adapter-jky, the adapter of the hosted platform this package
replaces (async, httpx), reads warehouses from the sandbox."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
import qdata_adapter_jky as qdata_jky  # test-only dependency, pinned in setup.cfg [test]
from qdata_adapter.context import ConnectorContext

from jikeyun_kingdee.sandbox.jikeyun import TIMESTAMP_EXPIRED


@pytest.fixture
def host_timezone(monkeypatch: pytest.MonkeyPatch):
    """qdata signs with ``time.strftime`` — the host's local time — so it only works on a UTC+8 host."""

    def use(zone: str) -> None:
        monkeypatch.setenv("TZ", zone)
        time.tzset()

    yield use
    monkeypatch.undo()
    time.tzset()


def read_with_qdata(sandbox, page_size: int) -> list[dict[str, Any]]:
    context = ConnectorContext(
        connector_id="conformance", app_software_code="jky", base_url=f"{sandbox.url}/open/openapi/do",
        auth_config={"AppKey": sandbox.appkey, "AppSecret": sandbox.appsecret, "token": "isv", "version": "v1.0"},
        retry_count=0,
    )

    async def read() -> list[dict[str, Any]]:
        adapter = qdata_jky.JkyAdapter(context)
        await adapter.initialize()
        try:
            filters = {"includeDeleteAndBlockup": 1}
            return [item async for item in adapter.list_objects("erp.warehouse.get", filters, page_size)]
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
