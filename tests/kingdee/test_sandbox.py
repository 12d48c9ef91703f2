"""The Kingdee sandbox speaks the protocol to a client nobody here wrote, and to plain HTTP."""

from __future__ import annotations

import json
import time

import pytest
import requests

from jikeyun_kingdee.sandbox.__main__ import main as sandbox_cli

from tests.support.kingdee import ORG, STUB, sdk_client, warehouse


def test_official_sdk_signs_in_saves_and_queries(sandbox) -> None:
    sdk = sdk_client(sandbox)
    saved = json.loads(sdk.BatchSave("BD_STOCK", {"Model": [warehouse("WH1"), warehouse("WH2", name="")]}))
    status = saved["Result"]["ResponseStatus"]
    assert status["SuccessEntitys"][0]["Number"] == "WH1" and status["Errors"][0]["DIndex"] == 1
    rows = json.loads(
        sdk.ExecuteBillQuery(
            {
                "FormId": "BD_STOCK",
                "FieldKeys": "FStockId,FNumber,FUseOrgId.FNumber",
                "FilterString": f"FNumber in ('WH1','WH2') and FUseOrgId.FNumber = '{ORG}'",
            }
        )
    )
    assert rows == [[status["SuccessEntitys"][0]["Id"], "WH1", ORG]]
    assert sdk.cookiesStore.SID and sandbox.count_sessions() == 1  # the SDK reuses the cookie it was given
    sdk.Submit("BD_STOCK", {"Numbers": ["WH1"]})
    assert json.loads(sdk.Audit("BD_STOCK", {"Numbers": ["WH1"]}))["Result"]["ResponseStatus"]["IsSuccess"]


def test_official_sdk_with_a_wrong_secret_gets_session_lost(sandbox) -> None:
    reply = json.loads(
        sdk_client(sandbox, app_secret="0" * 32).ExecuteBillQuery({"FormId": "BD_STOCK", "FieldKeys": "FNumber"})
    )
    assert reply[0][0]["Result"]["ResponseStatus"]["MsgCode"] == 1


def _post(sandbox, service: str, body, session: requests.Session | None = None):
    return (session or requests).post(f"{sandbox.url}/k3cloud/{service}.common.kdsvc", json=body, timeout=5)


def test_three_body_shapes_and_case_insensitive_paths(sandbox) -> None:
    http = requests.Session()
    login = _post(
        sandbox,
        f"{STUB}AuthService.ValidateUser".lower(),
        {"parameters": json.dumps([sandbox.acct_id, sandbox.username, sandbox.password, 2052])},
        http,
    )
    assert login.json()["LoginResultType"] == 1 and "kdservice-sessionid" in http.cookies
    positional = _post(
        sandbox,
        f"{STUB}DynamicFormService.batchSave",
        {"parameters": ["BD_STOCK", json.dumps({"Model": [warehouse("WH1")]})]},
        http,
    )
    as_string = _post(
        sandbox,
        f"{STUB}DynamicFormService.BatchSave",
        {"FormId": "BD_STOCK", "Data": json.dumps({"Model": [warehouse("WH2")]})},
        http,
    )
    named = _post(
        sandbox, f"{STUB}DynamicFormService.Save", {"formid": "BD_STOCK", "data": {"Model": warehouse("WH3")}}, http
    )
    assert positional.json()["Result"]["ResponseStatus"]["IsSuccess"]
    assert as_string.json()["Result"]["ResponseStatus"]["IsSuccess"]
    assert named.json()["Result"]["Number"] == "WH3"
    query = _post(
        sandbox,
        f"{STUB}DynamicFormService.ExecuteBillQuery",
        {"parameters": [json.dumps({"FormId": "BD_STOCK", "FieldKeys": "FNumber", "OrderString": "FNumber"})]},
        http,
    )
    assert query.json() == [["WH1"], ["WH2"], ["WH3"]]
    assert sandbox.rows_per_call == [("BatchSave", 1), ("BatchSave", 1), ("Save", 1)]


def test_login_by_sign_and_wrong_data_centre(sandbox) -> None:
    import hashlib

    ts = "1700000000"
    parts = sorted([sandbox.acct_id, sandbox.username, sandbox.app_id, sandbox.app_secret, ts])
    sign = hashlib.sha256("".join(parts).encode()).hexdigest()
    reply = _post(
        sandbox,
        f"{STUB}AuthService.LoginBySign",
        {"parameters": [sandbox.acct_id, sandbox.username, sandbox.app_id, ts, sign, 2052]},
    )
    assert reply.json()["LoginResultType"] == 1
    bad = _post(
        sandbox,
        f"{STUB}AuthService.ValidateUser",
        {"acctID": "other", "username": sandbox.username, "password": sandbox.password, "lcid": 2052},
    )
    assert bad.json()["LoginResultType"] == 0 and not bad.cookies


