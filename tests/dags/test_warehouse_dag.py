"""The warehouse DAG end to end with ``dag.test()`` against both sandboxes over real HTTP."""

from __future__ import annotations

import math
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.support.airflow_compat import only_airflow3, return_value_of, run_dag_test
from tests.support.dag_timeline import DAG_ID, hour

pytestmark = pytest.mark.usefixtures("staging")


def active_names(jikeyun) -> dict[str, str]:
    """What Kingdee should hold: every warehouse that is neither blocked up nor deleted, by code."""
    return {code: w["warehouseName"] for code, w in jikeyun.warehouses.items()
            if int(w["isBlockup"]) == 0 and int(w.get("isDelete") or 0) == 0}


def stock_names(kingdee) -> dict[str, str]:
    return {stock["FNumber"]: stock["FName"] for stock in kingdee.stocks(org="I0134")}


def states(dag_run) -> dict[str, str]:
    return {f"{ti.task_id}[{ti.map_index}]" if ti.map_index >= 0 else ti.task_id: ti.state
            for ti in dag_run.get_task_instances()}


def summary(dag_run) -> dict[str, Any]:
    return return_value_of(dag_run, "report") or {}


def test_initial_load_incremental_window_and_rerun(warehouse_dag, jikeyun, kingdee) -> None:
    dr = run_dag_test(warehouse_dag, hour(1), run_conf={"full_resync": True})
    assert dr.state == "success", states(dr)
    expected = active_names(jikeyun)
    assert stock_names(kingdee) == expected
    assert all(stock["FDocumentStatus"] == "C" for stock in kingdee.stocks(org="I0134"))
    saves = [rows for operation, rows in kingdee.rows_per_call if operation.lower() == "batchsave"]
    assert max(saves) <= 100 and sum(saves) == len(expected) and len(saves) == math.ceil(len(expected) / 100)
    first = summary(dr)
    assert first["fetched"] == len(jikeyun.warehouses)
    assert first["created"] == len(expected)
    # The scheme forbids blocked-up and deleted warehouses: staged to retire, none filtered out.
    assert first["retire"] == len(jikeyun.warehouses) - len(expected) > 0
    assert first["filtered_out"] == 0
    assert first["api_calls"]["BatchSave"] == len(saves) and first["api_calls"]["erp.warehouse.get"] > 0
    assert set(first["seconds"]) >= {"extract", "transform", "filter", "load_total"} and first["seconds"]["extract"] > 0

    # The next hour: one warehouse added, one renamed, one newly blocked up.
    active = sorted(expected)
    renamed, blocked = active[3], active[4]
    jikeyun.add_warehouse(
        warehouseCode="WH-NEW-0001",
        warehouseName="新建测试仓",
        isBlockup=0,
        isDelete=0,
        modified_at=hour(1) + timedelta(minutes=30),
    )
    jikeyun.modify_warehouse(renamed, warehouseName="改名后的仓库", modified_at=hour(1) + timedelta(minutes=10))
    jikeyun.block_warehouse(blocked, modified_at=hour(1) + timedelta(minutes=20))
    dr = run_dag_test(warehouse_dag, hour(2))  # a manual run covers the hour that ends at its logical date
    assert dr.state == "success", states(dr)
    after = stock_names(kingdee)
    assert after["WH-NEW-0001"] == "新建测试仓"
    assert after[renamed] == "改名后的仓库"
    assert after[blocked] == expected[blocked]  # blocked up: forbidden, not renamed or removed
    forbid_status = {stock["FNumber"]: stock["FForbidStatus"] for stock in kingdee.stocks(org="I0134")}
    assert [code for code, status in forbid_status.items() if status == "B"] == [blocked]
    assert len(after) == len(expected) + 1
    second = summary(dr)
    assert (second["fetched"], second["filtered_out"], second["created"], second["updated"]) == (3, 0, 1, 1)
    assert (second["retire"], second["forbidden"], second["absent"]) == (1, 1, 0)
    assert first["absent"] == first["retire"]  # blocked before they ever reached Kingdee: never created

    # The same window again: same target state, nothing written, no duplicate.
    batch_saves = kingdee.calls.get("BatchSave", 0)
    dr = run_dag_test(warehouse_dag, hour(2))
    assert dr.state == "success", states(dr)
    assert stock_names(kingdee) == after
    assert kingdee.calls.get("BatchSave", 0) == batch_saves
    third = summary(dr)
    assert (third["created"], third["updated"], third["forbidden"], third["unchanged"]) == (0, 0, 0, 3)


