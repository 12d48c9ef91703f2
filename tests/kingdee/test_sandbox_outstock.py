"""SAL_OUTSTOCK (sales outbound) in the Kingdee sandbox, over real HTTP: the official SDK, the package's hook, and
raw WebAPI calls where the protocol itself is under test (reference errors per field and DIndex, FBillNo uniqueness,
entry ids, one query row per entry, statuses, the negative-stock interaction, commit-then-500)."""

from __future__ import annotations

import json

import pytest

from jikeyun_kingdee.sandbox.__main__ import main as sandbox_cli
from jikeyun_kingdee.sandbox.kingdee import KingdeeSandbox

from tests.support.kingdee import ORG, WebApi, line, material, outstock, sdk_client, warehouse

FORM = "SAL_OUTSTOCK"
LINES = "FBillNo,FEntity_FEntryID,FMaterialID.FNumber,FRealQty,FTaxPrice,FStockID.FNumber"


def base_data(kingdee: KingdeeSandbox) -> None:
    """Audited warehouses and materials of the organisation (and of organisation 100, which the documents of
    ``ORG`` cannot use)."""
    kingdee.seed("BD_STOCK", [warehouse("WH1"), warehouse("WH2"), warehouse("WH9", FUseOrgId={"FNumber": "100"},
                                                                           FCreateOrgId={"FNumber": "100"})])
    kingdee.seed("BD_MATERIAL", [material("M1"), material("M2", unit="Xiang"), material("M9", org="100")])


def errors_of(status: dict) -> list[tuple[int, str, str]]:
    return [(e["DIndex"], e["FieldName"], e["Message"]) for e in status["Errors"]]


def test_official_sdk_saves_queries_and_audits_an_outbound(kingdee) -> None:
    base_data(kingdee)
    sdk = sdk_client(kingdee)
    document = outstock("XS1", [line("M1", 2, 99.5), line("M2", 1, 0, stock="WH2", unit="Xiang")],
                        FOwnerTypeIdHead="BD_OwnerOrg", FOwnerIdHead={"FNumber": ORG}, FNote="卖家备注")
    saved = json.loads(sdk.BatchSave(FORM, {
        "Model": [document], "IsDeleteEntry": "true", "IsVerifyBaseDataField": "true", "ValidateFlag": "true",
        "NumberSearch": "true", "NeedReturnFields": ["FBillNo", "FEntity.FEntryID"],
        "InterationFlags": "STK_InvCheckResult", "IsAutoSubmitAndAudit": "false"}))["Result"]
    [entity] = saved["ResponseStatus"]["SuccessEntitys"]
    entry_ids = [row["FEntryID"] for row in kingdee.records(FORM)[0]["FEntity"]]
    assert saved["NeedReturnData"] == [{"FBillNo": "XS1", "FEntity": [{"FEntryID": i} for i in entry_ids]}]
    assert len(set(entry_ids)) == 2
    sdk.Submit(FORM, {"Numbers": ["XS1"]})
    audit = json.loads(sdk.Audit(FORM, {"Ids": str(entity["Id"]), "InterationFlags": "STK_InvCheckResult"}))
    assert audit["Result"]["ResponseStatus"]["IsSuccess"]
    rows = json.loads(sdk.ExecuteBillQuery({"FormId": FORM, "FieldKeys": f"FID,{LINES},FDocumentStatus",
                                            "FilterString": "FBillNo in ('XS1')"}))
    assert rows == [[entity["Id"], "XS1", entry_ids[0], "M1", 2.0, 99.5, "WH1", "C"],
                    [entity["Id"], "XS1", entry_ids[1], "M2", 1.0, 0.0, "WH2", "C"]]
    view = json.loads(sdk.View(FORM, {"Number": "XS1"}))["Result"]["Result"]
    assert (view["CustomerID"], view["Date"], view["Note"]) == (
        {"Number": "SHOP001"}, "2024-06-05T10:00:00", "卖家备注")
    assert [(r["MaterialID"]["Number"], r["IsFree"], r["SalUnitID"]["Number"]) for r in view["Entity"]] == [
        ("M1", False, "Pcs"), ("M2", True, "Xiang")]  # the sale unit defaults from the line's unit


