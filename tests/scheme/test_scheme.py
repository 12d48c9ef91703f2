"""The scheme file is data: YAML and the platform's JSON give the same validated model; errors name file and field."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from jikeyun_kingdee.scheme import (
    IdCursorPaging,
    Lifecycle,
    OffsetPaging,
    Scheme,
    SchemeError,
    ScrollPaging,
    SourceSpec,
    load_scheme,
    scheme_from_platform,
)
from jikeyun_kingdee.transform import matches

# The two blocks exactly as quoted in docs/protocol/hosted-scheme-I0134.md (the hosted platform's metadata).
PLATFORM_SOURCE = json.loads("""
{"api": "erp.warehouse.get", "effect": "QUERY", "method": "POST",
 "number": "warehouseCode", "id": "warehouseCode", "idCheck": true,
 "request": [
   {"label":"页码","field":"pageIndex","type":"string"},
   {"label":"页大小","field":"pageSize","type":"string","value":"50"},
   {"label":"起始开始时间","field":"gmtModifiedStart","type":"string","value":"{{LAST_SYNC_TIME|datetime}}"},
   {"label":"结束修改时间","field":"gmtModifiedEnd","type":"string","value":"{{CURRENT_TIME|datetime}}"}],
 "autoFillResponse": true,
 "condition_bk": [[{"field":"isBlockup","logic":"ieqv2","value":"0"}]],
 "condition":    [[{"field":"isBlockup","logic":"eqv2","value":"0"}]]}
""")
PLATFORM_TARGET = json.loads("""
{"api": "batchSave", "method": "POST",
 "request": [
   {"field":"FName","label":"仓库名称","type":"string","value":"{warehouseName}"},
   {"field":"FNumber","label":"编码","type":"string","value":"{warehouseCode}"},
   {"field":"FStockProperty","label":"仓库属性","type":"string","value":"1"},
   {"field":"FCreateOrgId","label":"FCreateOrgId","type":"string","value":"I0134"},
   {"field":"FUseOrgId","label":"FUseOrgId","type":"string","value":"I0134"},
   {"field":"FAllowMinusQty","label":"允许即时库存","type":"string","value":"true"}],
 "operation": {"method":"batchArraySave","rows":100,"rowsKey":"array"}}
