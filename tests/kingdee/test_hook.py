"""KingdeeHook against the sandbox over real HTTP: auth modes, relogin, BatchSave rows, queries, faults."""

from __future__ import annotations

import pytest

from jikeyun_kingdee.hooks.kingdee import (
    KingdeeAuthError,
    KingdeeError,
    KingdeeHTTPRefused,
    KingdeeOutcomeUnknown,
    KingdeeTransportError,
    is_retryable,
)

from tests.support.kingdee import ORG, warehouse


@pytest.mark.parametrize(("auth", "login_call"), [("password", "ValidateUser"), ("app_secret", "LoginByAppSecret"),
                                              ("signature", None)])
def test_every_auth_mode_logs_in_once_and_keeps_the_session(connect, sandbox, auth, login_call) -> None:
    hook = connect(auth)
    hook.batch_save("BD_STOCK", [warehouse("WH1")])
    assert hook.query("BD_STOCK", "FNumber,FUseOrgId.FNumber") == [{"FNumber": "WH1", "FUseOrgId.FNumber": ORG}]
    assert hook.organisation_exists(ORG)
    if login_call:
        assert hook.call_counts[login_call] == 1 and sandbox.calls[login_call] == 1
    assert sandbox.count_sessions() == 1  # one cookie session reused by all calls


@pytest.mark.parametrize("auth", ["password", "app_secret", "signature"])
def test_wrong_secret_is_refused_without_leaking_it(connect, auth) -> None:
    hook = connect(auth, secret="wrong-secret-value")
    with pytest.raises(KingdeeError) as info:
        hook.query("BD_STOCK", ["FNumber"])
    assert "wrong-secret-value" not in str(info.value)
    if auth != "signature":
        assert isinstance(info.value, KingdeeAuthError)
    else:
        assert info.value.msg_code == 1
    ok, message = hook.test_connection()
    assert not ok and "wrong-secret-value" not in message


def test_own_extras_and_password_never_become_headers(hook) -> None:
    session = hook.get_conn()
    assert not {"acct_id", "lcid", "auth", "app_id", "org_num", "timeout"} & {h.lower() for h in session.headers}
    assert session.auth is None  # no Basic auth with the password


def test_session_lost_logs_in_again_and_replays_once(hook, sandbox) -> None:
    hook.batch_save("BD_STOCK", [warehouse("WH1")])
    sandbox.expire_sessions()
    results = hook.batch_save("BD_STOCK", [warehouse("WH2")])
    assert results[0].ok
    assert hook.call_counts["ValidateUser"] == 2 and hook.call_counts["BatchSave"] == 2 + 1
    assert [s["FNumber"] for s in sandbox.stocks()] == ["WH1", "WH2"]


def test_session_expiry_after_n_requests_is_survived(connect, sandbox) -> None:
    sandbox.session_max_requests = 2
    hook = connect("app_secret")
    for _ in range(5):
        hook.query("BD_STOCK", ["FNumber"])
    assert hook.call_counts["LoginByAppSecret"] == 3 and sandbox.calls["ExecuteBillQuery"] == 7


def test_session_idle_expiry_with_signature_reopens_silently(connect, sandbox) -> None:
    sandbox.session_idle_seconds = 0
    hook = connect("signature")
    hook.query("BD_STOCK", ["FNumber"])
    hook.query("BD_STOCK", ["FNumber"])
    assert sandbox.calls["ExecuteBillQuery"] == 2 and hook.call_counts["ExecuteBillQuery"] == 2


def test_partial_batch_save_maps_rows_by_dindex(hook, sandbox) -> None:
    rows = [warehouse("WH1"), warehouse("WH2", name=""), warehouse("WH3", FStockProperty="9"),
            warehouse("WH4", FUseOrgId={"FNumber": "NOPE"}), warehouse("WH1"), warehouse("WH6")]
    results = hook.batch_save("BD_STOCK", rows)
    assert [r.ok for r in results] == [True, False, False, False, False, True]
    assert (results[1].field, results[2].field, results[3].field, results[4].field) == (
        "FName", "FStockProperty", "FUseOrgId", "FNumber")
    assert "已经被使用" in (results[4].message or "")
    assert results[0].number == "WH1" and results[0].id == sandbox.stocks()[0]["FStockId"]
    assert sandbox.rows_per_call == [("BatchSave", 6)]


