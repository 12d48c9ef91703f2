"""Upsert by business key against the sandbox: create, update, unchanged, audited, rejected, the duplicate race."""

from __future__ import annotations

import pytest

from jikeyun_kingdee.upsert import Lookup, plan_lookup, plan_rows, refusal_cause, upsert
from jikeyun_kingdee.values import same_value

from tests.support.kingdee import ORG, stock_target, warehouse


def run(hook, rows, *, states=None, known_records=None, **settings):
    return upsert(hook, stock_target(**settings), rows, states=states, known_records=known_records)


@pytest.mark.parametrize(("desired", "current", "same"), [
    (True, True, True), ("true", True, True), (True, "1", True), (1, True, True), (False, "0", True),
    ("1", 1, True), ("1", "1", True), ({"FNumber": "I0134"}, "I0134", True),
    ("true", False, False), ("2", "1", False), ({"FNumber": "100"}, "I0134", False), ("仓", "仓 ", True),
])
def test_same_value_normalises_booleans_numbers_and_references(desired, current, same) -> None:
    assert same_value(desired, current) is same


def test_plan_is_pure_and_sorts_rows() -> None:
    rows = [warehouse("A"), warehouse("B"), warehouse("C", name="new"), warehouse("A"), warehouse(""), warehouse("D")]
    fields = stock_target().field_map
    assert fields.compared["FUseOrgId"] == "FUseOrgId.FNumber" and fields.compared["FName"] == "FName"
    stored = {"FName": "仓库B", "FStockProperty": "1", "FCreateOrgId.FNumber": ORG, "FUseOrgId.FNumber": ORG,
              "FAllowMinusQty": True, "FDocumentStatus": "C"}
    existing = {"B": stored, "C": stored | {"FName": "old"}, "D": stored | {"FName": "仓库D", "FDocumentStatus": "A"}}
    plan = plan_rows(rows, ["active"] * 6, list(range(6)), existing, fields, number_field="FNumber",
                     approval="explicit")
    assert (plan.creates, plan.updates, plan.unchanged, plan.approve_only) == ([0], [2], [1], [5])
    assert set(plan.rejected) == {3, 4}
    assert plan_rows(rows, ["active"] * 6, [5], existing, fields, number_field="FNumber",
                     approval="none").unchanged == [5]  # not audited, but nothing asks for approval


def test_all_new_rows_are_created_submitted_and_audited(hook, sandbox) -> None:
    outcomes = run(hook, [warehouse(f"WH{i}") for i in range(5)])
    assert [o.status for o in outcomes] == ["created"] * 5
    assert {s["FDocumentStatus"] for s in sandbox.stocks(ORG)} == {"C"}
    assert [o.id for o in outcomes] == [s["FStockId"] for s in sandbox.stocks(ORG)]
    assert {k: v for k, v in hook.call_counts.items() if k != "ValidateUser"} == {
        "ExecuteBillQuery": 1, "BatchSave": 1, "Submit": 1, "Audit": 1}


def test_second_run_with_the_same_rows_writes_nothing(hook) -> None:
    rows = [warehouse(f"WH{i}") for i in range(5)]
    run(hook, rows)
    hook.call_counts.clear()
    same_rows_other_spelling = [r | {"FAllowMinusQty": "true", "FStockProperty": 1} for r in rows]
    assert [o.status for o in run(hook, same_rows_other_spelling)] == ["unchanged"] * 5
    assert dict(hook.call_counts) == {"ExecuteBillQuery": 1}


def test_changed_audited_rows_are_unaudited_saved_and_audited_again(hook, sandbox) -> None:
    rows = [warehouse(f"WH{i}") for i in range(4)]
    run(hook, rows)
    hook.call_counts.clear()
    rows[1] = warehouse("WH1", name="华东一号仓")
    rows[3] = warehouse("WH3", FAllowMinusQty=False)
    outcomes = run(hook, [*rows, warehouse("WH9")])
    assert [o.status for o in outcomes] == ["unchanged", "updated", "unchanged", "updated", "created"]
    stored = {s["FNumber"]: s for s in sandbox.stocks(ORG)}
    assert stored["WH1"]["FName"] == "华东一号仓" and stored["WH3"]["FAllowMinusQty"] is False
    assert {s["FDocumentStatus"] for s in stored.values()} == {"C"}
    assert outcomes[1].id == stored["WH1"]["FStockId"]  # updated in place, not duplicated
    assert dict(hook.call_counts) == {"ExecuteBillQuery": 1, "UnAudit": 1, "BatchSave": 2, "Submit": 1, "Audit": 1}


