"""Field kinds (jikeyun_kingdee.fields): how each declared kind renders, reads back and compares, the templates and
the lookup tables — and, over generated mappings, that a change of any one field alone is seen."""

from __future__ import annotations

import random
from typing import Any

import pytest

from jikeyun_kingdee.fields import FieldMap, Lookup, MappingError
from jikeyun_kingdee.ledger import row_hash

UNITS = {"unit": Lookup("unit", {"个": "Pcs", "瓶": "Ping", "箱": "Xiang"}, "reject")}
GOODS = {
    "FNumber": "{skuBarcode}",
    "FName": "{goodsName}",
    "FSpecification": "{skuName}",
    "FUseOrgId": {"FNumber": "I0134"},
    "SubHeadEntity": {"FErpClsID": "1", "FCategoryID": {"FNumber": "CHLB01_SYS"},
                      "FBaseUnitId": {"FNumber": "{unit(unitName)}"}, "FTaxRateId": {"FNUMBER": "SL02_SYS"}},
    "SubHeadEntity1": {"FStoreUnitID": {"FNumber": "{unit(unitName)}"}},
    "FDescription": {"kind": "write_only", "value": "{goodsMemo or ''}"},
}
SKU = {"skuBarcode": "6900001", "goodsName": "矿泉水", "skuName": "500ml", "unitName": "瓶"}


def read_back(fields: FieldMap, row: dict[str, Any], entries_of: str | None = None) -> dict[str, Any]:
    """What ExecuteBillQuery would answer for a record saved as ``row`` (grouped with its entries)."""
    record: dict[str, Any] = {}
    for path, f in fields.leaves():
        value: Any = row
        for part in path:
            value = value[part]
        if f.read_key is not None:
            record[f.read_key] = value.get(f.number_key) if isinstance(value, dict) else value
    for e in fields.entry_lists:
        record[e.name] = [{c.read_key: (line[c.name].get(c.number_key) if isinstance(line[c.name], dict)
                                        else line[c.name]) for c in e.children if c.read_key}
                          for line in row[e.name]]
    return record


def test_each_kind_is_inferred_once_with_its_read_key() -> None:
    fields = FieldMap.parse(GOODS, UNITS, keys=["FNumber"])
    assert {path: (kind, key) for path, kind, key in fields.describe()} == {
        "FNumber": ("scalar", "FNumber"),
        "FName": ("scalar", "FName"),
        "FSpecification": ("scalar", "FSpecification"),
        "FUseOrgId": ("reference", "FUseOrgId.FNumber"),
        "SubHeadEntity.FErpClsID": ("scalar", "FErpClsID"),
        "SubHeadEntity.FCategoryID": ("reference", "FCategoryID.FNumber"),
        "SubHeadEntity.FBaseUnitId": ("reference", "FBaseUnitId.FNumber"),
        "SubHeadEntity.FTaxRateId": ("reference", "FTaxRateId.FNumber"),
        "SubHeadEntity1.FStoreUnitID": ("reference", "FStoreUnitID.FNumber"),
        "FDescription": ("write_only", None),
    }
    assert "FNumber" not in fields.compared  # the join key is not compared
    assert fields.write_only == ["FDescription"]
    row = fields.render(SKU)
    assert row == {"FNumber": "6900001", "FName": "矿泉水", "FSpecification": "500ml",
                   "FUseOrgId": {"FNumber": "I0134"},
                   "SubHeadEntity": {"FErpClsID": "1", "FCategoryID": {"FNumber": "CHLB01_SYS"},
                                     "FBaseUnitId": {"FNumber": "Ping"}, "FTaxRateId": {"FNUMBER": "SL02_SYS"}},
                   "SubHeadEntity1": {"FStoreUnitID": {"FNumber": "Ping"}}, "FDescription": ""}
    assert fields.differences(row, read_back(fields, row)) == []