def test_scripted_row_failure(hook, sandbox) -> None:
    sandbox.fail_rows(["WH2"], message="沙箱：库存组织未启用")
    results = hook.batch_save("BD_STOCK", [warehouse("WH1"), warehouse("WH2")])
    assert [r.ok for r in results] == [True, False] and results[1].message == "沙箱：库存组织未启用"
    assert hook.batch_save("BD_STOCK", [warehouse("WH2")])[0].ok  # consumed after one save


def test_query_pages_with_start_row_and_limit(hook, sandbox) -> None:
    sandbox.add_stocks([warehouse(f"WH{i:03d}") for i in range(25)])
    rows = hook.query("BD_STOCK", ["FStockId", "FNumber"], f"FUseOrgId.FNumber = '{ORG}'", Limit=10,
                      OrderString="FNumber")
    assert [r["FNumber"] for r in rows] == [f"WH{i:03d}" for i in range(25)]
    assert hook.call_counts["ExecuteBillQuery"] == 3


def test_wrapped_query_errors_are_typed(hook) -> None:
    with pytest.raises(KingdeeError) as info:
        hook.query("BD_STOCK", ["FNoSuchField"])
    assert info.value.msg_code == 9 and "FNoSuchField" in info.value.errors[0].message


def test_form_and_organisation_checks(hook) -> None:
    assert hook.form_exists("BD_STOCK") and hook.form_exists("ORG_Organizations")
    assert not hook.form_exists("NO_SUCH_FORM")
    assert hook.organisation_exists("100") and not hook.organisation_exists("999")


def test_submit_audit_unaudit_view_forbid(hook, sandbox) -> None:
    ids = [r.id for r in hook.batch_save("BD_STOCK", [warehouse("WH1"), warehouse("WH2")])]
    assert all(r.ok for r in hook.submit("BD_STOCK", ids=ids))
    assert all(r.ok for r in hook.audit("BD_STOCK", numbers=["WH1", "WH2"]))
    again = hook.audit("BD_STOCK", ids=ids)
    assert not again[0].ok and "已经审核" in (again[0].message or "")
    assert hook.unaudit("BD_STOCK", ids=ids[:1])[0].ok
    view = hook.call("View", {"formid": "BD_STOCK", "data": {"Number": "WH1"}})["Result"]["Result"]
    assert view["DocumentStatus"] == "D" and view["Name"][0]["Value"] == "仓库WH1"
    assert hook.execute_operation("BD_STOCK", "Forbid", ids=ids[1:])[0].ok
    assert [s["FForbidStatus"] for s in sandbox.stocks()] == ["A", "B"]


def test_5xx_on_a_read_is_retried(hook, sandbox) -> None:
    sandbox.faults.update(status=[500, 503])
    assert hook.query("BD_STOCK", ["FNumber"]) == []
    assert sandbox.calls["fault:http500"] == 1 and sandbox.calls["fault:http503"] == 1


def test_5xx_beyond_the_retry_limit_fails_typed(hook, sandbox) -> None:
    sandbox.faults.update(status=[502, 502, 502])
    with pytest.raises(KingdeeTransportError) as info:
        hook.query("BD_STOCK", ["FNumber"])
    assert info.value.status == 502


def test_garbage_and_dropped_connections_on_reads_are_retried(hook, sandbox) -> None:
    hook.query("BD_STOCK", ["FNumber"])
    sandbox.faults.update(garbage=1, drop=1)
    assert hook.query("BD_STOCK", ["FNumber"]) == []
    assert sandbox.calls["fault:drop"] == 1 and sandbox.calls["fault:garbage"] == 1