def test_save_on_audited_without_unaudit_would_be_rejected(hook, sandbox) -> None:
    ids = [r.id for r in hook.batch_save("BD_STOCK", [warehouse("WH1")])]
    hook.submit("BD_STOCK", ids=ids)
    hook.audit("BD_STOCK", ids=ids)
    result = hook.batch_save("BD_STOCK", [warehouse("WH1", name="x") | {"FStockId": ids[0]}])[0]
    assert not result.ok and "已审核" in (result.message or "")


def test_invalid_rows_are_rejected_with_kingdee_field_and_message_others_saved(hook, sandbox) -> None:
    outcomes = run(hook, [warehouse("WH1"), warehouse("WH2", name=""), warehouse("WH3"), warehouse("WH1")])
    assert [o.status for o in outcomes] == ["created", "rejected", "created", "rejected"]
    assert outcomes[1].field == "FName" and outcomes[1].message == "字段“名称”是必填项"
    assert "more than once" in (outcomes[3].message or "")
    assert sorted(s["FNumber"] for s in sandbox.stocks()) == ["WH1", "WH3"]


def test_unaudited_leftovers_are_approved(hook, sandbox) -> None:
    hook.batch_save("BD_STOCK", [warehouse("WH1")])  # saved earlier, never audited
    outcomes = run(hook, [warehouse("WH1")])
    assert outcomes[0].status == "updated" and sandbox.stocks()[0]["FDocumentStatus"] == "C"
    assert hook.call_counts["BatchSave"] == 1  # no second save of unchanged content


def test_concurrent_writer_duplicate_is_resolved_by_update(hook, sandbox) -> None:
    sandbox.add_stocks([warehouse("WH2", name="written by someone else")], on_next_save=True)
    outcomes = run(hook, [warehouse("WH1"), warehouse("WH2"), warehouse("WH3")])
    assert [o.status for o in outcomes] == ["created", "updated", "created"]
    stored = {s["FNumber"]: s for s in sandbox.stocks(ORG)}
    assert len(stored) == 3 and stored["WH2"]["FName"] == "仓库WH2" and stored["WH2"]["FDocumentStatus"] == "C"
    assert hook.call_counts["ExecuteBillQuery"] == 2 and hook.call_counts["BatchSave"] == 2


def test_concurrent_writer_with_identical_content_is_unchanged(hook, sandbox) -> None:
    sandbox.add_stocks([warehouse("WH2")], status="C", on_next_save=True)
    outcomes = run(hook, [warehouse("WH1"), warehouse("WH2")])
    assert [o.status for o in outcomes] == ["created", "unchanged"]


def test_scripted_failure_and_5xx_during_upsert(hook, sandbox) -> None:
    sandbox.fail_rows(["WH2"], message="沙箱：校验失败")
    sandbox.faults.update(status=[503])
    outcomes = run(hook, [warehouse("WH1"), warehouse("WH2")])
    assert [(o.status, o.message) for o in outcomes] == [("created", None), ("rejected", "沙箱：校验失败")]
    assert sandbox.calls["fault:http503"] == 1


def test_write_timeout_during_upsert_is_not_duplicated(connect, sandbox) -> None:
    hook = connect("password", timeout=0.5)
    hook.query("BD_STOCK", ["FNumber"])
    sandbox.fault_after_write(delay=1.5)
    outcomes = run(hook, [warehouse("WH1"), warehouse("WH2")])
    assert [o.status for o in outcomes] == ["created", "created"]
    assert len(sandbox.stocks()) == 2 and {s["FDocumentStatus"] for s in sandbox.stocks()} == {"C"}


def test_session_loss_during_upsert(hook, sandbox) -> None:
    sandbox.session_max_requests = 2
    outcomes = run(hook, [warehouse("WH1"), warehouse("WH2")])
    assert [o.status for o in outcomes] == ["created", "created"]
    assert hook.call_counts["ValidateUser"] >= 2


def writes(hook) -> dict[str, int]:
    """Calls other than logins and look-ups."""
    return {k: v for k, v in hook.call_counts.items() if k not in ("ValidateUser", "ExecuteBillQuery")}


