"""BD_MATERIAL in the Kingdee sandbox, over real HTTP: the official SDK, the package's hook, and raw WebAPI calls
where the protocol itself is under test (required fields, units and categories, sub-entity read-back keys, status and
forbid rules, hand edits)."""

from __future__ import annotations

import json

import pytest

from jikeyun_kingdee.sandbox.__main__ import main as sandbox_cli

from tests.support.kingdee import ORG, WebApi, material, sdk_client

FORM = "BD_MATERIAL"
READ_BACK = ("FMATERIALID,FNumber,FName,FSpecification,FErpClsID,FCategoryID.FNumber,FBaseUnitId.FNumber,"
             "FStoreUnitID.FNumber,FSaleUnitId.FNumber,FUseOrgId.FNumber,FDocumentStatus,FForbidStatus")


def test_official_sdk_saves_queries_and_audits_materials(kingdee) -> None:
    sdk = sdk_client(kingdee)
    full = material("M1", unit="Xiang", category="CHLB08_SYS") | {
        "FMATERIALID": 0, "FMaterialGroup": {"FNumber": "G01"},
        "SubHeadEntity2": {"FSaleUnitId": {"FNumber": "Xiang"}, "FSalePriceUnitId": {"FNumber": "Xiang"}},
        "SubHeadEntity3": {"FPurchaseUnitId": {"FNumber": "Pcs"}, "FPurchasePriceUnitId": {"FNumber": "Pcs"}}}
    saved = json.loads(sdk.BatchSave(FORM, {"Model": [full, material("M2", unit="kg")],
                                            "NeedReturnFields": ["FMATERIALID", "FNumber"]}))["Result"]
    ids = [s["Id"] for s in saved["ResponseStatus"]["SuccessEntitys"]]
    assert saved["NeedReturnData"] == [{"FMATERIALID": i, "FNumber": n} for i, n in zip(ids, ["M1", "M2"], strict=True)]
    assert json.loads(sdk.Submit(FORM, {"Numbers": ["M1", "M2"]}))["Result"]["ResponseStatus"]["IsSuccess"]
    assert json.loads(sdk.Audit(FORM, {"Ids": f"{ids[0]},{ids[1]}"}))["Result"]["ResponseStatus"]["IsSuccess"]
    rows = json.loads(sdk.ExecuteBillQuery({"FormId": FORM, "FieldKeys": READ_BACK, "OrderString": "FNumber",
                                            "FilterString": f"FUseOrgId.FNumber = '{ORG}'"}))
    assert rows == [
        [ids[0], "M1", "商品M1", "规格M1", "1", "CHLB08_SYS", "Xiang", "Xiang", "Xiang", ORG, "C", "A"],
        [ids[1], "M2", "商品M2", "规格M2", "1", "CHLB01_SYS", "kg", "kg", "kg", ORG, "C", "A"],  # sale unit defaulted
    ]
    unit_ids = {u["FNumber"]: u["FUNITID"] for u in kingdee.records("BD_UNIT")}
    bare = json.loads(sdk.ExecuteBillQuery({"FormId": FORM, "FieldKeys": "FBaseUnitId,FPurchaseUnitId.FNumber",
                                            "FilterString": "FNumber = 'M1'"}))
    assert bare == [[unit_ids["Xiang"], "Pcs"]]  # a bare reference key reads the referenced record's id


def test_required_fields_each_get_their_error(kingdee) -> None:
    api = WebApi(kingdee)
    status = api.status("BatchSave", FORM, {"Model": [material("M1"), {"FNUMBER": "M2", "SubHeadEntity": {}}]})
    assert (status["IsSuccess"], status["MsgCode"], status["ErrorCode"]) == (False, 11, 500)
    assert [s["Number"] for s in status["SuccessEntitys"]] == ["M1"]
    assert [(e["DIndex"], e["FieldName"], e["Message"]) for e in status["Errors"]] == [
        (1, "FCreateOrgId", "字段“创建组织”是必填项"),
        (1, "FUseOrgId", "字段“使用组织”是必填项"),
        (1, "FName", "字段“名称”是必填项"),
        (1, "FErpClsID", "字段“物料属性”是必填项"),
        (1, "FCategoryID", "字段“存货类别”是必填项"),
        (1, "FBaseUnitId", "字段“基本单位”是必填项"),
    ]
    enum = api.status("BatchSave", FORM, {"Model": [material("M3", SubHeadEntity={
        "FErpClsID": "外购", "FCategoryID": {"FNumber": "CHLB01_SYS"}, "FBaseUnitId": {"FNumber": "Pcs"}})]})
    assert [(e["FieldName"], e["Message"]) for e in enum["Errors"]] == [
        ("FErpClsID", "物料属性的值“外购”不在枚举范围内")]


