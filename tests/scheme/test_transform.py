"""Pure pipeline functions: mapping, conditions, de-duplication, chunk planning."""

from __future__ import annotations

import pytest

from jikeyun_kingdee.scheme import Comparison
from jikeyun_kingdee.records import parse_jikeyun_time, to_epoch_ms
from jikeyun_kingdee.transform import MappingError, check_required, chunked, latest_per_key, matches, plan_chunks, render_row

FIELDS = {"FName": "{warehouseName}", "FNumber": "{warehouseCode}", "FStockProperty": "1",
          "FUseOrgId": {"FNumber": "I0134"}, "FAllowMinusQty": True}


def test_render_row_replaces_references_and_keeps_constants() -> None:
    row = render_row(FIELDS, {"warehouseName": "华东一号仓", "warehouseCode": "WH001", "isBlockup": 0})
    assert row == {"FName": "华东一号仓", "FNumber": "WH001", "FStockProperty": "1",
                   "FUseOrgId": {"FNumber": "I0134"}, "FAllowMinusQty": True}


def test_render_row_names_the_missing_source_field() -> None:
    with pytest.raises(MappingError, match="FName: source field 'warehouseName' is missing"):
        render_row(FIELDS, {"warehouseCode": "WH001"})


def test_required_fields_must_not_be_blank() -> None:
    with pytest.raises(MappingError, match="FName: required but empty"):
        check_required({"FName": "  ", "FNumber": "X"}, ["FNumber", "FName"])


@pytest.mark.parametrize(("value", "kept"), [(0, True), ("0", True), (0.0, True), (1, False), ("1", False), (None, False)])
def test_platform_condition_is_loose_equality(value, kept: bool) -> None:
    condition = [[Comparison(field="isBlockup", op="eq", value="0")]]
    assert matches(condition, {"isBlockup": value}) is kept


def test_condition_outer_list_is_or_inner_is_and() -> None:
    condition = [
        [Comparison(field="isBlockup", op="eq", value=0), Comparison(field="isDelete", op="eq", value=0)],
        [Comparison(field="warehouseCode", op="in", value=["KEEP"])],
    ]
    assert matches(condition, {"isBlockup": 0, "isDelete": 0})
    assert not matches(condition, {"isBlockup": 0, "isDelete": 1})
    assert matches(condition, {"isBlockup": 1, "isDelete": 1, "warehouseCode": "KEEP"})
    assert matches([], {"anything": 1})


def test_modification_times_read_every_jikeyun_time_form() -> None:
    """What the transform step stores as a record's ``modified`` (epoch ms) from Jikeyun's time forms."""
    def epoch_ms(value):
        return to_epoch_ms(parse_jikeyun_time(value))

    assert epoch_ms(1631020179000) == 1631020179000
    assert epoch_ms("1631020179000") == 1631020179000
    assert epoch_ms("2021-09-07 21:09:39") == 1631020179000  # Beijing time
    with pytest.raises(ValueError):
        epoch_ms("yesterday-ish")


def test_chunked_reads_any_iterable_lazily() -> None:
    assert list(chunked(iter(range(7)), 3)) == [[0, 1, 2], [3, 4, 5], [6]]
    assert list(chunked([], 3)) == []


def test_latest_per_key_keeps_the_latest_modification() -> None:
    items = [{"key": "A", "modified": 5, "v": 1}, {"key": "B", "modified": 1, "v": 2}, {"key": "A", "modified": 9, "v": 3},
             {"key": "A", "modified": 7, "v": 4}]
    kept, dropped = latest_per_key(items)
    assert dropped == 2
    assert {item["key"]: item["v"] for item in kept} == {"A": 3, "B": 2}


@pytest.mark.parametrize(("batches", "limit"), [(0, 64), (1, 64), (10, 64), (64, 64), (65, 64), (1000, 64), (7, 3)])
def test_plan_chunks_covers_every_batch_once_within_the_limit(batches: int, limit: int) -> None:
    plan = plan_chunks(batches, limit)
    assert len(plan) <= limit
    assert [b for chunk in plan for b in chunk] == list(range(batches))
    if plan:
        sizes = [len(chunk) for chunk in plan]
        assert max(sizes) - min(sizes) <= 1