""")
SUBMIT_AND_AUDIT = {"field": "IsAutoSubmitAndAudit", "label": "提交并审核", "type": "bool", "value": "true"}


@pytest.fixture
def yaml_scheme(repo_root: Path) -> Scheme:
    return load_scheme(repo_root / "include" / "schemes" / "warehouse_I0134.yaml")


def test_shipped_yaml_scheme_describes_the_warehouse_flow(yaml_scheme: Scheme) -> None:
    assert yaml_scheme.dag_id == "jikeyun_kingdee_warehouse_I0134"
    assert yaml_scheme.source.method == "erp.warehouse.get"
    assert yaml_scheme.source.list_path == "warehouseInfo"
    assert yaml_scheme.source.page_size == 200
    assert yaml_scheme.target.form_id == "BD_STOCK"
    assert yaml_scheme.target.rows_per_batch == 100
    assert yaml_scheme.target.fields["FUseOrgId"] == {"FNumber": "I0134"}
    offset = yaml_scheme.start_date.utcoffset()
    assert offset is not None
    assert offset.total_seconds() == 8 * 3600
    assert yaml_scheme.retries >= 2


def test_platform_json_gives_the_same_scheme_as_the_yaml(yaml_scheme: Scheme) -> None:
    target = {**PLATFORM_TARGET, "request": [*PLATFORM_TARGET["request"], SUBMIT_AND_AUDIT]}
    common = yaml_scheme.model_dump(exclude={"source", "target", "lifecycle"})  # the platform has no lifecycle
    scheme = scheme_from_platform(source=PLATFORM_SOURCE, target=target, form_id="BD_STOCK", **common)
    # The platform let the API hide deleted and blocked-up warehouses; the YAML reads them and its condition drops
    # them (so they are counted). Same records kept. The YAML reads 200 a page (the API's maximum, fewest calls);
    # the platform JSON keeps what it says:
    different = {"request", "condition", "page_size"}
    assert scheme.source.model_dump(exclude=different) == yaml_scheme.source.model_dump(exclude=different)
    assert (scheme.source.request, yaml_scheme.source.request) == ({}, {"includeDeleteAndBlockup": 1})
    assert (scheme.source.page_size, yaml_scheme.source.page_size) == (50, 200)
    for record in ({"isBlockup": 0, "isDelete": 0}, {"isBlockup": "1", "isDelete": 0}, {"isBlockup": 0, "isDelete": 1}):
        served_by_api = "includeDeleteAndBlockup" in scheme.source.request or (
            record["isBlockup"] in (0, "0") and record["isDelete"] == 0
        )
        assert (served_by_api and matches(scheme.source.condition, record)) == matches(
            yaml_scheme.source.condition, record
        )
    assert scheme.target.model_dump(exclude={"required"}) == yaml_scheme.target.model_dump(exclude={"required"})
    assert scheme.target.submit_and_audit is True
    assert scheme.lifecycle is None and yaml_scheme.lifecycle is not None


def test_platform_json_file_loads(tmp_path: Path) -> None:
    path = tmp_path / "warehouse_json.json"
    path.write_text(
        json.dumps(
            {
                "name": "warehouse_json",
                "form_id": "BD_STOCK",
                "start_date": "2026-11-01T00:00:00",
                "source": PLATFORM_SOURCE,
                "target": PLATFORM_TARGET,
            },
            ensure_ascii=False,
        ),
        encoding="utf-8",
    )
    scheme = load_scheme(path)
    assert [pair.start_param for pair in scheme.source.windows] == ["gmtModifiedStart"]
    assert scheme.source.condition[0][0].op == "eq"
    assert str(scheme.start_date.tzinfo) in ("Asia/Shanghai", "+08:00")  # naive start date read in the scheme's zone
    assert scheme.target.organisation == "I0134"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            lambda s, t: s["condition"][0][0].update(logic="like_v9"),
            "source.condition[0][0] (isBlockup): unknown operator 'like_v9'",
        ),
        (
            lambda s, t: s["request"][2].update(value="{{LAST_RUN|datetime}}"),
            "gmtModifiedStart): unknown variable {{LAST_RUN}}",
        ),
        (lambda s, t: t["request"][0].update(value="{warehouseName"), "target.fields.FName"),
    ],
)
def test_platform_errors_name_the_field(tmp_path: Path, change, expected: str) -> None:
    source, target = json.loads(json.dumps(PLATFORM_SOURCE)), json.loads(json.dumps(PLATFORM_TARGET))
    change(source, target)
    path = tmp_path / "broken.json"
    path.write_text(
        json.dumps(
            {
                "name": "b",
                "form_id": "BD_STOCK",
                "start_date": "2026-11-01T00:00:00",
                "source": source,
                "target": target,
            }
        ),
        encoding="utf-8",
    )
    with pytest.raises(SchemeError) as error:
        load_scheme(path)
    assert str(path) in str(error.value)
    assert expected in str(error.value)


def test_yaml_errors_name_file_and_field(tmp_path: Path, repo_root: Path) -> None:
    text = (repo_root / "include" / "schemes" / "warehouse_I0134.yaml").read_text(encoding="utf-8")
    path = tmp_path / "bad.yaml"
    path.write_text(text.replace("page_size: 200", "page_size: 500"), encoding="utf-8")
    with pytest.raises(SchemeError, match=r"bad\.yaml: source\.page_size: .*less than or equal to 200"):
        load_scheme(path)
    path.write_text(text.replace("op: eq", "op: approximately"), encoding="utf-8")
    with pytest.raises(SchemeError, match=r"bad\.yaml: source\.condition\.0\.0\.op"):
        load_scheme(path)
    path.write_text(text.replace("timezone: Asia/Shanghai", "timezone: Mars/Olympus"), encoding="utf-8")
    with pytest.raises(SchemeError, match=r"bad\.yaml: timezone: .*Mars/Olympus"):
        load_scheme(path)


def test_shipped_yaml_scheme_forbids_blocked_and_deleted_warehouses(yaml_scheme: Scheme) -> None:
    assert yaml_scheme.lifecycle == Lifecycle(
        blocked_field="isBlockup", deleted_field="isDelete", on_blocked="forbid", on_deleted="forbid"
    )
    assert yaml_scheme.source.request == {"includeDeleteAndBlockup": 1}  # else the API would hide them
    assert yaml_scheme.rows_per_chunk == 2000
    assert yaml_scheme.filter_fields == ["isBlockup", "isDelete"]
    assert yaml_scheme.source.record_type is not None and yaml_scheme.source.record_type.__name__ == "Warehouse"


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("rows_per_chunk: 2000", "rows_per_chunk: 0", r"bad\.yaml: rows_per_chunk: .*greater than or equal to 1"),
        ("on_blocked: forbid", "on_blocked: delete", r"bad\.yaml: lifecycle\.on_blocked: .*'forbid' or 'ignore'"),
        ("deleted_field: isDelete", "deleted_field: ''", r"bad\.yaml: lifecycle\.deleted_field: "),
        ("deleted_field: isDelete", "deleted_fields: isDelete", r"bad\.yaml: lifecycle\.deleted_fields: Extra inputs"),
        (
            "  time_format: beijing\n",
            "  time_format: beijing\n  include_blocked_and_deleted: true\n",
            r"bad\.yaml: source: include_blocked_and_deleted is gone: put the API's own parameter in request:",
        ),
        (
            "record_model: warehouse",
            "record_model: shop",
            r"bad\.yaml: source\.record_model: unknown record model 'shop'; known: warehouse",
        ),
    ],
)
def test_lifecycle_and_chunk_errors_name_file_and_field(
    tmp_path: Path, repo_root: Path, old: str, new: str, expected: str
) -> None:
    text = (repo_root / "include" / "schemes" / "warehouse_I0134.yaml").read_text(encoding="utf-8")
    assert old in text
    path = tmp_path / "bad.yaml"
    path.write_text(text.replace(old, new), encoding="utf-8")
    with pytest.raises(SchemeError, match=expected):
        load_scheme(path)


def test_lifecycle_defaults_ignore_and_is_optional(tmp_path: Path, repo_root: Path) -> None:
    text = (repo_root / "include" / "schemes" / "warehouse_I0134.yaml").read_text(encoding="utf-8")
    path = tmp_path / "plain.yaml"
    path.write_text(text.replace("  on_blocked: forbid", "").replace("  on_deleted: forbid", ""), encoding="utf-8")
    assert load_scheme(path).lifecycle == Lifecycle()
    assert Lifecycle().on_blocked == Lifecycle().on_deleted == "ignore"
    start = text.index("lifecycle:")
    path.write_text(text[:start] + text[text.index("alerting:") :], encoding="utf-8")
    scheme = load_scheme(path)
    assert scheme.lifecycle is None and scheme.filter_fields == ["isBlockup", "isDelete"]  # the condition's


def test_platform_json_maps_no_lifecycle_from_condition_bk_and_takes_an_explicit_one(tmp_path: Path) -> None:
    """``condition_bk`` is a disabled alternative condition: neither applied nor read as a lifecycle."""
    common = {
        "name": "warehouse_json",
        "form_id": "BD_STOCK",
        "start_date": "2026-11-01T00:00:00",
        "target": PLATFORM_TARGET,
    }
    path = tmp_path / "warehouse_json.json"
    path.write_text(json.dumps({**common, "source": PLATFORM_SOURCE}, ensure_ascii=False), encoding="utf-8")
    scheme = load_scheme(path)
    assert scheme.lifecycle is None
    assert [[(c.field, c.op) for c in group] for group in scheme.source.condition] == [[("isBlockup", "eq")]]

    forbid = {"on_blocked": "forbid", "on_deleted": "forbid"}
    path.write_text(json.dumps({**common, "source": PLATFORM_SOURCE, "lifecycle": forbid}), encoding="utf-8")
    with pytest.raises(
        SchemeError,
        match=r"warehouse_json\.json: lifecycle: 'forbid' needs the source request field "
        r"includeDeleteAndBlockup",
    ):
        load_scheme(path)
    request = [*PLATFORM_SOURCE["request"], {"field": "includeDeleteAndBlockup", "type": "string", "value": "1"}]
    path.write_text(
        json.dumps({**common, "source": {**PLATFORM_SOURCE, "request": request}, "lifecycle": forbid}), encoding="utf-8"
    )
    scheme = load_scheme(path)
    assert scheme.lifecycle == Lifecycle.model_validate(forbid)
    assert scheme.source.request == {"includeDeleteAndBlockup": "1"}  # values as the platform gave them


# -- the source section: list path, paging style, window pairs ------------------------------------------------------
GOODS_SOURCE = """
connection: jikeyun_default
method: erp.storage.goodslist
list_path: result.data.goods
page_size: 200
paging: {style: id_cursor, cursor_param: maxSkuId, cursor_field: skuId}
windows:
  - {start_param: startDateModifiedGoods, end_param: endDateModifiedGoods, modified_field: goodsGmtModified}
  - {start_param: startDateModifiedSku, end_param: endDateModifiedSku, modified_field: skuGmtModified}