def test_a_sub_entity_change_is_a_difference_naming_its_path() -> None:
    fields = FieldMap.parse(GOODS, UNITS, keys=["FNumber"])
    before = fields.render(SKU)
    after = fields.render(SKU | {"unitName": "箱"})
    assert [d.field for d in fields.differences(after, read_back(fields, before))] == [
        "SubHeadEntity.FBaseUnitId", "SubHeadEntity1.FStoreUnitID"]
    assert row_hash(after) != row_hash(before)


def test_a_write_only_change_is_seen_only_by_the_ledger_hash() -> None:
    fields = FieldMap.parse(GOODS, UNITS, keys=["FNumber"])
    before = fields.render(SKU)
    after = fields.render(SKU | {"goodsMemo": "新包装"})
    assert fields.differences(after, read_back(fields, before)) == []  # cannot be read back …
    assert row_hash(after) != row_hash(before)  # … so the ledger's hash says it changed


def test_lookup_tables_reject_or_stand_for_themselves() -> None:
    fields = FieldMap.parse(GOODS, UNITS)
    with pytest.raises(MappingError, match=r"SubHeadEntity\.FBaseUnitId: lookup table 'unit' has no entry for '双'"):
        fields.render(SKU | {"unitName": "双"})
    shops = {"customer": Lookup("customer", {"TM01": "C001"}, "identity")}
    customer = FieldMap.parse({"FCustomerID": {"FNumber": "{customer(shopCode)}"}}, shops)
    assert customer.render({"shopCode": "TM01"}) == {"FCustomerID": {"FNumber": "C001"}}
    assert customer.render({"shopCode": "JD02"}) == {"FCustomerID": {"FNumber": "JD02"}}


