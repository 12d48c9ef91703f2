"""Every kind of target field, changed alone at the source, is written to Kingdee (BD_MATERIAL in the sandbox, over
HTTP): a scalar, a reference, a reference inside a sub-entity, a scalar inside a sub-entity, and a write-only field
(which no query reads back: the ledger's row hash says it changed)."""

from __future__ import annotations

from typing import Any

import pytest

from jikeyun_kingdee.fields import FieldMap
from jikeyun_kingdee.scheme import LookupSpec, TargetSpec
from jikeyun_kingdee.upsert import upsert

from tests.support.kingdee import ORG

FIELDS = {
    "FNumber": "{skuBarcode}",
    "FName": "{goodsName}",
    "FCreateOrgId": {"FNumber": ORG},
    "FUseOrgId": {"FNumber": ORG},
    "FMaterialGroup": {"FNumber": "{group}"},
    "SubHeadEntity": {"FErpClsID": "{erpClass}", "FCategoryID": {"FNumber": "{category}"},
                      "FBaseUnitId": {"FNumber": "{unit(unitName)}"}},
    "SubHeadEntity1": {"FStoreUnitID": {"FNumber": "{unit(unitName)}"}},
    "FDescription": {"kind": "write_only", "value": "{goodsMemo}"},
}
SKU = {"skuBarcode": "6900001", "goodsName": "矿泉水", "group": "G01", "erpClass": "1", "category": "CHLB01_SYS",
       "unitName": "瓶", "goodsMemo": "原装"}


def target() -> TargetSpec:
    spec = TargetSpec.model_validate({"form_id": "BD_MATERIAL", "organisation": ORG, "pk_field": "FMATERIALID",
                                      "approval": "auto", "fields": FIELDS})
    spec.bind({"unit": LookupSpec(values={"瓶": "Ping", "箱": "Xiang"})})
    return spec


def stored(kingdee) -> dict[str, Any]:
    (record,) = kingdee.records("BD_MATERIAL", org=ORG)
    return record


@pytest.mark.parametrize(("source_change", "kind", "stored_field", "expected"), [
    ({"goodsName": "矿泉水（新）"}, "scalar", "FName", "矿泉水（新）"),
    ({"group": "G02"}, "reference", "FMaterialGroup", "G02"),
    ({"erpClass": "2"}, "scalar in a sub-entity", "FErpClsID", "2"),
    ({"category": "CHLB08_SYS"}, "reference in a sub-entity", "FCategoryID", "CHLB08_SYS"),
    ({"unitName": "箱"}, "reference in a sub-entity, by a lookup", "FBaseUnitId", "Xiang"),
    ({"unitName": "箱"}, "reference in another sub-entity, by a lookup", "FStoreUnitID", "Xiang"),
])
def test_a_readable_field_changed_alone_is_written(kingdee, kingdee_hook, source_change, kind, stored_field,
                                                   expected) -> None:
    spec = target()
    fields: FieldMap = spec.field_map
    (created,) = upsert(kingdee_hook, spec, [fields.render(SKU)])
    assert created.status == "created"
    (same,) = upsert(kingdee_hook, spec, [fields.render(SKU)])
    assert same.status == "unchanged", kind
    (outcome,) = upsert(kingdee_hook, spec, [fields.render(SKU | source_change)])
    assert outcome.status == "updated", kind
    record = stored(kingdee)
    assert record[stored_field] == expected, (kind, record)
    assert record["FDocumentStatus"] == "C"  # updated through UnAudit, Save, Submit, Audit
    (again,) = upsert(kingdee_hook, spec, [fields.render(SKU | source_change)])
    assert again.status == "unchanged", kind


def test_a_write_only_field_changed_alone_is_written_when_the_ledger_hash_differs(kingdee, kingdee_hook) -> None:
    spec = target()
    fields = spec.field_map
    assert fields.write_only == ["FDescription"]
    upsert(kingdee_hook, spec, [fields.render(SKU)])
    changed = fields.render(SKU | {"goodsMemo": "新包装"})
    # the ledger knows the row as written exactly so: no Kingdee read could tell, and none is needed
    (unread,) = upsert(kingdee_hook, spec, [changed], unread_changed=set())
    assert unread.status == "unchanged" and stored(kingdee)["FDescription"] == "原装"
    # its hash differs from the ledger's: written, although every readable field is the same
    (outcome,) = upsert(kingdee_hook, spec, [changed], unread_changed={0})
    assert outcome.status == "updated" and stored(kingdee)["FDescription"] == "新包装"