time_format: epoch_ms
max_window_days: 7
request: {isQueryDelete: 1}
id_field: skuBarcode
"""


def test_goods_source_section_declares_two_passes_read_by_an_id_cursor() -> None:
    source = SourceSpec.model_validate(yaml.safe_load(GOODS_SOURCE))
    assert source.list_path == "goods"  # the leading result.data. is accepted
    assert isinstance(source.paging, IdCursorPaging)
    assert (source.paging.cursor_param, source.paging.cursor_field, source.paging.first_cursor) == (
        "maxSkuId", "skuId", "0")
    assert [(w.start_param, w.modified_field) for w in source.windows] == [
        ("startDateModifiedGoods", "goodsGmtModified"), ("startDateModifiedSku", "skuGmtModified")]
    assert source.modified_fields == ["goodsGmtModified", "skuGmtModified"]
    assert source.modified_field == "goodsGmtModified"
    assert source.max_window == timedelta(days=7) and source.time_format == "epoch_ms"
    assert source.request == {"isQueryDelete": 1}


def test_older_source_form_reads_as_the_new_one() -> None:
    older = {"method": "erp.vend.get", "list_key": "vendInfo", "id_field": "vendCode",
             "window": {"start_field": "gmtModifiedStart", "end_field": "gmtModifiedEnd",
                        "modified_field": "gmtModified"},
             "bizcontent": {"includeDeleteAndBlockup": 1}}
    newer = {"method": "erp.vend.get", "list_path": "vendInfo", "id_field": "vendCode",
             "paging": {"style": "time_keyset"}, "windows": [{}], "request": {"includeDeleteAndBlockup": 1}}
    assert SourceSpec.model_validate(older) == SourceSpec.model_validate(newer)
    without_window = SourceSpec.model_validate({**older, "window": None})
    assert without_window.windows == [] and isinstance(without_window.paging, OffsetPaging)
    assert without_window.modified_fields == ["gmtModified"]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"paging": {"style": "id_cursor", "cursor_field": "skuId"}}, r"source\.paging\.id_cursor\.cursor_param: "
                                                                      r"Field required"),
        ({"paging": {"style": "scroll"}, "windows": []}, "source: paging: scroll reads a window"),
        ({"paging": {"style": "time_keyset"}, "windows": []}, "source: paging: time_keyset reads a window"),
        ({"paging": {"style": "offset"}}, "source: paging: offset pages lose records"),
        ({"paging": {"style": "pages"}}, r"source\.paging: Input tag 'pages' found using 'style' does not match"),
        ({"request": {"pageSize": 50, "maxSkuId": 0}}, "source: request: maxSkuId, pageSize is set by the paging"),
        ({"request": {"startDateModifiedSku": "2025-01-01"}}, "source: request: startDateModifiedSku is set by"),
        ({"windows": [], "paging": {"style": "offset"}}, "source: max_window_days: slices a window"),
        ({"list_path": "result.data."}, r"source\.list_path: .*is not a dotted path"),
        ({"list_key": "goods"}, "source: list_key is the older name of list_path: give one of them"),
        ({"windows": [{"start_field": "a", "start_param": "b"}]},
         r"source\.windows\.0: start_field is the older name of"),
        ({"time_format": "unix"}, r"source\.time_format: Input should be 'beijing' or 'epoch_ms'"),
    ],
)
def test_source_errors_name_the_field(tmp_path: Path, repo_root: Path, change: dict, expected: str) -> None:
    scheme = yaml.safe_load((repo_root / "include" / "schemes" / "warehouse_I0134.yaml").read_text(encoding="utf-8"))
    scheme["source"] = {**yaml.safe_load(GOODS_SOURCE), **change}
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(scheme, allow_unicode=True), encoding="utf-8")
    with pytest.raises(SchemeError, match=rf"bad\.yaml: {expected}"):
        load_scheme(path)


def test_scroll_source_takes_its_expiry_words_and_codes() -> None:
    source = SourceSpec.model_validate({
        "method": "oms.trade.fullinfoget", "list_path": "trades", "id_field": "tradeNo", "max_window_days": 7,
        "paging": {"style": "scroll", "expired_sub_codes": ["0130099999"]},
        "windows": [{"start_param": "startModified", "end_param": "endModified"}],
        "request": {"fields": "tradeNo,gmtModified"},
    })
    assert isinstance(source.paging, ScrollPaging)
    assert (source.paging.scroll_param, source.paging.fields_param) == ("scrollId", "fields")
    assert source.paging.expired_sub_codes == ["0130099999"] and "过期" in source.paging.expired_words