def test_auto_creates_cost_one_batch_save_per_batch(hook, sandbox) -> None:
    outcomes = run(hook, [warehouse(f"WH{i:03d}") for i in range(250)], approval="auto")
    assert {o.status for o in outcomes} == {"created"} and all(o.message is None for o in outcomes)
    assert {s["FDocumentStatus"] for s in sandbox.stocks(ORG)} == {"C"} and len(sandbox.stocks()) == 250
    assert dict(hook.call_counts) == {"ValidateUser": 1, "ExecuteBillQuery": 1, "BatchSave": 3}
    assert sandbox.rows_per_call == [("BatchSave", 100), ("BatchSave", 100), ("BatchSave", 50)]


def test_auto_row_whose_audit_fails_is_not_saved_and_is_named(hook, sandbox) -> None:
    sandbox.fail_rows(["WH2"], message="审批流未通过", stage="audit", times=None)  # fails on every path
    outcomes = run(hook, [warehouse("WH1"), warehouse("WH2"), warehouse("WH3")], approval="auto")
    assert [o.status for o in outcomes] == ["created", "rejected", "created"]
    assert outcomes[1].message == "saved as created but Audit failed: 审批流未通过"
    assert sandbox.rows_per_call == [("BatchSave", 3), ("BatchSave", 1)]  # the auto path saved 2, the explicit 1
    assert writes(hook) == {"BatchSave": 2, "Submit": 1, "Audit": 1}
    assert {s["FNumber"]: s["FDocumentStatus"] for s in sandbox.stocks()} == {"WH1": "C", "WH2": "B", "WH3": "C"}


def test_auto_refusal_of_the_audit_is_retried_explicitly_and_named(hook, sandbox) -> None:
    sandbox.fail_rows(["WH2"], message="工作流繁忙", stage="audit", times=1)  # only inside the transaction
    outcomes = run(hook, [warehouse("WH1"), warehouse("WH2")], approval="auto")
    assert [o.status for o in outcomes] == ["created", "created"]
    assert outcomes[1].message == "auto submit/audit refused (审核失败：工作流繁忙); saved explicitly"
    assert {s["FDocumentStatus"] for s in sandbox.stocks()} == {"C"}


def test_auto_validation_error_of_the_row_is_rejected_without_retry(hook, sandbox) -> None:
    outcomes = run(hook, [warehouse("WH1"), warehouse("WH2", name=""), warehouse("WH3", FStockProperty="9")],
                   approval="auto")
    assert [(o.status, o.field) for o in outcomes] == [("created", None), ("rejected", "FName"),
                                                        ("rejected", "FStockProperty")]
    assert writes(hook) == {"BatchSave": 1}  # no explicit Save, Submit or Audit for them


@pytest.mark.parametrize("echo", [True, False])
def test_auto_on_a_server_that_ignores_the_flag_is_approved_explicitly(hook, sandbox, echo) -> None:
    sandbox.configure(auto_audit="ignore", echo_return_fields=echo)
    outcomes = run(hook, [warehouse("WH1"), warehouse("WH2")], approval="auto")
    assert [o.status for o in outcomes] == ["created", "created"]
    assert "IsAutoSubmitAndAudit not applied" in (outcomes[0].message or "")
    assert {s["FDocumentStatus"] for s in sandbox.stocks()} == {"C"}
    assert writes(hook) == {"BatchSave": 1, "Submit": 1, "Audit": 1}
    assert hook.call_counts["ExecuteBillQuery"] == (1 if echo else 2)  # status read only without NeedReturnData


def test_explicit_and_none_modes(connect, sandbox) -> None:
    hook = connect()
    run(hook, [warehouse(f"WH{i}") for i in range(5)], approval="explicit", rows_per_batch=2)
    assert writes(hook) == {"BatchSave": 3, "Submit": 3, "Audit": 3}
    assert {s["FDocumentStatus"] for s in sandbox.stocks()} == {"C"}
    hook = connect()
    outcomes = run(hook, [warehouse(f"WN{i}") for i in range(5)], approval="none", rows_per_batch=2)
    assert {o.status for o in outcomes} == {"created"} and writes(hook) == {"BatchSave": 3}
    assert {s["FDocumentStatus"] for s in sandbox.stocks() if s["FNumber"].startswith("WN")} == {"A"}