@pytest.mark.parametrize("unit_state", ["missing", "forbidden", "unaudited"])
@pytest.mark.parametrize("verify", [False, True])
def test_a_unit_must_exist_audited_and_not_forbidden(kingdee, unit_state, verify) -> None:
    kingdee.seed("BD_UNIT", [{"FNumber": "Dai", "FName": "袋"}])
    if unit_state == "forbidden":
        kingdee.edit_records("BD_UNIT", ["Dai"], FForbidStatus="B")
    elif unit_state == "unaudited":
        kingdee.edit_records("BD_UNIT", ["Dai"], FDocumentStatus="A")
    unit = "NoSuchUnit" if unit_state == "missing" else "Dai"
    status = WebApi(kingdee).status("BatchSave", FORM, {"Model": [material("M1", unit=unit)],
                                                        "IsVerifyBaseDataField": verify})
    errors = [(e["FieldName"], e["Message"]) for e in status["Errors"]]
    if verify:  # checked up front; the wording is the sandbox's own
        assert errors == [("FBaseUnitId", f"字段“基本单位”的值“{unit}”在系统中不存在、未审核或已禁用"),
                          ("FStoreUnitID", f"字段“库存单位”的值“{unit}”在系统中不存在、未审核或已禁用")]
    else:  # the number does not resolve, so the required check finds the field empty; the optional one is dropped
        assert errors == [("FBaseUnitId", "字段“基本单位”是必填项")]
    assert kingdee.records(FORM) == []
    kingdee.seed("BD_UNIT", [{"FNumber": "Dai", "FName": "袋"}])  # seeding again: audited and enabled
    assert WebApi(kingdee).status("BatchSave", FORM, {"Model": [material("M1", unit="Dai")]})["IsSuccess"]


def test_categories_and_optional_units(kingdee) -> None:
    api = WebApi(kingdee)
    unknown = api.status("BatchSave", FORM, {"Model": [material("M1", category="CHLB99_SYS")]})
    assert [(e["FieldName"], e["Message"]) for e in unknown["Errors"]] == [("FCategoryID", "字段“存货类别”是必填项")]
    sale_unit = {"FSaleUnitId": {"FNumber": "NoSuchUnit"}}
    assert api.status("BatchSave", FORM, {"Model": [material("M1", SubHeadEntity2=sale_unit)]})["IsSuccess"]
    [stored] = kingdee.records(FORM)
    assert (stored["FSaleUnitId"], stored["FSalePriceUnitId"], stored["FPurchaseUnitId"]) == ("", "Pcs", "Pcs")
    refused = api.status("BatchSave", FORM, {"Model": [material("M2", SubHeadEntity2=sale_unit)],
                                             "IsVerifyBaseDataField": "true"})
    assert [e["FieldName"] for e in refused["Errors"]] == ["FSaleUnitId"]


def test_number_is_unique_per_use_organisation(kingdee, kingdee_hook) -> None:
    first = kingdee_hook.batch_save(FORM, [material("M1"), material("M1", org="100")])
    assert all(r.ok for r in first)
    again = kingdee_hook.batch_save(FORM, [material("M1"), material("M2"), material("M2")])
    assert [(r.ok, r.field) for r in again] == [(False, "FNumber"), (True, None), (False, "FNumber")]
    assert again[0].message == "违反字段唯一性要求：编码唯一。[M1]在当前系统中已经被使用。"
    assert sorted((m["FNumber"], m["FUseOrgId"]) for m in kingdee.records(FORM)) == [
        ("M1", "100"), ("M1", ORG), ("M2", ORG)]
    assert [m["FNumber"] for m in kingdee.records(FORM, org="100")] == ["M1"]