def test_write_timeout_is_checked_by_number_before_resending(connect, sandbox) -> None:
    hook = connect("password", timeout=0.5)
    hook.batch_save("BD_STOCK", [warehouse("WH0")])
    sandbox.fault_after_write(delay=1.5)  # applied, but the answer comes too late
    results = hook.batch_save("BD_STOCK", [warehouse("WH1"), warehouse("WH2")], pk_field="FStockId")
    assert [r.ok for r in results] == [True, True]
    assert [s["FNumber"] for s in sandbox.stocks()] == ["WH0", "WH1", "WH2"]  # not saved twice
    assert sandbox.calls["BatchSave"] == 2 and sandbox.rows_per_call[-1] == ("BatchSave", 2)


def test_dropped_write_is_resent_only_for_unsaved_rows(hook, sandbox) -> None:
    hook.query("BD_STOCK", ["FNumber"])
    sandbox.faults.update(drop=1)  # dropped before the server saw it
    results = hook.batch_save("BD_STOCK", [warehouse("WH1")], pk_field="FStockId")
    assert results[0].ok and len(sandbox.stocks()) == 1 and sandbox.calls["BatchSave"] == 1


def test_5xx_after_a_write_without_a_key_is_not_resent(hook, sandbox) -> None:
    hook.query("BD_STOCK", ["FNumber"])
    sandbox.fault_after_write(status=500)
    with pytest.raises(KingdeeOutcomeUnknown):
        hook.batch_save("BD_STOCK", [warehouse("WH1")])
    assert sandbox.calls["BatchSave"] == 1 and len(sandbox.stocks()) == 1


def test_latency_below_the_timeout_is_tolerated(connect, sandbox) -> None:
    hook = connect("password", timeout=5)
    sandbox.faults.update(latency=0.2, latency_count=2)
    assert hook.batch_save("BD_STOCK", [warehouse("WH1")])[0].ok


def test_forbid_and_enable_by_numbers_and_ids_with_row_errors(hook, sandbox) -> None:
    ids = [r.id for r in hook.batch_save("BD_STOCK", [warehouse("WH1"), warehouse("WH2")])]
    results = hook.forbid("BD_STOCK", ["WH1", "NOPE"])
    assert [(r.ok, r.number) for r in results] == [(True, "WH1"), (False, None)] and "不存在" in results[1].message
    again = hook.forbid("BD_STOCK", ids=ids)
    assert [r.ok for r in again] == [False, True] and "已禁用" in (again[0].message or "")
    assert hook.query("BD_STOCK", "FNumber,FForbidStatus") == [{"FNumber": "WH1", "FForbidStatus": "B"},
                                                              {"FNumber": "WH2", "FForbidStatus": "B"}]
    enabled = hook.enable("BD_STOCK", ids=[ids[1]])
    assert enabled[0].ok and enabled[0].id == ids[1]
    assert hook.call_counts["ExcuteOperation"] == 3 and sandbox.calls["ExcuteOperation"] == 3


@pytest.mark.parametrize("applied", [False, True])
def test_forbid_with_an_unknown_outcome_reads_the_status_instead_of_resending(connect, sandbox, applied) -> None:
    hook = connect("password", timeout=0.5)
    ids = [r.id for r in hook.batch_save("BD_STOCK", [warehouse("WH1"), warehouse("WH2")])]
    if applied:
        sandbox.fault_after_write(delay=1.5)  # forbidden, but the answer comes after the client's timeout
    else:
        sandbox.faults.update(status=[502])  # a proxy error before the server saw the call
    results = hook.forbid("BD_STOCK", ids=ids, pk_field="FStockId")
    assert [r.ok for r in results] == [True, True] and [r.id for r in results] == ids
    assert {s["FForbidStatus"] for s in sandbox.stocks()} == {"B"}
    assert hook.call_counts["ExcuteOperation"] == (1 if applied else 2)  # resent only when not applied
    assert sandbox.rows_written["Forbid"] == 2 and hook.retry_counts["ExcuteOperation"] == 0