def test_rerun_of_one_load_chunk_and_a_stale_snapshot(warehouse_dag, jikeyun, kingdee, staging: Path) -> None:
    from jikeyun_kingdee.hooks.kingdee import KingdeeHook
    from jikeyun_kingdee.ledger import SyncLedger
    from jikeyun_kingdee.pipeline import load_chunk
    from jikeyun_kingdee.scheme import load_scheme
    from jikeyun_kingdee.staging import read_ndjson, run_folder, staging_base

    scheme = load_scheme(Path(__file__).resolve().parents[2] / "include" / "schemes" / "warehouse_I0134.yaml")
    code = sorted(active_names(jikeyun))[0]
    jikeyun.modify_warehouse(code, warehouseName="第一版名称", modified_at=hour(1) + timedelta(minutes=5))
    old_run = run_dag_test(warehouse_dag, hour(2))
    assert old_run.state == "success", states(old_run)
    assert stock_names(kingdee)[code] == "第一版名称"

    jikeyun.modify_warehouse(code, warehouseName="第二版名称", modified_at=hour(2) + timedelta(minutes=5))
    new_run = run_dag_test(warehouse_dag, hour(3))
    assert new_run.state == "success", states(new_run)
    assert stock_names(kingdee)[code] == "第二版名称"

    def rerun_load(run) -> list[dict[str, Any]]:
        """What clearing the run's (only) load chunk in the UI does: the load step again on the run's staged items."""
        folder = run_folder(staging_base(), DAG_ID, run.run_id, run.data_interval_start, run.data_interval_end)
        (items,) = sorted(str(path) for path in (folder / "filter").glob("chunk-*.ndjson"))
        manifest = load_chunk(
            scheme, KingdeeHook(), SyncLedger(scheme.name), folder, {"chunk": 0, "items": items, "rows": 0}, run.run_id
        )
        return list(read_ndjson(manifest["results"]))

    # Rerunning the old run's load (its staged snapshot holds 第一版名称) must not win over the newer data.
    results = rerun_load(old_run)
    assert [r["status"] for r in results if r["key"] == code] == ["stale"]
    assert stock_names(kingdee)[code] == "第二版名称"

    # Rerunning the newest run's load chunk changes nothing and duplicates nothing.
    before = kingdee.stocks(org="I0134")
    results = rerun_load(new_run)
    assert {r["status"] for r in results} == {"unchanged"}
    assert kingdee.stocks(org="I0134") == before


@only_airflow3
def test_manual_run_without_logical_date_syncs_everything(warehouse_dag, jikeyun, kingdee) -> None:
    dr = run_dag_test(warehouse_dag, None)  # no data interval: a full sync, on purpose
    assert dr.state == "success", states(dr)
    assert stock_names(kingdee) == active_names(jikeyun)
    assert summary(dr)["fetched"] == len(jikeyun.warehouses)


def test_full_resync_and_an_hour_without_changes(warehouse_dag, jikeyun, kingdee) -> None:
    dr = run_dag_test(warehouse_dag, hour(4), run_conf={"full_resync": True})
    assert dr.state == "success", states(dr)
    assert stock_names(kingdee) == active_names(jikeyun)
    dr = run_dag_test(warehouse_dag, hour(5), run_conf={"full_resync": True})
    assert dr.state == "success", states(dr)
    result = summary(dr)
    assert result["fetched"] == len(jikeyun.warehouses)
    # the active ones, and the blocked/deleted ones the ledger knows are absent from Kingdee: no call for either
    assert result["unchanged"] == len(jikeyun.warehouses) and result["created"] == result["updated"] == 0
    assert result["api_calls"].get("BatchSave", 0) == result["api_calls"].get("ExecuteBillQuery", 0) == 0
    dr = run_dag_test(warehouse_dag, hour(9))  # an hour in which nothing changed: no load chunk at all
    assert dr.state == "success", states(dr)
    assert (summary(dr)["fetched"], summary(dr)["load_chunks"]) == (0, 0)


