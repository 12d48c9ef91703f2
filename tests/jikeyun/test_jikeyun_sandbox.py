"""The sandbox itself: dataset, scripting in-process, over HTTP and from the command line; the record models."""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone

import pytest
import requests

from jikeyun_kingdee.records import Warehouse, parse_jikeyun_time, to_epoch_ms
from jikeyun_kingdee.sandbox._http import round_trip_ms
from jikeyun_kingdee.sandbox.jikeyun import (
    DEFAULT_FROM,
    DEFAULT_TO,
    JikeyunSandbox,
    add_arguments,
    build_server,
    generate_warehouses,
)
from jikeyun_kingdee.sandbox.kingdee import KingdeeSandbox


def as_sent(warehouse: Warehouse) -> dict:
    """The record in Jikeyun's own shape: camelCase names, epoch-ms times, unset fields left out."""
    record = warehouse.model_dump(mode="json", by_alias=True, exclude_none=True)
    times = {"gmtCreate": warehouse.gmt_create, "gmtModified": warehouse.gmt_modified}
    return record | {alias: to_epoch_ms(moment) for alias, moment in times.items() if moment is not None}


def test_generated_dataset_is_deterministic_and_realistic():
    records = generate_warehouses(1000, seed=7)
    assert records == generate_warehouses(1000, seed=7) != generate_warehouses(1000, seed=8)
    assert len({r["warehouseCode"] for r in records}) == len({r["warehouseId"] for r in records}) == 1000
    assert 150 < sum(r["isBlockup"] for r in records) < 250 and 0 < sum(r["isDelete"] for r in records) < 50
    assert all(DEFAULT_FROM.timestamp() * 1000 <= r["gmtModified"] < DEFAULT_TO.timestamp() * 1000 for r in records)
    assert all(r["warehouseName"].endswith("仓") for r in records)
    assert all(as_sent(Warehouse.model_validate(r)) == {k: v for k, v in r.items() if v is not None}
               for r in records[:50])


def test_duplicate_codes_only_on_request(sandbox):
    code = next(iter(sandbox.warehouses))
    with pytest.raises(ValueError):
        sandbox.add_warehouse(warehouseCode=code)
    duplicate = sandbox.add_warehouse(warehouseCode=code, allow_duplicate_code=True)
    assert duplicate["warehouseId"] != sandbox.warehouses[code]["warehouseId"]
    assert len(sandbox.records) == 1001 and len(sandbox.warehouses) == 1000


def test_scripting_over_http(sandbox):
    def control(command: str, payload: dict) -> dict:
        answer = requests.post(f"{sandbox.url}/_sandbox/{command}", json=payload, timeout=5)
        assert answer.status_code == 200, answer.text
        return answer.json()["result"]

    added = control("add-warehouse", {"warehouseCode": "HTTP01", "warehouseName": "测试仓",
                                      "modified_at": "2025-07-01T12:00:00+08:00"})
    assert added["gmtModified"] == 1751342400000 and sandbox.warehouses["HTTP01"]["warehouseName"] == "测试仓"
    assert control("block-warehouse", {"code": "HTTP01"})["isBlockup"] == 1
    control("throttle", {"next_calls": 1})
    control("quota", {"method": "erp.warehouse.get", "calls": 5})
    control("modify-during-paging", {"after_page": 0, "code": "HTTP01"})
    assert sandbox.quota == {"erp.warehouse.get": 5} and sandbox._throttle_next == 1
    assert len(control("warehouses", {})) == 1001
    bad = requests.post(f"{sandbox.url}/_sandbox/no-such-command", json={}, timeout=5)
    assert bad.status_code == 400


def test_bulk_edit_and_edits_between_pages_over_http(sandbox):
    def control(command: str, payload: dict):
        answer = requests.post(f"{sandbox.url}/_sandbox/{command}", json=payload, timeout=5)
        assert answer.status_code == 200, answer.text
        return answer.json()["result"]

    codes = control("bulk-edit", {"count": 300, "modified_at": "2025-07-01T12:00:00+08:00", "warehouseName": "批量"})
    assert len(codes) == 300 and {sandbox.warehouses[c]["gmtModified"] for c in codes} == {1751342400000}
    control("modify-during-paging", {"after_calls": 2, "count": 3, "modified_at": "2026-01-01T00:00:00+08:00"})
    page = {"gmtModifiedStart": "2025-07-01 12:00:00", "gmtModifiedEnd": "2025-07-01 12:00:00", "pageSize": 100}
    first, second = (sandbox._warehouse_get({**page, "pageIndex": i}) for i in (0, 1))
    assert first[1] is None and second[1]["codes"] == [r["warehouseCode"] for r in second[0]["warehouseInfo"][:3]]
    with pytest.raises(ValueError):
        sandbox.modify_during_paging(after_page=0, after_calls=1)