def test_unknown_outcome_of_an_operation_without_a_check_is_raised(hook, sandbox) -> None:
    hook.batch_save("BD_STOCK", [warehouse("WH1")])
    sandbox.faults.update(status=[500])
    with pytest.raises(KingdeeOutcomeUnknown):
        hook.execute_operation("BD_STOCK", "Forbid", numbers=["WH1"])
    assert sandbox.calls["ExcuteOperation"] == 0 and sandbox.calls["fault:http500"] == 1  # not resent blindly


def test_auto_submit_and_audit_reports_each_rows_status(hook, sandbox) -> None:
    sandbox.fail_rows(["WH2"], message="审批流未通过", stage="audit")
    results = hook.batch_save("BD_STOCK", [warehouse("WH1"), warehouse("WH2")], auto_submit_and_audit=True)
    assert (results[0].ok, results[0].document_status) == (True, "C")
    assert (results[1].ok, results[1].message) == (False, "审核失败：审批流未通过")
    assert [s["FNumber"] for s in sandbox.stocks()] == ["WH1"]


def test_query_falls_back_when_the_server_refuses_a_larger_limit(hook, sandbox) -> None:
    sandbox.configure(query_limit=2000)
    sandbox.add_stocks([warehouse(f"WH{i:04d}") for i in range(2500)])
    rows = hook.query("BD_STOCK", ["FNumber"], Limit=5000, OrderString="FNumber")
    assert len(rows) == 2500 and len({r["FNumber"] for r in rows}) == 2500
    assert hook.query_limit == 2000 and hook.call_counts["ExecuteBillQuery"] == 3  # refused, then 2 pages
    hook.query("BD_STOCK", ["FNumber"], Limit=5000)
    assert hook.call_counts["ExecuteBillQuery"] == 5  # remembered: no second refusal


def test_query_continues_when_the_server_cuts_a_page_silently(hook, sandbox) -> None:
    sandbox.configure(query_limit=2000, query_over_limit="truncate")
    sandbox.add_stocks([warehouse(f"WH{i:04d}") for i in range(2100)])
    assert len(hook.query("BD_STOCK", ["FNumber"], Limit=5000)) == 2100
    assert hook.call_counts["ExecuteBillQuery"] == 2 and hook.query_limit == 2000


def test_a_silently_cut_page_is_known_before_the_caller_sees_it(hook, sandbox) -> None:
    sandbox.configure(query_limit=2000, query_over_limit="truncate")
    sandbox.add_stocks([warehouse(f"WH{i:04d}") for i in range(2100)])
    first = next(iter(hook.query_pages("BD_STOCK", ["FNumber"], Limit=2001)))
    assert len(first) == 2000 and hook.query_limit == 2000  # so a caller does not take the page as the last one


def test_top_row_count_stops_paging(hook, sandbox) -> None:
    sandbox.add_stocks([warehouse("WH1"), warehouse("WH2")])
    assert len(hook.query("BD_STOCK", ["FNumber"], TopRowCount=1, Limit=1)) == 1
    assert hook.form_exists("BD_STOCK")
    assert hook.call_counts["ExecuteBillQuery"] == 2  # one each: no empty second page


def test_retries_are_counted_and_only_transport_errors_retry(hook, sandbox) -> None:
    sandbox.faults.update(status=[503, 500])
    hook.query("BD_STOCK", ["FNumber"])
    assert hook.retry_counts == {"ExecuteBillQuery": 2}
    assert is_retryable(KingdeeTransportError("x")) and not is_retryable(KingdeeOutcomeUnknown("x"))
    assert not is_retryable(KingdeeHTTPRefused("x", status=401)) and not is_retryable(KingdeeError("x"))
    assert KingdeeTransportError.retryable and not KingdeeError.retryable