def test_status_and_forbid_rules_as_for_warehouses(kingdee, kingdee_hook) -> None:
    [saved] = kingdee_hook.batch_save(FORM, [material("M1")])
    assert kingdee.records(FORM)[0]["FDocumentStatus"] == "A"
    assert kingdee_hook.submit(FORM, ids=[saved.id])[0].ok and kingdee_hook.audit(FORM, numbers=["M1"])[0].ok
    again = kingdee_hook.audit(FORM, ids=[saved.id])[0]
    assert not again.ok and again.message == "编码为“M1”的物料，单据已经审核！"
    rename = material("M1", name="改名") | {"FMaterialId": saved.id}  # the primary key in any letter case
    [refused] = kingdee_hook.batch_save(FORM, [rename])
    assert not refused.ok and refused.message == "编码为“M1”的物料，数据已审核，不能修改！"
    kingdee.configure(reject_save_on_audited=False)  # whether a real server refuses is not known
    assert kingdee_hook.batch_save(FORM, [rename])[0].ok and kingdee.records(FORM)[0]["FName"] == "改名"
    kingdee.configure(reject_save_on_audited=True)
    assert kingdee_hook.unaudit(FORM, ids=[saved.id])[0].ok
    assert kingdee_hook.batch_save(FORM, [rename | {"FName": "再改"}], NeedUpDateFields=["FNAME"])[0].ok
    assert (kingdee.records(FORM)[0]["FName"], kingdee.records(FORM)[0]["FDocumentStatus"]) == ("再改", "D")
    assert kingdee_hook.forbid(FORM, ["M1"])[0].ok
    twice = kingdee_hook.forbid(FORM, ["M1"])[0]
    assert not twice.ok and "已禁用" in (twice.message or "")
    assert kingdee_hook.enable(FORM, ["M1"])[0].ok and kingdee.records(FORM)[0]["FForbidStatus"] == "A"


def test_auto_submit_and_audit_and_scripted_failures(kingdee, kingdee_hook) -> None:
    kingdee.fail_rows(["M2"], message="审批流未通过", stage="audit")
    kingdee.fail_rows(["M3"], message="物料编码规则不符", stage="save")
    results = kingdee_hook.batch_save(FORM, [material("M1"), material("M2"), material("M3")],
                                      auto_submit_and_audit=True)
    assert [(r.ok, r.document_status, r.field, r.message) for r in results] == [
        (True, "C", None, None), (False, None, None, "审核失败：审批流未通过"),
        (False, None, "FNumber", "物料编码规则不符")]
    assert [(m["FNumber"], m["FDocumentStatus"]) for m in kingdee.records(FORM)] == [("M1", "C")]
    assert kingdee_hook.unaudit(FORM, ids=[results[0].id])[0].ok
    update = material("M1", name="改名") | {"FMATERIALID": results[0].id}
    [refused] = kingdee_hook.batch_save(FORM, [update], auto_submit_and_audit=True)
    assert not refused.ok and "IsAutoSubmitAndAudit" in (refused.message or "")  # default: refused on updates


def test_hand_edits_of_sub_entity_fields_and_control_commands(kingdee, kingdee_hook,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    kingdee_hook.batch_save(FORM, [material("M1"), material("M2")], auto_submit_and_audit=True)
    assert kingdee.edit_records(FORM, ["M1"], org=ORG, FBaseUnitId="Xiang", fname="手改") == 1
    payload = {"form": FORM, "numbers": ["M2"], "FStoreUnitID": {"FNumber": "kg"}, "FForbidStatus": "B"}
    assert sandbox_cli(["control", kingdee.url, "edit-records", json.dumps(payload)]) == 0
    rows = kingdee_hook.query(FORM, "FNumber,FName,FBaseUnitId.FNumber,FStoreUnitID.FNumber,FForbidStatus",
                              OrderString="FNumber")
    assert [list(r.values()) for r in rows] == [["M1", "手改", "Xiang", "Pcs", "A"], ["M2", "商品M2", "Pcs", "kg", "B"]]
    capsys.readouterr()
    assert sandbox_cli(["control", kingdee.url, "records", json.dumps({"form": "bd_material", "org": ORG})]) == 0
    assert [m["FNumber"] for m in json.loads(capsys.readouterr().out)["result"]] == ["M1", "M2"]
    assert sandbox_cli(["control", kingdee.url, "delete-records", json.dumps({"form": FORM, "numbers": ["M1"]})]) == 0
    assert [m["FNumber"] for m in kingdee.records(FORM)] == ["M2"]
    with pytest.raises(ValueError, match="cannot edit"):
        kingdee.edit_records(FORM, ["M2"], FMATERIALID=1)
    with pytest.raises(ValueError, match="unknown form"):
        kingdee.records("BD_NOTHING")


def test_query_keys_are_case_insensitive_and_need_no_entity_name(kingdee) -> None:
    api = WebApi(kingdee)
    api.status("BatchSave", FORM, {"Model": [material("M1")]})
    assert api.query(FORM, "fnumber,FBASEUNITID.FNUMBER,ferpclsid", "FNUMBER = 'M1'") == [["M1", "Pcs", "1"]]
    wrong = api.query(FORM, "SubHeadEntity.FBaseUnitId")[0][0]["Result"]["ResponseStatus"]
    assert wrong["MsgCode"] == 9
    assert wrong["Errors"][0]["Message"] == "元数据中标识为SubHeadEntity.FBaseUnitId的字段不存在"