def test_auto_updates_take_the_chain_only_for_changed_rows(hook, sandbox) -> None:
    rows = [warehouse(f"WH{i}") for i in range(10)]
    run(hook, rows, approval="auto")
    hook.call_counts.clear()
    sandbox.reset_counts()
    rows[2], rows[7] = warehouse("WH2", name="改名2"), warehouse("WH7", FAllowMinusQty=False)
    outcomes = run(hook, rows, approval="auto")
    assert [o.status for o in outcomes].count("updated") == 2 and [o.status for o in outcomes].count("unchanged") == 8
    assert writes(hook) == {"UnAudit": 1, "BatchSave": 1, "Submit": 1, "Audit": 1}
    assert dict(sandbox.rows_written) == {"UnAudit": 2, "BatchSave": 2, "Submit": 2, "Audit": 2}
    assert {s["FDocumentStatus"] for s in sandbox.stocks()} == {"C"}


def test_forbid_only_what_exists_and_is_active_one_call_per_batch(hook, sandbox) -> None:
    rows = [warehouse(f"WH{i:02d}") for i in range(25)]
    run(hook, rows, approval="auto")
    hook.call_counts.clear()
    states = ["active"] * 25
    for i in (1, 3, 5, 7, 9):
        states[i] = "blocked"
    for i in (11, 13, 15):
        states[i] = "deleted"
    rows += [warehouse("NEVER1"), warehouse("NEVER2")]
    states += ["blocked", "deleted"]
    outcomes = run(hook, rows, states=states, approval="auto", rows_per_batch=5)
    by_status = {status: [o.number for o in outcomes if o.status == status] for status in {o.status for o in outcomes}}
    assert by_status["forbidden"] == [f"WH{i:02d}" for i in (1, 3, 5, 7, 9, 11, 13, 15)]
    assert by_status["absent"] == ["NEVER1", "NEVER2"] and len(by_status["unchanged"]) == 17
    assert writes(hook) == {"ExcuteOperation": 2} and sandbox.rows_written["Forbid"] == 8
    assert {s["FNumber"] for s in sandbox.stocks() if s["FForbidStatus"] == "B"} == set(by_status["forbidden"])
    assert "NEVER1" not in {s["FNumber"] for s in sandbox.stocks()}  # a blocked record is never created

    hook.call_counts.clear()
    again = run(hook, rows, states=states, approval="auto", rows_per_batch=5)
    assert [o.status for o in again] == [("absent" if o.number.startswith("NEVER") else "unchanged") for o in again]
    assert writes(hook) == {}

    hook.call_counts.clear()
    states[1] = states[11] = "active"
    rows[11] = warehouse("WH11", name="重新启用并改名")
    back = run(hook, rows, states=states, approval="auto", rows_per_batch=5)
    assert (back[1].status, back[1].fields_updated, back[1].message) == ("enabled", False, "enabled; fields unchanged")
    assert (back[11].status, back[11].fields_updated, back[11].message) == ("enabled", True, "enabled; fields updated")
    assert writes(hook) == {"ExcuteOperation": 1, "UnAudit": 1, "BatchSave": 1, "Submit": 1, "Audit": 1}
    stored = {s["FNumber"]: s for s in sandbox.stocks()}
    assert (stored["WH01"]["FForbidStatus"], stored["WH11"]["FForbidStatus"]) == ("A", "A")
    assert (stored["WH11"]["FName"], stored["WH11"]["FDocumentStatus"]) == ("重新启用并改名", "C")
    assert sum(s["FForbidStatus"] == "B" for s in stored.values()) == 6


def test_forbid_refusals_are_named_and_a_record_forbidden_meanwhile_is_no_error(hook, sandbox) -> None:
    run(hook, [warehouse("WH1"), warehouse("WH2"), warehouse("WH3")], approval="auto")
    sandbox.fail_rows(["WH1"], message="仓库存在库存，不能禁用", stage="forbid")
    real_forbid = hook.forbid

    def forbid_with_a_concurrent_user(*args, **kwargs):  # someone forbids WH2 by hand just before our call
        sandbox.edit_stocks(["WH2"], FForbidStatus="B")
        return real_forbid(*args, **kwargs)

    hook.forbid = forbid_with_a_concurrent_user
    outcomes = run(hook, [warehouse("WH1"), warehouse("WH2"), warehouse("WH3")],
                   states=["blocked", "blocked", "deleted"], approval="auto")
    assert [o.status for o in outcomes] == ["rejected", "forbidden", "forbidden"]
    assert outcomes[0].message == "Forbid failed: 仓库存在库存，不能禁用"
    assert "already B" in (outcomes[1].message or "")


