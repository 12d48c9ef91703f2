"""The reconcile DAG end to end with ``dag.test()`` against both sandboxes over real HTTP: drift injected by hand into
Kingdee and a Jikeyun window never synced are found, each in its class, repaired through the sync's load path, and
a second reconcile (and the sync afterwards) finds nothing and writes nothing."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.support import drift
from tests.support.airflow_compat import return_value_of, run_dag_test
from tests.support.reconcile import (
    RECONCILE_DAG_ID,
    SYNC_DAG_ID,
    assert_kingdee_equals_jikeyun,
    hour,
    lifecycle,
    rerun_loads,
    states,
    writes,
)

pytestmark = pytest.mark.usefixtures("staging")


def test_reconcile_names_each_drift_repairs_it_and_then_finds_nothing(dags, jikeyun, kingdee, webhook) -> None:
    from jikeyun_kingdee.staging import read_ndjson

    sync, reconcile = dags[SYNC_DAG_ID], dags[RECONCILE_DAG_ID]
    first_sync = run_dag_test(sync, hour(1), run_conf={"full_resync": True})
    assert first_sync.state == "success", states(first_sync)
    assert_kingdee_equals_jikeyun(jikeyun, kingdee, besides=[])

    active = sorted(code for code, w in jikeyun.warehouses.items() if lifecycle(w) == "active")
    renamed, deleted, unaudited, forbidden, blocked = active[:5]
    drift.rename(kingdee, renamed, "手工改过的名字")
    drift.delete(kingdee, deleted)
    drift.unaudit(kingdee, unaudited)
    drift.forbid(kingdee, forbidden)
    hand_made = drift.add_by_hand(kingdee, "HAND-0001", "手工建的仓库")
    # two changes in the window ending at hour(2), which the sync never ran
    jikeyun.block_warehouse(blocked, modified_at=hour(1) + timedelta(minutes=20))
    jikeyun.add_warehouse(warehouseCode="WH-UNSYNCED", warehouseName="从未同步的窗口", isBlockup=0, isDelete=0,
                          modified_at=hour(1) + timedelta(minutes=10))
    expected = {renamed: "differs", deleted: "missing", unaudited: "status", forbidden: "status",
                blocked: "status", "HAND-0001": "kingdee_only", "WH-UNSYNCED": "missing"}

    # A dry run finds all of it, writes nothing, alerts once and fails (the drift is left).
    before, stocks = writes(kingdee), kingdee.stocks()
    dry = run_dag_test(reconcile, hour(10), run_conf={"repair": False})
    assert dry.state == "failed" and states(dry)["repair"] == "skipped" and states(dry)["report"] == "failed", states(
        dry
    )
    assert dry.get_task_instance("report").try_number == 1  # drift left is final: no task retry
    compared = return_value_of(dry, "compare")
    assert {f["key"]: f["drift"] for f in read_ndjson(compared["drift_file"])} == expected
    assert (writes(kingdee), kingdee.stocks()) == (before, stocks)
    [alert] = webhook.posted  # the drift alert only: no second "task failed" alert for the same run
    text = alert.body["markdown"]["content"]
    assert "Kingdee drifted from Jikeyun" in text and "repair off (dry run)" in text and "HAND-0001" in text

    # The repair run: each finding in its class, repaired through the sync's load path, nothing left.
    jikeyun_calls = jikeyun.calls.get("erp.warehouse.get", 0)
    queries = kingdee.calls.get("ExecuteBillQuery", 0)
    fixed = run_dag_test(reconcile, hour(11))
    assert fixed.state == "success", states(fixed)
    summary = return_value_of(fixed, "report")
    assert summary["found"] == {"missing": 2, "differs": 1, "status": 3, "kingdee_only": 1}
    assert summary["found_keys"] == {
        "missing": sorted([deleted, "WH-UNSYNCED"]),
        "differs": [renamed],
        "status": sorted([unaudited, forbidden, blocked]),
        "kingdee_only": ["HAND-0001"],
    }
    assert (summary["drift"], summary["repaired"], summary["left"]) == (6, 6, 0)
    assert summary["repair_results"] == {"created": 2, "updated": 2, "enabled": 1, "forbidden": 1}
    assert_kingdee_equals_jikeyun(jikeyun, kingdee, besides=[hand_made])  # the Kingdee-only record is untouched
    cost = summary["cost"]
    assert cost["jikeyun_calls"] == jikeyun.calls["erp.warehouse.get"] - jikeyun_calls
    assert cost["kingdee_queries"] == kingdee.calls["ExecuteBillQuery"] - queries
    assert cost["kingdee_read_queries"] == 1  # fewer records than one query's limit
    assert cost["repair_writes"] == sum(writes(kingdee).values()) - sum(before.values()) > 0
    assert len(webhook.posted) == 2 and "6 repaired, 0 left" in webhook.posted[1].body["markdown"]["content"]

    # A second reconcile finds no drift (the Kingdee-only record is still reported), writes nothing, sends nothing.
    before = writes(kingdee)
    again = run_dag_test(reconcile, hour(12))
    assert again.state == "success" and states(again)["repair"] == "skipped", states(again)
    summary = return_value_of(again, "report")
    assert (summary["drift"], summary["left"], summary["found"]["kingdee_only"]) == (0, 0, 1)
    assert writes(kingdee) == before and summary["cost"]["repair_writes"] == 0
    assert len(webhook.posted) == 2

    # The sync afterwards never undoes the repair: the unsynced window writes nothing (the repair applied it), and
    # a rerun of the first full load (an older snapshot: the blocked warehouse still active) is stale.
    window = run_dag_test(sync, hour(2))
    assert window.state == "success", states(window)
    assert writes(kingdee) == before
    results = rerun_loads(first_sync)
    assert results[blocked] == "stale" and results[renamed] == "unchanged"
    assert writes(kingdee) == before
    assert_kingdee_equals_jikeyun(jikeyun, kingdee, besides=[hand_made])

