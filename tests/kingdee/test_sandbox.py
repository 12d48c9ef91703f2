"""The Kingdee sandbox speaks the protocol to a client nobody here wrote, and to plain HTTP."""

from __future__ import annotations

import json

import pytest
import requests
from k3cloud_webapi_sdk.main import K3CloudApiSdk

from jikeyun_kingdee.sandbox.__main__ import main as sandbox_cli

from tests.support.kingdee import ORG, warehouse

STUB = "Kingdee.BOS.WebApi.ServicesStub."


def sdk_client(sandbox, app_secret: str | None = None) -> K3CloudApiSdk:
    url = f"{sandbox.url}/k3cloud/"
    sdk = K3CloudApiSdk(url)
    sdk.InitConfig(sandbox.acct_id, sandbox.username, sandbox.app_id, app_secret or sandbox.app_secret, url)
    return sdk


def test_official_sdk_signs_in_saves_and_queries(sandbox) -> None:
    sdk = sdk_client(sandbox)
    saved = json.loads(sdk.BatchSave("BD_STOCK", {"Model": [warehouse("WH1"), warehouse("WH2", name="")]}))
    status = saved["Result"]["ResponseStatus"]
    assert status["SuccessEntitys"][0]["Number"] == "WH1" and status["Errors"][0]["DIndex"] == 1
    rows = json.loads(sdk.ExecuteBillQuery({"FormId": "BD_STOCK", "FieldKeys": "FStockId,FNumber,FUseOrgId.FNumber",
                                            "FilterString": f"FNumber in ('WH1','WH2') and FUseOrgId.FNumber = '{ORG}'"}))
    assert rows == [[status["SuccessEntitys"][0]["Id"], "WH1", ORG]]
    assert sdk.cookiesStore.SID and sandbox.count_sessions() == 1  # the SDK reuses the cookie it was given
    sdk.Submit("BD_STOCK", {"Numbers": ["WH1"]})
    assert json.loads(sdk.Audit("BD_STOCK", {"Numbers": ["WH1"]}))["Result"]["ResponseStatus"]["IsSuccess"]


def test_official_sdk_with_a_wrong_secret_gets_session_lost(sandbox) -> None:
    reply = json.loads(sdk_client(sandbox, app_secret="0" * 32).ExecuteBillQuery(
        {"FormId": "BD_STOCK", "FieldKeys": "FNumber"}))
    assert reply[0][0]["Result"]["ResponseStatus"]["MsgCode"] == 1


def _post(sandbox, service: str, body, session: requests.Session | None = None):
    return (session or requests).post(f"{sandbox.url}/k3cloud/{service}.common.kdsvc", json=body, timeout=5)


def test_three_body_shapes_and_case_insensitive_paths(sandbox) -> None:
    http = requests.Session()
    login = _post(sandbox, f"{STUB}AuthService.ValidateUser".lower(),
                  {"parameters": json.dumps([sandbox.acct_id, sandbox.username, sandbox.password, 2052])}, http)
    assert login.json()["LoginResultType"] == 1 and "kdservice-sessionid" in http.cookies
    positional = _post(sandbox, f"{STUB}DynamicFormService.batchSave",
                       {"parameters": ["BD_STOCK", json.dumps({"Model": [warehouse("WH1")]})]}, http)
    as_string = _post(sandbox, f"{STUB}DynamicFormService.BatchSave",
                      {"FormId": "BD_STOCK", "Data": json.dumps({"Model": [warehouse("WH2")]})}, http)
    named = _post(sandbox, f"{STUB}DynamicFormService.Save", {"formid": "BD_STOCK", "data": {"Model": warehouse("WH3")}},
                  http)
    assert positional.json()["Result"]["ResponseStatus"]["IsSuccess"]
    assert as_string.json()["Result"]["ResponseStatus"]["IsSuccess"]
    assert named.json()["Result"]["Number"] == "WH3"
    query = _post(sandbox, f"{STUB}DynamicFormService.ExecuteBillQuery",
                  {"parameters": [json.dumps({"FormId": "BD_STOCK", "FieldKeys": "FNumber", "OrderString": "FNumber"})]},
                  http)
    assert query.json() == [["WH1"], ["WH2"], ["WH3"]]
    assert sandbox.rows_per_call == [("BatchSave", 1), ("BatchSave", 1), ("Save", 1)]


def test_login_by_sign_and_wrong_data_centre(sandbox) -> None:
    import hashlib

    ts = "1700000000"
    parts = sorted([sandbox.acct_id, sandbox.username, sandbox.app_id, sandbox.app_secret, ts])
    sign = hashlib.sha256("".join(parts).encode()).hexdigest()
    reply = _post(sandbox, f"{STUB}AuthService.LoginBySign",
                  {"parameters": [sandbox.acct_id, sandbox.username, sandbox.app_id, ts, sign, 2052]})
    assert reply.json()["LoginResultType"] == 1
    bad = _post(sandbox, f"{STUB}AuthService.ValidateUser",
                {"acctID": "other", "username": sandbox.username, "password": sandbox.password, "lcid": 2052})
    assert bad.json()["LoginResultType"] == 0 and not bad.cookies


def test_without_session_every_operation_reports_msgcode_1(sandbox) -> None:
    reply = _post(sandbox, f"{STUB}DynamicFormService.BatchSave", {"formid": "BD_STOCK", "data": {"Model": []}})
    status = reply.json()["Result"]["ResponseStatus"]
    assert (status["MsgCode"], status["Errors"][0]["Message"]) == (1, "会话信息已丢失，请重新登录")


def test_organisations_are_configurable(sandbox, hook) -> None:
    assert [r["FNumber"] for r in hook.query("ORG_Organizations", "FOrgID,FNumber,FName,FDocumentStatus,FForbidStatus")] \
        == ["100", "I0134"]
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