def test_enable_refusal_rejects_the_row_and_skips_its_update(hook, sandbox) -> None:
    run(hook, [warehouse("WH1")], approval="auto")
    sandbox.edit_stocks(["WH1"], FForbidStatus="B")
    sandbox.fail_rows(["WH1"], message="禁用原因未解除", stage="enable")
    hook.call_counts.clear()
    outcomes = run(hook, [warehouse("WH1", name="新名")], approval="auto")
    assert (outcomes[0].status, outcomes[0].message) == ("rejected", "Enable failed: 禁用原因未解除")
    assert writes(hook) == {"ExcuteOperation": 1}  # no UnAudit, Save, Submit or Audit of a record left forbidden
    assert sandbox.stocks()[0]["FName"] == "仓库WH1"


@pytest.mark.parametrize(("numbers", "limit", "known", "kind", "calls", "max_pages"), [
    (0, 10, None, "none", 0, 0),
    (5, 10, 0, "in", 1, 0),          # one IN-query cannot be beaten
    (45, 10, None, "in", 5, 0),      # no estimate: IN
    (45, 10, 12, "scope", 2, 4),     # 12 records: 2 pages < 5 IN-queries
    (45, 10, 40, "in", 5, 0),        # 40 records: 5 pages, not fewer
    (2000, 2000, 0, "in", 1, 0),
    (5000, 2000, 1000, "scope", 1, 2),
])
def test_plan_lookup(numbers, limit, known, kind, calls, max_pages) -> None:
    assert plan_lookup(numbers, limit, known) == Lookup(kind, calls, max_pages)


@pytest.mark.parametrize(("field", "message", "cause"), [
    ("FNumber", "违反字段唯一性要求：编码唯一。[WH1]在当前系统中已经被使用。", "duplicate"),
    ("FName", "字段“名称”是必填项", "row"),
    (None, "审核失败：审批流未通过", "approval"),
    ("FStockId", "Audit failed: workflow", "approval"),
    (None, "未知错误", "approval"),
])
def test_refusal_cause(field, message, cause) -> None:
    assert refusal_cause(field, message) == cause


def test_scope_or_in_look_ups_choose_the_fewer_calls(connect, sandbox) -> None:
    sandbox.add_stocks([warehouse(f"OLD{i:02d}") for i in range(12)])
    sandbox.add_stocks([warehouse(f"X{i}", FUseOrgId={"FNumber": "100"}) for i in range(30)])  # other organisation
    rows = [warehouse(f"OLD{i:02d}") for i in range(12)] + [warehouse(f"NEW{i:02d}") for i in range(33)]
    counts = {}
    for known in (12, 100):
        sandbox.reset_counts()
        hook = connect()
        outcomes = run(hook, rows, approval="none", lookup_limit=10, known_records=known)
        counts[known] = sandbox.calls["ExecuteBillQuery"]
        assert [o.status for o in outcomes] == ["unchanged"] * 12 + ["created"] * 33
        sandbox.delete_stocks([f"NEW{i:02d}" for i in range(33)])
    assert counts == {12: 2, 100: 5}  # scope: 12 records in 2 pages; IN: 45 numbers in 5 queries


def test_scope_look_up_of_a_larger_organisation_than_thought_stays_bounded(hook, sandbox) -> None:
    sandbox.add_stocks([warehouse(f"HAND{i:03d}") for i in range(100)])  # made by hand: the ledger knows none
    rows = [warehouse(f"HAND{i:03d}") for i in range(95, 100)] + [warehouse(f"NEW{i:02d}") for i in range(40)]
    outcomes = run(hook, rows, approval="none", lookup_limit=10, known_records=0)
    assert [o.status for o in outcomes] == ["unchanged"] * 5 + ["created"] * 40
    assert hook.call_counts["ExecuteBillQuery"] == 4 + 5  # 4 scope pages, then the 45 numbers by IN: < 2 × 5


def test_an_in_look_up_of_numbers_that_all_exist_reads_no_empty_page(hook, sandbox) -> None:
    sandbox.add_stocks([warehouse(f"OLD{i:02d}") for i in range(10)])
    outcomes = run(hook, [warehouse(f"OLD{i:02d}") for i in range(10)], approval="none", lookup_limit=10)
    assert [o.status for o in outcomes] == ["unchanged"] * 10
    assert hook.call_counts["ExecuteBillQuery"] == 1  # a full page of the 10 numbers asked is all there is