def test_an_empty_window_makes_one_jikeyun_call_and_no_kingdee_call(warehouse_dag, jikeyun, kingdee) -> None:
    dr = run_dag_test(warehouse_dag, hour(9))  # nothing was modified in that hour
    ti_states = states(dr)
    assert dr.state == "success", ti_states
    result = summary(dr)
    assert result["api_calls"] == {"erp.warehouse.get": 1} and result["api_calls_total"] == 1
    assert (result["fetched"], result["rows"], result["load_chunks"]) == (0, 0, 0)
    assert return_value_of(dr, "check_target") == {"skipped": True, "calls": {}}
    assert ti_states["check_target"] == ti_states["report"] == "success"
    assert (dict(jikeyun.calls), sum(kingdee.calls.values())) == ({"erp.warehouse.get": 1}, 0)  # the servers agree


def test_rejected_records_fail_the_run_naming_them_and_the_rest_is_loaded(warehouse_dag, jikeyun, kingdee) -> None:
    refused = sorted(active_names(jikeyun))[10]
    kingdee.fail_rows([refused], message="仓库名称包含非法字符")
    jikeyun.add_warehouse(
        warehouseCode="WH-NONAME", warehouseName="", isBlockup=0, isDelete=0, modified_at=hour(1) - timedelta(minutes=1)
    )
    dr = run_dag_test(warehouse_dag, hour(1), run_conf={"full_resync": True})
    ti_states = states(dr)
    assert dr.state == "failed"
    assert ti_states["report"] == "failed"
    assert all(state == "success" for name, state in ti_states.items() if name.startswith("load"))
    loaded = stock_names(kingdee)
    assert refused not in loaded and "WH-NONAME" not in loaded
    assert len(loaded) == len(active_names(jikeyun)) - 2
    report = dr.get_task_instance("report")
    assert report.try_number == 1  # rejected records are final: no task retry


def test_missing_organisation_stops_before_any_write(warehouse_dag, jikeyun, kingdee) -> None:
    kingdee.set_organisations(["100"])
    dr = run_dag_test(warehouse_dag, hour(1), run_conf={"full_resync": True})
    ti_states = states(dr)
    assert dr.state == "failed"
    assert ti_states["check_target"] == "failed"
    assert ti_states["filter"] == "success"  # the target is checked once filter knows there is something to write
    assert ti_states["load_chunks"] == ti_states["report"] == "upstream_failed"
    assert "load" not in ti_states or ti_states["load"] == "upstream_failed"
    assert kingdee.calls.get("BatchSave", 0) == 0 and kingdee.stocks() == []
    assert dr.get_task_instance("check_target").try_number == 1  # fatal: not retried


def test_fatal_upstream_error_fails_at_once_without_any_retry(warehouse_dag, jikeyun, kingdee, monkeypatch) -> None:
    """A wrong appsecret (Jikeyun sign error 0858030801) is final: no HTTP retry in the hook, no task retry."""
    import json

    monkeypatch.setenv(
        "AIRFLOW_CONN_JIKEYUN_DEFAULT",
        json.dumps(
            {"conn_type": "jikeyun", "host": jikeyun.url, "login": jikeyun.appkey, "password": "not-the-appsecret"}
        ),
    )
    dr = run_dag_test(warehouse_dag, hour(1))
    assert dr.state == "failed"
    extract = dr.get_task_instance("extract")
    assert extract.state == "failed" and extract.try_number == 1
    assert jikeyun.calls.get("erp.warehouse.get", 0) == 1
    assert kingdee.calls.get("BatchSave", 0) == 0