def test_each_unresolved_reference_is_its_own_error_by_dindex(kingdee) -> None:
    base_data(kingdee)
    kingdee.edit_records("BD_MATERIAL", ["M2"], org=ORG, FForbidStatus="B")
    kingdee.seed("BD_Customer", [{"FNumber": "SHOP777", "FName": "新店", "FCreateOrgId": "100", "FUseOrgId": "100"}])
    status = WebApi(kingdee).status("BatchSave", FORM, {"Model": [
        outstock("XS1", [line("M1")]),
        outstock("XS2", [line("M1")], customer="SHOP777"),  # a customer of organisation 100 only
        outstock("XS3", [line("M2"), line("M9", stock="WH9"), line("M1")]),  # forbidden; other org's; fine
        outstock("XS4", [line("M1", 0, unit="Nope")], bill_type="QTCKD01_SYS"),  # no such bill type or unit; no qty
        outstock("XS5", [line("M1", stock="WH2")]),
    ]})
    assert [(s["DIndex"], s["Number"]) for s in status["SuccessEntitys"]] == [(0, "XS1"), (4, "XS5")]
    assert errors_of(status) == [
        (1, "FCustomerID", "字段“客户”是必填项"),
        (2, "FMaterialID", "单据体“明细信息”第1行字段“物料”是必填项"),
        (2, "FMaterialID", "单据体“明细信息”第2行字段“物料”是必填项"),
        (2, "FStockID", "单据体“明细信息”第2行字段“仓库”是必填项"),
        (3, "FBillTypeID", "字段“单据类型”是必填项"),
        (3, "FUnitID", "单据体“明细信息”第1行字段“库存单位”是必填项"),
        (3, "FRealQty", "单据体“明细信息”第1行字段“实发数量”是必填项"),
    ]
    assert (status["MsgCode"], status["ErrorCode"]) == (11, 500)
    assert [d["FBillNo"] for d in kingdee.records(FORM)] == ["XS1", "XS5"]


def test_references_need_audited_base_data_of_the_organisation(kingdee, kingdee_hook) -> None:
    base_data(kingdee)
    kingdee.edit_records("BD_STOCK", ["WH2"], org=ORG, FDocumentStatus="D")  # un-audited by hand
    kingdee.configure(entry_wording="k2")
    [result] = kingdee_hook.batch_save(FORM, [outstock("XS1", [line("M1", stock="WH2")])])
    assert (result.ok, result.field) == (False, "FStockID")
    assert result.message == "单据体实体【明细信息】第【1】行分录，【仓库】字段必录"
    api = WebApi(kingdee)
    other_org = api.status("BatchSave", FORM, {"Model": [outstock("XS2", [line("M1")], org="100")]})
    assert errors_of(other_org) == [(0, "FMaterialID", "单据体实体【明细信息】第【1】行分录，【物料】字段必录"),
                                    (0, "FStockID", "单据体实体【明细信息】第【1】行分录，【仓库】字段必录")]
    verified = api.status("BatchSave", FORM, {"Model": [outstock("XS1", [line("M1", stock="WH2")])],
                                              "IsVerifyBaseDataField": True})
    assert errors_of(verified) == [
        (0, "FStockID", "单据体“明细信息”第1行字段“仓库”的值“WH2”在系统中不存在、未审核或已禁用")]


def test_bill_numbers_are_unique_and_numbered_by_the_rule_when_absent(kingdee) -> None:
    base_data(kingdee)
    api = WebApi(kingdee)
    assert api.status("BatchSave", FORM, {"Model": [outstock("XS1", [line("M1")])]})["IsSuccess"]
    status = api.status("BatchSave", FORM, {"Model": [outstock("XS1", [line("M2")]), outstock("", [line("M2")])]})
    assert errors_of(status) == [(0, "FBillNo", "违反字段唯一性要求：编码唯一。[XS1]在当前系统中已经被使用。")]
    assert status["MsgCode"] == 11 and status["SuccessEntitys"][0]["Number"].startswith("XSCKD")
    kingdee.configure(manual_bill_numbers=False)  # a coding rule that ignores posted numbers
    renumbered = api.status("Save", FORM, {"Model": outstock("XS2", [line("M1")])})
    assert renumbered["IsSuccess"] and renumbered["SuccessEntitys"][0]["Number"].startswith("XSCKD")
    assert "XS2" not in {d["FBillNo"] for d in kingdee.records(FORM)}


