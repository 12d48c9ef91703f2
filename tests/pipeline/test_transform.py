"""Pure pipeline functions: mapping, conditions, lifecycle states, one record to one item, chunk sizes."""

from __future__ import annotations

from pathlib import Path

import pytest

from jikeyun_kingdee.fields import FieldMap
from jikeyun_kingdee.items import chunked, rows_per_load_chunk
from jikeyun_kingdee.records import parse_jikeyun_time, to_epoch_ms
from jikeyun_kingdee.scheme import Comparison, Lifecycle, load_scheme
from jikeyun_kingdee.transform import (
    MappingError,
    check_required,
    lifecycle_state,
    matches,
    staged_state,
    transform_record,
)

FIELDS = {"FName": "{warehouseName}", "FNumber": "{warehouseCode}", "FStockProperty": "1",
          "FUseOrgId": {"FNumber": "I0134"}, "FAllowMinusQty": True}


def render_row(fields: dict, record: dict) -> dict:
    return FieldMap.parse(fields).render(record)


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


@pytest.mark.parametrize(
    ("value", "kept"), [(0, True), ("0", True), (0.0, True), (1, False), ("1", False), (None, False)]
)
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


SCHEME = load_scheme(Path(__file__).resolve().parents[2] / "include" / "schemes" / "warehouse_I0134.yaml")
FORBID_BOTH = Lifecycle(on_blocked="forbid", on_deleted="forbid")
ACTIVE_ONLY = [[Comparison(field="isBlockup", op="eq", value="0"), Comparison(field="isDelete", op="eq", value="0")]]


@pytest.mark.parametrize(
    ("record", "state"),
    [
        ({"isBlockup": 0, "isDelete": 0}, "active"),
        ({}, "active"),  # Jikeyun leaves empty fields out
        ({"isBlockup": 1, "isDelete": 0}, "blocked"),
        ({"isBlockup": "1", "isDelete": "0"}, "blocked"),
        ({"isBlockup": True}, "blocked"),
        ({"isBlockup": 0, "isDelete": 1}, "deleted"),
        ({"isBlockup": 0, "isDelete": "true"}, "deleted"),
        ({"isBlockup": 1, "isDelete": 1.0}, "deleted"),  # deleted wins over blocked
        ({"isBlockup": "0.00", "isDelete": None}, "active"),
    ],
)
def test_lifecycle_state_reads_the_flags_loosely(record, state: str) -> None:
    assert lifecycle_state(FORBID_BOTH, record) == state


def test_lifecycle_state_uses_the_scheme_fields_and_without_a_lifecycle_everything_is_active() -> None:
    custom = Lifecycle(blocked_field="disabled", deleted_field="removed")
    assert lifecycle_state(custom, {"isBlockup": 1, "disabled": 1}) == "blocked"
    assert lifecycle_state(custom, {"isDelete": 1, "removed": 0}) == "active"
    assert lifecycle_state(None, {"isBlockup": 1, "isDelete": 1}) == "active"


def test_lifecycle_with_two_blocked_fields_is_blocked_when_either_is() -> None:
    goods = Lifecycle(blocked_field=["isBlockup", "skuIsBlockup"], on_blocked="forbid", on_deleted="forbid")
    assert goods.fields == ["isBlockup", "skuIsBlockup", "isDelete"]
    assert lifecycle_state(goods, {"isBlockup": 0, "skuIsBlockup": 0, "isDelete": 0}) == "active"
    assert lifecycle_state(goods, {"isBlockup": 1, "skuIsBlockup": 0}) == "blocked"  # the goods
    assert lifecycle_state(goods, {"isBlockup": 0, "skuIsBlockup": "1"}) == "blocked"  # the SKU alone
    assert lifecycle_state(goods, {"skuIsBlockup": 1, "isDelete": 1}) == "deleted"
    with pytest.raises(ValueError, match="at least one field"):
        Lifecycle(blocked_field=[])


