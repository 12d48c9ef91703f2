"""Lifecycle through the sync DAG with ``dag.test()`` over real HTTP: blocked and deleted warehouses are forbidden in
Kingdee, unblocked ones enabled again, and a rerun of either window writes nothing."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.support.airflow_compat import return_value_of, run_dag_test
from tests.support.reconcile import SYNC_DAG_ID, WAREHOUSES, hour, states, writes

pytestmark = pytest.mark.usefixtures("staging")


def forbid_status(kingdee) -> dict[str, str]:
    return {s["FNumber"]: s["FForbidStatus"] for s in kingdee.stocks(org="I0134")}


def test_blocked_and_deleted_are_forbidden_unblocked_enabled_and_reruns_write_nothing(dags, jikeyun, kingdee) -> None:
    sync = dags[SYNC_DAG_ID]
    for warehouse in jikeyun.records.values():  # 300 active warehouses, as of the generated modification times
        warehouse["isBlockup"] = warehouse["isDelete"] = 0
    first = run_dag_test(sync, hour(1), run_conf={"full_resync": True})
    assert first.state == "success", states(first)
    assert set(forbid_status(kingdee).values()) == {"A"} and len(forbid_status(kingdee)) == WAREHOUSES

    codes = sorted(jikeyun.warehouses)
    blocked, deleted = codes[10:15], codes[20:23]
    for code in blocked:
        jikeyun.block_warehouse(code, modified_at=hour(1) + timedelta(minutes=15))
    for code in deleted:
        jikeyun.modify_warehouse(code, isDelete=1, modified_at=hour(1) + timedelta(minutes=25))
    before = writes(kingdee)
    window = run_dag_test(sync, hour(2))
    assert window.state == "success", states(window)
    status = forbid_status(kingdee)
    assert sorted(code for code, s in status.items() if s == "B") == sorted(blocked + deleted)
    assert len(status) == WAREHOUSES  # forbidden, never deleted
    assert kingdee.calls["ExcuteOperation"] - before["ExcuteOperation"] == 1  # one Forbid for the batch of 8
    assert kingdee.calls["BatchSave"] == before["BatchSave"]
    summary = return_value_of(window, "report")
    assert (summary["forbidden"], summary["created"], summary["updated"]) == (8, 0, 0)

    unblocked = blocked[:2]
    for code in unblocked:
        jikeyun.modify_warehouse(code, isBlockup=0, modified_at=hour(2) + timedelta(minutes=5))
    before = writes(kingdee)
    next_window = run_dag_test(sync, hour(3))
    assert next_window.state == "success", states(next_window)
    status = forbid_status(kingdee)
    assert sorted(code for code, s in status.items() if s == "B") == sorted(blocked[2:] + deleted)
    assert all(status[code] == "A" for code in unblocked)
    assert kingdee.calls["ExcuteOperation"] - before["ExcuteOperation"] == 1  # one Enable for both
    assert return_value_of(next_window, "report")["enabled"] == 2

    # A rerun of either window changes nothing and writes nothing (the ledger says what each row last applied).
    stocks, before = kingdee.stocks(), writes(kingdee)
    for end in (hour(2), hour(3)):
        rerun = run_dag_test(sync, end)
        assert rerun.state == "success", states(rerun)
        assert (writes(kingdee), kingdee.stocks()) == (before, stocks)