def test_without_session_every_operation_reports_msgcode_1(sandbox) -> None:
    reply = _post(sandbox, f"{STUB}DynamicFormService.BatchSave", {"formid": "BD_STOCK", "data": {"Model": []}})
    status = reply.json()["Result"]["ResponseStatus"]
    assert (status["MsgCode"], status["Errors"][0]["Message"]) == (1, "会话信息已丢失，请重新登录")


def test_organisations_are_configurable(sandbox, hook) -> None:
    assert [
        r["FNumber"] for r in hook.query("ORG_Organizations", "FOrgID,FNumber,FName,FDocumentStatus,FForbidStatus")
    ] == ["100", "I0134"]
    sandbox.set_organisations(["200"])
    assert not hook.organisation_exists("I0134")
    result = hook.batch_save("BD_STOCK", [warehouse("WH1")])[0]
    assert not result.ok and result.field == "FCreateOrgId"


def test_scripting_over_http_and_the_command_line(sandbox, hook, capsys: pytest.CaptureFixture[str]) -> None:
    assert sandbox_cli(["control", sandbox.url, "fail-rows", json.dumps({"numbers": ["WH1"], "message": "x"})]) == 0
    assert not hook.batch_save("BD_STOCK", [warehouse("WH1")])[0].ok
    sandbox_cli(["control", sandbox.url, "add-stocks", json.dumps({"rows": [warehouse("WH7")]})])
    capsys.readouterr()
    sandbox_cli(["control", sandbox.url, "stocks", "{}"])
    assert [s["FNumber"] for s in json.loads(capsys.readouterr().out)["result"]] == ["WH7"]
    sandbox_cli(["control", sandbox.url, "expire-sessions"])
    assert sandbox.count_sessions() == 0
    capsys.readouterr()
    assert sandbox_cli(["control", sandbox.url, "no-such-command"]) == 1
    assert "unknown kingdee sandbox command 'no-such-command'" in capsys.readouterr().err


def test_official_sdk_forbids_and_enables_by_number(sandbox) -> None:
    sdk = sdk_client(sandbox)
    sdk.BatchSave("BD_STOCK", {"Model": [warehouse("WH1"), warehouse("WH2")], "IsAutoSubmitAndAudit": True})
    forbid = json.loads(sdk.ExcuteOperation("BD_STOCK", "Forbid", {"Numbers": ["WH1", "NOPE"]}))
    status = forbid["Result"]["ResponseStatus"]
    assert [e["Number"] for e in status["SuccessEntitys"]] == ["WH1"]
    assert [(e["DIndex"], "不存在" in e["Message"]) for e in status["Errors"]] == [(1, True)]
    again = json.loads(sdk.ExcuteOperation("BD_STOCK", "Forbid", {"Numbers": ["WH1"]}))["Result"]["ResponseStatus"]
    assert not again["IsSuccess"] and "已禁用" in again["Errors"][0]["Message"]
    rows = json.loads(
        sdk.ExecuteBillQuery({"FormId": "BD_STOCK", "FieldKeys": "FNumber,FForbidStatus", "OrderString": "FNumber"})
    )
    assert rows == [["WH1", "B"], ["WH2", "A"]]
    enable = json.loads(sdk.ExcuteOperation("BD_STOCK", "Enable", {"Numbers": ["WH1", "WH2"]}))
    status = enable["Result"]["ResponseStatus"]
    assert [e["Number"] for e in status["SuccessEntitys"]] == ["WH1"]
    assert status["Errors"][0]["DIndex"] == 1 and "未禁用" in status["Errors"][0]["Message"]
    assert {s["FNumber"]: s["FForbidStatus"] for s in sandbox.stocks()} == {"WH1": "A", "WH2": "A"}
    assert sandbox.calls["ExcuteOperation"] == 3 and sandbox.rows_written["Forbid"] == 3


def test_excute_operation_by_ids_lower_case_path_and_unknown_operation(sandbox) -> None:
    ids = sandbox.add_stocks([warehouse("WH1"), warehouse("WH2")])
    http = requests.Session()
    _post(
        sandbox,
        f"{STUB}AuthService.ValidateUser",
        {"acctID": sandbox.acct_id, "username": sandbox.username, "password": sandbox.password, "lcid": 2052},
        http,
    )
    reply = _post(
        sandbox,
        f"{STUB}DynamicFormService.ExcuteOperation".lower(),
        {"formid": "BD_STOCK", "opNumber": "Forbid", "data": {"Ids": ",".join(map(str, ids))}},
        http,
    )
    assert reply.json()["Result"]["ResponseStatus"]["IsSuccess"]
    assert {s["FForbidStatus"] for s in sandbox.stocks()} == {"B"}
    unknown = _post(
        sandbox,
        f"{STUB}DynamicFormService.ExcuteOperation",
        {"formid": "BD_STOCK", "opNumber": "Explode", "data": {"Numbers": ["WH1"]}},
        http,
    )
    assert unknown.json()["Result"]["ResponseStatus"]["MsgCode"] == 3