@pytest.mark.parametrize(
    ("on_blocked", "on_deleted", "record", "staged"),
    [
        ("forbid", "forbid", {"isBlockup": 0, "isDelete": 0}, "active"),
        ("forbid", "forbid", {"isBlockup": 1, "isDelete": 0}, "blocked"),
        ("forbid", "forbid", {"isBlockup": 0, "isDelete": 1}, "deleted"),
        ("forbid", "ignore", {"isBlockup": 1, "isDelete": 0}, "blocked"),
        ("forbid", "ignore", {"isBlockup": 1, "isDelete": 1}, None),  # deleted, and deleted ones are ignored
        ("ignore", "forbid", {"isBlockup": 1, "isDelete": 0}, None),
        ("ignore", "forbid", {"isBlockup": 1, "isDelete": 1}, "deleted"),
        ("ignore", "ignore", {"isBlockup": 0, "isDelete": 1}, None),
    ],
)
def test_staged_state_forbids_or_ignores_as_the_lifecycle_says(on_blocked, on_deleted, record, staged) -> None:
    lifecycle = Lifecycle(on_blocked=on_blocked, on_deleted=on_deleted)
    assert staged_state(ACTIVE_ONLY, lifecycle, record) == staged


def test_staged_state_applies_the_condition_to_active_records_only() -> None:
    only_wh = [[Comparison(field="warehouseCode", op="in", value=["WH1"])]]
    assert staged_state(only_wh, FORBID_BOTH, {"warehouseCode": "WH1", "isBlockup": 0}) == "active"
    assert staged_state(only_wh, FORBID_BOTH, {"warehouseCode": "WH2", "isBlockup": 0}) is None
    assert staged_state(only_wh, FORBID_BOTH, {"warehouseCode": "WH2", "isBlockup": 1}) == "blocked"
    assert staged_state(ACTIVE_ONLY, None, {"isBlockup": 1, "isDelete": 0}) is None  # no lifecycle: the condition


def test_transform_record_parses_the_modification_time_once_through_the_model() -> None:
    raw = {
        "warehouseCode": " WH001 ",
        "warehouseName": "华东一号仓",
        "isBlockup": 1,
        "isDelete": 0,
        "gmtModified": "2021-09-07 21:09:39",
        "extraField": "kept out",
    }
    item = transform_record(SCHEME, raw)
    assert item["key"] == "WH001"
    assert item["modified"] == 1631020179000  # Beijing time, through Warehouse.gmt_modified
    assert item["source"] == {"isBlockup": 1, "isDelete": 0}  # what filter reads: condition and lifecycle fields
    assert item["row"]["FName"] == "华东一号仓"


def test_transform_record_without_a_record_model_parses_the_raw_field() -> None:
    scheme = SCHEME.model_copy(update={"source": SCHEME.source.model_copy(update={"record_model": None})})
    assert scheme.source.record_type is None
    item = transform_record(scheme, {"warehouseCode": "WH1", "warehouseName": "n", "gmtModified": "1631020179000"})
    assert item["modified"] == 1631020179000
    with pytest.raises(ValueError, match=r"not a date-time|not a time|Unable to parse"):
        transform_record(scheme, {"warehouseCode": "WH1", "warehouseName": "n", "gmtModified": "yesterday-ish"})


def test_transform_record_names_the_field_that_fails() -> None:
    with pytest.raises(ValueError, match="gmtModified"):
        transform_record(SCHEME, {"warehouseCode": "WH1", "warehouseName": "n", "gmtModified": "yesterday-ish"})
    with pytest.raises(ValueError, match="warehouseCode"):
        transform_record(SCHEME, {"warehouseId": "123", "warehouseName": "n"})


@pytest.mark.parametrize(
    ("rows", "per_chunk", "max_chunks", "expected"),
    [
        (0, 2000, 64, 2000),
        (1, 2000, 64, 2000),
        (10_000, 2000, 64, 2000),
        (128_000, 2000, 64, 2000),
        (128_001, 2000, 64, 2001),
        (1_000_000, 2000, 64, 15625),
        (1000, 100, 4, 250),
        (7, 1, 3, 3),
    ],
)
def test_rows_per_load_chunk_keeps_the_chunk_count_bounded(rows, per_chunk, max_chunks, expected) -> None:
    size = rows_per_load_chunk(rows, per_chunk, max_chunks)
    assert size == expected
    assert -(-rows // size) <= max_chunks