def test_one_query_row_per_entry_with_filters_and_paging(kingdee, kingdee_hook) -> None:
    base_data(kingdee)
    documents = [outstock(f"XS{n}", [line("M1", qty) for qty in range(1, n + 1)]) for n in (2, 1, 3)]
    assert all(r.ok for r in kingdee_hook.batch_save(FORM, documents, number_field="FBillNo"))
    where = f"FBillNo in ('XS1','XS3') and FStockOrgId.FNumber = '{ORG}'"
    rows = kingdee_hook.query(FORM, LINES, where, OrderString="FBillNo", Limit=2)
    assert [(r["FBillNo"], r["FRealQty"]) for r in rows] == [("XS1", 1.0), ("XS3", 1.0), ("XS3", 2.0), ("XS3", 3.0)]
    assert len({r["FEntity_FEntryID"] for r in rows}) == 4
    assert kingdee.calls["ExecuteBillQuery"] == 3  # pages of 2, 2 and 0 rows
    header_only = kingdee_hook.query(FORM, "FID,FBillNo", where)
    assert [r["FBillNo"] for r in header_only] == ["XS1", "XS3", "XS3", "XS3"]  # default: one row per entry anyway
    kingdee.configure(query_entry_rows="when_asked")
    assert [r["FBillNo"] for r in kingdee_hook.query(FORM, "FID,FBillNo", where)] == ["XS1", "XS3"]


def test_auto_submit_and_audit_and_the_negative_stock_interaction(kingdee, kingdee_hook) -> None:
    base_data(kingdee)
    api = WebApi(kingdee)
    kingdee.configure(stock_interaction="refuse")
    refused = api.status("BatchSave", FORM, {"Model": [outstock("XS1", [line("M1")])], "IsAutoSubmitAndAudit": True})
    assert errors_of(refused) == [
        (0, "AbstractInteractionResult", "AbstractInteractionResult.InteractionContext is null")]
    assert kingdee.records(FORM) == []  # one transaction: nothing saved
    flagged = {"IsAutoSubmitAndAudit": True, "InterationFlags": "STK_InvCheckResult"}
    assert api.status("BatchSave", FORM, {"Model": [outstock("XS1", [line("M1")])], **flagged})["IsSuccess"]
    assert kingdee.records(FORM)[0]["FDocumentStatus"] == "C"
    [saved] = kingdee_hook.batch_save(FORM, [outstock("XS2", [line("M1")])], number_field="FBillNo")
    assert kingdee_hook.submit(FORM, ids=[saved.id])[0].ok
    audit = kingdee_hook.audit(FORM, ids=[saved.id])[0]  # the hook sends no InterationFlags
    assert not audit.ok and audit.field == "AbstractInteractionResult"
    assert api.status("Audit", FORM, {"Numbers": ["XS2"], "InterationFlags": "STK_InvCheckResult"})["IsSuccess"]