@pytest.mark.parametrize(("fields", "message"), [
    ({"FX": "{unit(unitName)}"}, "fields.FX: {unit(unitName)} calls 'unit', which is neither a lookup table"),
    ({"FX": "{open('x')}"}, "calls 'open'"),
    ({"FX": "{a[0]}"}, "uses Subscript"),
    ({"FX": "{a"}, "unbalanced braces"),
    ({"FX": ["{a}"]}, "fields.FX: a list is not a field"),
    ({"S": {"T": {"U": "1", "V": "2"}}}, "fields.S.T: a sub-entity cannot hold another sub-entity"),
    ({"FX": {"kind": "sometimes", "value": 1}}, "fields.FX: kind 'sometimes' is not one of"),
    ({"FE": {"entries": "lines"}}, "fields.FE.fields: an entry list needs the fields of its entries"),
    ({"FR": {"kind": "reference", "value": "x", "key": "Number"}}, "fields.FR.key"),
])
def test_a_mapping_that_cannot_work_is_refused_when_the_scheme_loads(fields: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        FieldMap.parse(fields)


def test_templates_compute_interpolate_and_name_what_is_missing() -> None:
    fields = FieldMap.parse({
        "FTaxPrice": "{round(fee / qty, 6)}", "FIsFree": "{isGift == 1}", "FName": "{goodsName} {skuName}",
        "FNote": "{memo or ''}", "FQty": "{qty * -1 if isReturn else qty}",
    })
    row = fields.render({"fee": "10", "qty": 3, "isGift": "0", "goodsName": "水", "skuName": "小", "isReturn": 1})
    assert row == {"FTaxPrice": 3.333333, "FIsFree": False, "FName": "水 小", "FNote": "", "FQty": -3}
    with pytest.raises(MappingError, match=r"FTaxPrice: division by zero \(qty is 0\)"):
        fields.render({"fee": 1, "qty": 0, "isGift": 1, "goodsName": "", "skuName": "", "isReturn": 0})
    with pytest.raises(MappingError, match="FName: source field 'goodsName' is missing"):
        fields.render({"fee": 1, "qty": 1, "isGift": 1, "skuName": "", "isReturn": 0})


def test_entry_lists_render_per_line_with_the_record_behind_and_compare_as_a_multiset() -> None:
    fields = FieldMap.parse({"FBillNo": "{tradeNo}", "FEntity": {"entries": "goodsDetail", "fields": {
        "FMaterialID": {"kind": "reference", "form": "BD_MATERIAL", "value": "{barcode}"},
        "FRealQty": "{sellCount}", "FStockID": {"FNumber": "{warehouseCode}"}}}}, keys=["FBillNo"])
    trade = {"tradeNo": "T1", "warehouseCode": "WH1",
             "goodsDetail": [{"barcode": "B1", "sellCount": 2}, {"barcode": "B2", "sellCount": 1}]}
    row = fields.render(trade)
    assert row["FEntity"][1] == {"FMaterialID": {"FNumber": "B2"}, "FRealQty": 1, "FStockID": {"FNumber": "WH1"}}
    assert fields.referenced(row) == {"BD_MATERIAL": {"B1", "B2"}}
    stored = read_back(fields, row)
    stored["FEntity"].reverse()  # entry order in the answer does not matter
    assert fields.differences(row, stored) == []
    changed = fields.render(trade | {"goodsDetail": [{"barcode": "B1", "sellCount": 3},
                                                     {"barcode": "B2", "sellCount": 1}]})
    (difference,) = fields.differences(changed, stored)
    assert difference.field == "FEntity"
    assert difference.desired == [{"FMaterialID": "B1", "FRealQty": "3", "FStockID": "WH1"}]
    assert difference.actual == [{"FMaterialID": "B1", "FRealQty": "2", "FStockID": "WH1"}]
    grouped = fields.group([{"FBillNo": "T1", "FMaterialID.FNumber": "B1", "FRealQty": 2.0, "FStockID.FNumber": "WH1"},
                            {"FBillNo": "T1", "FMaterialID.FNumber": "B2", "FRealQty": 1.0, "FStockID.FNumber": "WH1"}],
                           "FBillNo")
    assert fields.differences(row, grouped["T1"]) == []


# -- over generated mappings --------------------------------------------------------------------------------------


def generated_mapping(rng: random.Random) -> tuple[dict[str, Any], dict[str, Any], dict[str, str]]:
    """A random mapping of every kind, a record for it, and target path → the one source field it reads."""
    record: dict[str, Any] = {}
    reads: dict[str, str] = {}
    counter = iter(range(10_000))

    def leaf(path: str) -> Any:
        source = f"s{next(counter)}"
        record[source] = f"v{rng.randrange(1000)}"
        reads[path] = source
        kind = rng.choice(["scalar", "reference", "reference_upper", "write_only", "computed"])
        if kind == "reference":
            return {"FNumber": f"{{{source}}}"}
        if kind == "reference_upper":
            return {"FNUMBER": f"{{{source}}}"}
        if kind == "write_only":
            return {"kind": "write_only", "value": f"{{{source}}}"}
        if kind == "computed":
            return f"{{'n-' + {source}}}"
        return f"{{{source}}}"

    mapping: dict[str, Any] = {"FNumber": "{key}", "FConst": "fixed"}
    record["key"] = "K1"
    for h in range(rng.randrange(1, 5)):
        if rng.random() < 0.3:
            mapping[f"SubHeadEntity{h}"] = {f"FC{h}_{c}": leaf(f"SubHeadEntity{h}.FC{h}_{c}")
                                            for c in range(rng.randrange(1, 4))}
        else:
            mapping[f"FH{h}"] = leaf(f"FH{h}")
    return mapping, record, reads


@pytest.mark.parametrize("seed", range(60))
def test_a_change_of_any_one_field_alone_is_seen(seed: int) -> None:
    """Each field of a generated mapping changed alone: a readable one is a difference naming exactly its path, a
    write-only one changes only the ledger's hash — never neither."""
    rng = random.Random(seed)
    mapping, record, reads = generated_mapping(rng)
    fields = FieldMap.parse(mapping, keys=["FNumber"])
    before = fields.render(record)
    stored = read_back(fields, before)
    assert fields.differences(before, stored) == []
    write_only = set(fields.write_only)
    for path, source in reads.items():
        after = fields.render(record | {source: record[source] + "-changed"})
        named = [d.field for d in fields.differences(after, stored)]
        assert named == ([] if path in write_only else [path]), (path, mapping)
        assert row_hash(after) != row_hash(before), path