def test_unsorted_from_the_command_line():
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert build_server(parser.parse_args(["--unsorted"])).sort_by_modified is False
    assert build_server(parser.parse_args([])).sort_by_modified is True


@pytest.mark.parametrize("kind", [JikeyunSandbox, KingdeeSandbox], ids=["jikeyun", "kingdee"])
def test_kept_alive_round_trip_does_not_wait_for_a_delayed_ack(kind):
    """Headers and body in one write, TCP_NODELAY: no ~40 ms stall per call on a kept-alive connection."""
    with kind() as server:
        assert round_trip_ms(server.url, n=30) < 20


def test_kept_alive_hook_call_does_not_wait_for_a_delayed_ack(connect, make_sandbox, make_hook):
    connect(make_sandbox(warehouses=0))  # an empty dataset: the time is the round trip, not the sandbox's work
    hook = make_hook()
    hook.call("erp.warehouse.get", {"pageIndex": 0, "pageSize": 200})  # opens the connection
    times = []
    for _ in range(30):
        began = time.perf_counter()
        hook.call("erp.warehouse.get", {"pageIndex": 0, "pageSize": 200})
        times.append((time.perf_counter() - began) * 1000)
    assert statistics.median(times) < 30  # a delayed ACK alone is about 40 ms; signing and logging take a few


def test_command_line_serves_and_scripts():
    server = subprocess.Popen(
        [sys.executable, "-m", "jikeyun_kingdee.sandbox", "serve", "jikeyun", "--warehouses", "10", "--end-exclusive"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    try:
        url = None
        assert server.stdout is not None  # stdout=PIPE
        for line in server.stdout:  # the printed banner, not the log line of the same text
            if match := re.fullmatch(r"jikeyun sandbox listening on (http://127\.0\.0\.1:\d+)", line.strip()):
                url = match.group(1)
                break
        assert url

        def cli(*args: str) -> dict:
            out = subprocess.run([sys.executable, "-m", "jikeyun_kingdee.sandbox", "control", url, *args],
                                 capture_output=True, text=True, check=True, timeout=30).stdout
            return json.loads(out)

        code = generate_warehouses(10, seed=7)[0]["warehouseCode"]  # the served dataset is deterministic
        changed = cli("modify-warehouse", json.dumps({"code": code, "warehouseName": "改名仓"}, ensure_ascii=False))
        assert changed["result"]["warehouseName"] == "改名仓"
        assert cli("faults", '{"status": [500]}')["result"]["status"] == [500]
        served = requests.post(f"{url}/_sandbox/warehouses", json={}, timeout=5).json()["result"]
        assert len(served) == 10 and {r["warehouseName"] for r in served if r["warehouseCode"] == code} == {"改名仓"}
    finally:
        server.terminate()
        server.wait(timeout=10)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (1631020179000, datetime(2021, 9, 7, 13, 9, 39, tzinfo=timezone.utc)),
        ("1631020179000", datetime(2021, 9, 7, 13, 9, 39, tzinfo=timezone.utc)),
        ("2021-09-07 21:09:39", datetime(2021, 9, 7, 13, 9, 39, tzinfo=timezone.utc)),
        ("2021-09-07T13:09:39Z", datetime(2021, 9, 7, 13, 9, 39, tzinfo=timezone.utc)),
        (datetime(2021, 9, 7, 21, 9, 39, tzinfo=timezone.utc).replace(tzinfo=None),  # naive: read as Beijing time
         datetime(2021, 9, 7, 13, 9, 39, tzinfo=timezone.utc)),
        (None, None),
    ],
)
def test_jikeyun_times_become_aware_datetimes(raw, expected):
    assert parse_jikeyun_time(raw) == expected


def test_warehouse_model_round_trips_and_keeps_unknown_fields():
    raw = {"warehouseId": 968606409259025152, "warehouseCode": "YR03", "warehouseName": "依然电商-分销组仓",
           "isBlockup": "0", "gmtModified": 1631020179000, "gmtCreate": "2021-09-07 21:09:39",
           "salesList": [{"channelId": "1", "channelName": "天猫", "extraFlag": True}], "futureField": {"a": 1}}
    warehouse = Warehouse.model_validate(raw)
    assert warehouse.warehouse_id == "968606409259025152" and warehouse.is_blockup == 0
    assert warehouse.gmt_create == warehouse.gmt_modified
    assert warehouse.gmt_modified is not None and warehouse.gmt_modified.tzinfo is not None
    dumped = warehouse.model_dump(mode="json", by_alias=True)
    assert dumped["futureField"] == {"a": 1} and dumped["salesList"][0]["extraFlag"] is True
    assert Warehouse.model_validate(dumped) == warehouse
    assert Warehouse(warehouse_code="X1").warehouse_code == "X1"  # populate by name
    assert to_epoch_ms(warehouse.gmt_create) == 1631020179000
    with pytest.raises(ValueError):
        Warehouse.model_validate({"warehouseName": "no code"})