def test_auto_submit_and_audit_is_one_transaction(sandbox) -> None:
    sdk = sdk_client(sandbox)
    sandbox.fail_rows(["WH2"], message="审批流未通过", stage="audit")
    sandbox.fail_rows(["WH3"], message="提交校验失败", stage="submit")
    saved = json.loads(
        sdk.BatchSave(
            "BD_STOCK",
            {
                "Model": [warehouse("WH1"), warehouse("WH2"), warehouse("WH3")],
                "IsAutoSubmitAndAudit": "true",
                "NeedReturnFields": ["FNumber", "FDocumentStatus"],
            },
        )
    )["Result"]
    status = saved["ResponseStatus"]
    assert [(e["DIndex"], e["FieldName"], e["Message"]) for e in status["Errors"]] == [
        (1, None, "审核失败：审批流未通过"),
        (2, None, "提交失败：提交校验失败"),
    ]
    assert saved["NeedReturnData"] == [{"FNumber": "WH1", "FDocumentStatus": "C"}]
    assert [(s["FNumber"], s["FDocumentStatus"]) for s in sandbox.stocks()] == [("WH1", "C")]  # WH2, WH3 not saved


def test_auto_flag_modes_on_creates_and_updates(sandbox) -> None:
    sdk = sdk_client(sandbox)
    sandbox.configure(auto_audit="ignore", echo_return_fields=False)
    saved = json.loads(
        sdk.BatchSave(
            "BD_STOCK",
            {"Model": [warehouse("WH1")], "IsAutoSubmitAndAudit": True, "NeedReturnFields": ["FDocumentStatus"]},
        )
    )["Result"]
    assert saved["NeedReturnData"] == [{}] and sandbox.stocks()[0]["FDocumentStatus"] == "A"  # flag not known
    stock_id = sandbox.stocks()[0]["FStockId"]
    update = {"Model": [warehouse("WH1", name="新名") | {"FStockId": stock_id}], "IsAutoSubmitAndAudit": True}
    refused = json.loads(sdk.BatchSave("BD_STOCK", update))["Result"]["ResponseStatus"]
    assert not refused["IsSuccess"] and "更新" in refused["Errors"][0]["Message"]  # default: refuse on updates
    sandbox.configure(auto_audit_on_update="transaction")
    assert json.loads(sdk.BatchSave("BD_STOCK", update))["Result"]["ResponseStatus"]["IsSuccess"]
    assert (sandbox.stocks()[0]["FName"], sandbox.stocks()[0]["FDocumentStatus"]) == ("新名", "C")
    with pytest.raises(ValueError, match="auto_audit must be one of"):
        sandbox.configure(auto_audit="sometimes")


@pytest.mark.parametrize("over_limit", ["refuse", "truncate"])
def test_query_limit_is_capped_by_the_server(sandbox, hook, over_limit) -> None:
    sandbox.configure(query_limit=5, query_over_limit=over_limit)
    sandbox.add_stocks([warehouse(f"WH{i:02d}") for i in range(7)])
    body = {"FormId": "BD_STOCK", "FieldKeys": "FNumber", "OrderString": "FNumber", "Limit": 6}
    reply = json.loads(sdk_client(sandbox).ExecuteBillQuery(body))
    if over_limit == "refuse":
        assert reply[0][0]["Result"]["ResponseStatus"]["MsgCode"] == 8
    else:
        assert len(reply) == 5
    assert len(json.loads(sdk_client(sandbox).ExecuteBillQuery(body | {"Limit": 5, "StartRow": 5}))) == 2


def test_row_latency_and_counters_over_the_control_endpoint(sandbox, hook) -> None:
    assert sandbox_cli(["control", sandbox.url, "row-latency", json.dumps({"seconds": 0.05})]) == 0
    started = time.perf_counter()
    hook.batch_save("BD_STOCK", [warehouse(f"WH{i}") for i in range(4)])
    assert time.perf_counter() - started >= 0.2  # 4 rows × 50 ms
    sandbox.configure(row_latency=0)
    hook.submit("BD_STOCK", numbers=["WH0", "WH1"])
    counted = requests.post(f"{sandbox.url}/_sandbox/rows-written", json={}, timeout=5).json()["result"]
    assert counted == {"BatchSave": 4, "Submit": 2}
    assert (
        requests.post(f"{sandbox.url}/_sandbox/configure", json={"query_limit": 10}, timeout=5).json()["result"][
            "query_limit"
        ]
        == 10
    )


def test_hand_edits_for_drift(sandbox, hook) -> None:
    hook.batch_save("BD_STOCK", [warehouse("WH1"), warehouse("WH2")])
    assert (
        sandbox_cli(
            [
                "control",
                sandbox.url,
                "edit-stocks",
                json.dumps({"numbers": ["WH1"], "FName": "手改", "FForbidStatus": "B"}),
            ]
        )
        == 0
    )
    assert sandbox.delete_stocks(["WH2"], org=ORG) == 1
    assert [(s["FNumber"], s["FName"], s["FForbidStatus"]) for s in sandbox.stocks()] == [("WH1", "手改", "B")]
    with pytest.raises(ValueError, match="cannot edit"):
        sandbox.edit_stocks(["WH1"], FStockId=1)
