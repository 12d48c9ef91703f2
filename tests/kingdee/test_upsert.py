"""Upsert by business key against the sandbox: create, update, unchanged, audited, rejected, the duplicate race."""

from __future__ import annotations

import pytest

from jikeyun_kingdee.upsert import comparable_fields, plan_batch, same_value, upsert

from tests.support.kingdee import ORG, warehouse


def run(hook, rows, **kwargs):
    return upsert(hook, "BD_STOCK", rows, org_number=ORG, **kwargs)


@pytest.mark.parametrize("desired, current, same", [
    (True, True, True), ("true", True, True), (True, "1", True), (1, True, True), (False, "0", True),
    ("1", 1, True), ("1", "1", True), ({"FNumber": "I0134"}, "I0134", True),
    ("true", False, False), ("2", "1", False), ({"FNumber": "100"}, "I0134", False), ("仓", "仓 ", True),
])
def test_same_value_normalises_booleans_numbers_and_references(desired, current, same) -> None:
    assert same_value(desired, current) is same


def test_plan_is_pure_and_sorts_rows() -> None:
    rows = [warehouse("A"), warehouse("B"), warehouse("C", name="new"), warehouse("A"), warehouse(""), warehouse("D")]
    columns = comparable_fields(rows, number_field="FNumber", pk_field="FStockId")
    assert columns["FUseOrgId"] == "FUseOrgId.FNumber" and columns["FName"] == "FName"
    stored = {"FName": "仓库B", "FStockProperty": "1", "FCreateOrgId.FNumber": ORG, "FUseOrgId.FNumber": ORG,
              "FAllowMinusQty": True, "FDocumentStatus": "C"}
    existing = {"B": stored, "C": stored | {"FName": "old"}, "D": stored | {"FName": "仓库D", "FDocumentStatus": "A"}}
    plan = plan_batch(rows, list(range(6)), existing, columns, number_field="FNumber", submit_and_audit=True)
    assert (plan.creates, plan.updates, plan.unchanged, plan.approve_only) == ([0], [2], [1], [5])
    assert set(plan.rejected) == {3, 4}


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
    outcomes = run(hook, rows + [warehouse("WH9")])
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
