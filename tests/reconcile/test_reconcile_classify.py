"""The pure reconcile functions: what counts as drift, which class, and the report's arithmetic."""

from __future__ import annotations

from pathlib import Path

import pytest

from jikeyun_kingdee.reconcile import (
    Finding,
    Tally,
    classify,
    describe,
    query_fields,
    split_calls,
    summarise,
)
from jikeyun_kingdee.scheme import load_scheme

from tests.support.kingdee import stock_target

REPO = Path(__file__).resolve().parents[2]
STOCKS = stock_target()


def item(code: str = "SH0001", name: str = "上海总仓", state: str = "active") -> dict:
    row = {"FName": name, "FNumber": code, "FStockProperty": "1", "FCreateOrgId": {"FNumber": "I0134"},
           "FUseOrgId": {"FNumber": "I0134"}, "FAllowMinusQty": True}
    return {"key": code, "modified": 1_790_000_000_000, "row": row, "state": state}


def stock(code: str = "SH0001", name: str = "上海总仓", *, status: str = "C", forbid: str = "A", **changes) -> dict:
    """An ExecuteBillQuery row as the reconcile asks for it (the sandbox answers booleans as JSON true/false)."""
    return {"FStockId": 100001, "FNumber": code, "FDocumentStatus": status, "FForbidStatus": forbid, "FName": name,
            "FStockProperty": "1", "FCreateOrgId.FNumber": "I0134", "FUseOrgId.FNumber": "I0134",
            "FAllowMinusQty": True, **changes}


def check(expected, actual, *, needs_audit: bool = True, known: bool = False) -> Finding | None:
    return classify(expected, actual, fields=STOCKS.field_map, needs_audit=needs_audit, known=known,
                    number_field="FNumber", pk_field="FStockId")


def found(expected, actual, *, needs_audit: bool = True, known: bool = False) -> Finding:
    """:func:`check` where the test expects a finding."""
    finding = check(expected, actual, needs_audit=needs_audit, known=known)
    assert finding is not None, "expected a finding, got none"
    return finding


def test_the_compared_columns_and_query_fields_come_from_the_scheme_mapping() -> None:
    scheme = load_scheme(REPO / "include" / "schemes" / "warehouse_I0134.yaml")
    assert scheme.target.field_map.compared == {
        "FName": "FName", "FStockProperty": "FStockProperty", "FCreateOrgId": "FCreateOrgId.FNumber",
        "FUseOrgId": "FUseOrgId.FNumber", "FAllowMinusQty": "FAllowMinusQty"}
    assert query_fields(scheme.target) == [
        "FStockId", "FNumber", "FDocumentStatus", "FForbidStatus", "FName", "FStockProperty",
        "FCreateOrgId.FNumber", "FUseOrgId.FNumber", "FAllowMinusQty"]


def test_an_equal_record_is_no_finding_whatever_the_value_spelling() -> None:
    assert check(item(), stock()) is None
    # Kingdee answers "1"/1, true/"true"/"1" and padded text alike: the sync's same_value decides
    assert check(item(), stock(FStockProperty=1, FAllowMinusQty="true", FName=" 上海总仓 ")) is None


def test_missing_only_when_the_source_record_is_active() -> None:
    assert check(item(), None) == Finding(key="SH0001", drift="missing", state="active", reasons=["not in Kingdee"])
    assert check(item(state="blocked"), None) is None  # never reached Kingdee: not created
    assert check(item(state="deleted"), None) is None


def test_a_renamed_record_differs_naming_the_field_and_both_values() -> None:
    finding = found(item(), stock(name="手工改名"))
    assert finding.drift == "differs" and finding.fields == ["FName"] and finding.id == 100001
    assert finding.reasons == ["FName: Kingdee '手工改名', Jikeyun '上海总仓'"]
    moved = found(item(), stock(**{"FCreateOrgId.FNumber": "100"}))
    assert moved.drift == "differs" and moved.fields == ["FCreateOrgId"]
    assert moved.reasons == ["FCreateOrgId: Kingdee '100', Jikeyun 'I0134'"]


@pytest.mark.parametrize(("kingdee", "reason"), [
    (stock(status="D"), "not audited (FDocumentStatus D)"),
    (stock(status="A"), "not audited (FDocumentStatus A)"),
    (stock(forbid="B"), "forbidden in Kingdee while active in Jikeyun"),
])
def test_wrong_status_of_an_active_record(kingdee: dict, reason: str) -> None:
    finding = found(item(), kingdee)
    assert (finding.drift, finding.reasons) == ("status", [reason])


def test_an_unaudited_record_is_no_drift_when_the_scheme_does_not_approve() -> None:
    assert check(item(), stock(status="A"), needs_audit=False) is None
    assert found(item(), stock(status="A", forbid="B"), needs_audit=False).drift == "status"