def test_an_audited_document_refuses_save_until_unaudited(kingdee, kingdee_hook) -> None:
    base_data(kingdee)
    [saved] = kingdee_hook.batch_save(FORM, [outstock("XS1", [line("M1", 1), line("M2", 2, unit="Xiang")])],
                                      number_field="FBillNo", auto_submit_and_audit=True)
    first, second = (row["FEntryID"] for row in kingdee.records(FORM)[0]["FEntity"])
    change = outstock("XS1", [line("M1", 5) | {"FEntryID": first}, line("M1", 7)]) | {"FID": saved.id}
    [refused] = kingdee_hook.batch_save(FORM, [change], number_field="FBillNo")
    assert not refused.ok and refused.message == "单据编号为“XS1”的销售出库单，数据已审核，不能修改！"
    again = kingdee_hook.audit(FORM, ids=[saved.id])[0]
    assert again.message == "单据编号为“XS1”的销售出库单，单据已经审核！"  # as captured
    assert kingdee.calls["UnAudit"] == 0
    assert kingdee_hook.unaudit(FORM, ids=[saved.id])[0].ok and kingdee.calls["UnAudit"] == 1
    assert kingdee_hook.batch_save(FORM, [change], number_field="FBillNo")[0].ok  # IsDeleteEntry: row 2 goes
    rows = kingdee.records(FORM)[0]["FEntity"]
    assert [(r["FEntryID"] == first, r["FRealQty"]) for r in rows] == [(True, 5.0), (False, 7.0)]
    assert second not in {r["FEntryID"] for r in rows}
    unknown = change | {"FEntity": [line("M1") | {"FEntryID": 999999}, line("M1")]}
    [bad] = kingdee_hook.batch_save(FORM, [unknown], number_field="FBillNo")
    assert (bad.field, bad.message) == ("FEntryID", "单据体“明细信息”第1行分录内码999999不存在")
    forbid = WebApi(kingdee).call("ExcuteOperation", FORM, {"Numbers": ["XS1"]}, opNumber="Forbid")
    assert forbid["Result"]["ResponseStatus"]["MsgCode"] == 3  # documents are not forbidden


def test_commit_then_500_is_scriptable_and_not_saved_twice(kingdee, kingdee_hook) -> None:
    base_data(kingdee)
    kingdee.fault_after_write(status=500)
    results = kingdee_hook.batch_save(FORM, [outstock("XS1", [line("M1")]), outstock("XS2", [line("M2")])],
                                      pk_field="FID", number_field="FBillNo")
    assert [(r.ok, r.number) for r in results] == [(True, "XS1"), (True, "XS2")]
    assert sorted(d["FBillNo"] for d in kingdee.records(FORM)) == ["XS1", "XS2"]
    assert kingdee.calls["fault:after-write"] == 1 and kingdee.calls["BatchSave"] == 1  # checked, not resent
    kingdee.fail_rows(["XS3"], message="单据校验失败")
    [scripted] = kingdee_hook.batch_save(FORM, [outstock("XS3", [line("M1")])], number_field="FBillNo")
    assert (scripted.field, scripted.message) == ("FBillNo", "单据校验失败")


def test_documents_and_base_data_scripted_over_the_control_endpoint(kingdee,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    seed = {"form": "BD_Customer", "rows": [{"FNumber": "SHOP9", "FName": "九号店", "FCreateOrgId": ORG,
                                             "FUseOrgId": ORG}]}
    for payload in (seed, {"form": "BD_STOCK", "rows": [warehouse("WH1")]},
                    {"form": "BD_MATERIAL", "rows": [material("M1")]}):
        assert sandbox_cli(["control", kingdee.url, "seed", json.dumps(payload)]) == 0
    add = {"form": FORM, "rows": [outstock("XS1", [line("M1")], customer="SHOP9")], "status": "C"}
    assert sandbox_cli(["control", kingdee.url, "add-records", json.dumps(add)]) == 0
    capsys.readouterr()
    assert sandbox_cli(["control", kingdee.url, "records", json.dumps({"form": FORM, "org": ORG})]) == 0
    [document] = json.loads(capsys.readouterr().out)["result"]
    assert (document["FCustomerID"], document["FDocumentStatus"], document["FEntity"][0]["FMaterialID"]) == (
        "SHOP9", "C", "M1")
    assert {c["FNumber"] for c in kingdee.records("BD_Customer", org=ORG)} == {"SHOP001", "SHOP002", "SHOP003", "SHOP9"}
    assert sandbox_cli(["control", kingdee.url, "delete-records", json.dumps({"form": FORM, "numbers": ["XS1"]})]) == 0
    assert kingdee.records(FORM) == []