def test_a_record_with_several_problems_gets_the_first_class_and_every_reason() -> None:
    finding = found(item(), stock(name="手工改名", forbid="B", status="D"))
    assert finding.drift == "differs"
    assert finding.reasons == ["FName: Kingdee '手工改名', Jikeyun '上海总仓'",
                               "forbidden in Kingdee while active in Jikeyun", "not audited (FDocumentStatus D)"]


@pytest.mark.parametrize("state", ["blocked", "deleted"])
def test_a_blocked_or_deleted_record_must_be_forbidden_and_nothing_else_is_compared(state: str) -> None:
    finding = found(item(state=state), stock())
    assert (finding.drift, finding.state, finding.reasons) == (
        "status",
        state,
        [f"active in Kingdee while {state} in Jikeyun"],
    )
    assert check(item(state=state), stock(forbid="B", name="旧名", status="D")) is None


def test_kingdee_only_records_are_found_unless_jikeyun_knows_the_key() -> None:
    finding = found(None, stock("HAND-01"))
    assert (finding.key, finding.drift, finding.id, finding.repairable) == ("HAND-01", "kingdee_only", 100001, False)
    assert check(None, stock("SH0002"), known=True) is None  # a source record the scheme does not sync
    assert check(None, None) is None


def test_the_tally_counts_every_class_keeps_the_first_keys_and_drift_excludes_kingdee_only() -> None:
    tally = Tally(keep=2)
    findings = [Finding(key=f"M{i}", drift="missing") for i in range(3)] + [
        Finding(key="S1", drift="status"),
        Finding(key="K1", drift="kingdee_only"),
    ]
    assert list(tally.counted(findings)) == findings
    assert tally.as_dict() == {
        "counts": {"missing": 3, "differs": 0, "status": 1, "kingdee_only": 1},
        "drift": 4,
        "keys": {"missing": ["M0", "M1"], "status": ["S1"], "kingdee_only": ["K1"]},
    }


def test_calls_split_into_queries_and_writes_without_logins() -> None:
    calls = {
        "ValidateUser": 1,
        "ExecuteBillQuery": 3,
        "BatchSave": 2,
        "Submit": 1,
        "Audit": 1,
        "UnAudit": 1,
        "ExcuteOperation": 2,
    }
    assert split_calls(calls) == (3, 7)


SOURCE = {"fetched": 1002, "calls": {"erp.warehouse.get": 6}, "in_scope": 990, "filtered_out": 12, "rejected": 0}
TARGET = {"records": 801, "calls": {"ValidateUser": 1, "ExecuteBillQuery": 1}}


def compared() -> dict:
    tally = Tally()
    list(
        tally.counted(
            [
                Finding(key="A", drift="missing"),
                Finding(key="B", drift="differs"),
                Finding(key="K", drift="kingdee_only"),
            ]
        )
    )
    return {"found": tally.as_dict(), "drift_file": "drift.ndjson", "out_of_scope": 3}


def test_the_summary_of_a_repair_counts_what_was_found_written_and_left() -> None:
    repaired = {
        "results": {"created": 1, "updated": 1},
        "left": Tally().as_dict(),
        "left_file": "left.ndjson",
        "calls": {"ValidateUser": 1, "ExecuteBillQuery": 2, "BatchSave": 2, "Submit": 1, "Audit": 1},
    }
    summary = summarise(SOURCE, TARGET, compared(), repaired, repair=True)
    assert summary["found"] == {"missing": 1, "differs": 1, "status": 0, "kingdee_only": 1}
    assert (summary["drift"], summary["repaired"], summary["left"]) == (2, 2, 0)
    assert summary["found_keys"] == {"missing": ["A"], "differs": ["B"], "kingdee_only": ["K"]}
    assert summary["cost"] == {
        "jikeyun_calls": 6,
        "kingdee_queries": 3,
        "kingdee_read_queries": 1,
        "repair_queries": 2,
        "repair_writes": 4,
    }
    assert summary["api_calls"] == {
        "Audit": 1,
        "BatchSave": 2,
        "ExecuteBillQuery": 3,
        "Submit": 1,
        "ValidateUser": 2,
        "erp.warehouse.get": 6,
    }
    assert describe(summary) == (
        "found missing 1, differs 1, kingdee_only 1; drift 2, 2 repaired, 0 left; cost: "
        "6 Jikeyun calls, 3 Kingdee queries, 4 repair writes"
    )


def test_a_dry_run_leaves_all_drift_and_a_clean_run_leaves_nothing() -> None:
    dry = summarise(SOURCE, TARGET, compared(), None, repair=False)
    assert (dry["repair"], dry["repaired"], dry["left"], dry["cost"]["repair_writes"]) == (False, 0, 2, 0)
    assert dry["left_keys"] == {"missing": ["A"], "differs": ["B"]} and "repair off" in describe(dry)
    clean = {"found": Tally().as_dict(), "drift_file": "drift.ndjson"}
    nothing = summarise(SOURCE, TARGET, clean, None, repair=True)
    assert (nothing["drift"], nothing["left"], nothing["cost"]["kingdee_queries"]) == (0, 0, 1)
