"""Wiring of the reconcile DAG and the target pools: named per form and organisation, created by the deployment step,
taken whole by the repair."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from jikeyun_kingdee.pools import TARGET_POOL_SLOTS, ensure_pools, target_pool, target_pools
from jikeyun_kingdee.scheme import load_scheme

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "include" / "schemes" / "warehouse_I0134.yaml"


def test_one_pool_per_target_shared_by_every_scheme_writing_it() -> None:
    scheme = load_scheme(SHIPPED)
    same_target = scheme.model_copy(update={"name": "warehouse_copy"})
    other = scheme.model_copy(update={"name": "warehouse_100", "target": scheme.target.model_copy(
        update={"organisation": "100"})})
    assert target_pool(scheme) == "jikeyun_kingdee_bd_stock_i0134"
    pools = target_pools([scheme, same_target, other])
    assert sorted(pools) == ["jikeyun_kingdee_bd_stock_100", "jikeyun_kingdee_bd_stock_i0134"]
    shared = pools["jikeyun_kingdee_bd_stock_i0134"]
    assert shared["slots"] == TARGET_POOL_SLOTS and shared["include_deferred"] is False
    assert shared["description"].endswith("Schemes: warehouse_I0134 warehouse_copy")


def test_the_command_prints_the_pools_in_the_airflow_pools_import_format() -> None:
    out = subprocess.run([sys.executable, "-m", "jikeyun_kingdee.pools", "--schemes", str(SHIPPED.parent)],
                         capture_output=True, text=True, check=True)
    pools = json.loads(out.stdout)
    assert set(pools) == {"jikeyun_kingdee_bd_stock_i0134", "jikeyun_kingdee_bd_material_i0134",
                          "jikeyun_kingdee_sal_outstock_i0134"}  # one per target
    assert {"slots", "description"} <= set(pools["jikeyun_kingdee_bd_stock_i0134"])  # what `pools import` reads


def test_the_deployment_step_creates_the_pool_and_puts_back_its_slot_count(airflow_db) -> None:
    """``python -m jikeyun_kingdee.pools --apply`` against the migrated metadata database of this test session."""
    from airflow.models.pool import Pool

    Pool.create_or_update_pool(name="jikeyun_kingdee_bd_stock_i0134", slots=9, description="changed by hand",
                               include_deferred=False)
    out = subprocess.run([sys.executable, "-m", "jikeyun_kingdee.pools", "--apply", "--schemes", str(SHIPPED.parent)],
                         check=False, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert f"pool jikeyun_kingdee_bd_stock_i0134: {TARGET_POOL_SLOTS} slots" in out.stderr
    pool = Pool.get_pool("jikeyun_kingdee_bd_stock_i0134")
    assert pool is not None and pool.description is not None
    assert pool.slots == TARGET_POOL_SLOTS and "reconcile repair" in pool.description
    ensure_pools([load_scheme(SHIPPED)])  # idempotent
    pool = Pool.get_pool("jikeyun_kingdee_bd_stock_i0134")
    assert pool is not None
    assert pool.slots == TARGET_POOL_SLOTS


def test_sync_loads_take_one_slot_and_the_repair_every_slot_of_the_target_pool(dags) -> None:
    load = dags["jikeyun_kingdee_warehouse_I0134"].task_dict["load"]
    assert (load.pool, load.pool_slots) == ("jikeyun_kingdee_bd_stock_i0134", 1)
    assert load.max_active_tis_per_dagrun == TARGET_POOL_SLOTS  # the pool does not slow the sync down
    repair = dags["jikeyun_kingdee_warehouse_I0134_reconcile"].task_dict["repair"]
    assert (repair.pool, repair.pool_slots) == ("jikeyun_kingdee_bd_stock_i0134", TARGET_POOL_SLOTS)
    others = [t for t in dags["jikeyun_kingdee_warehouse_I0134_reconcile"].tasks if t.task_id != "repair"]
    assert all(t.pool != repair.pool for t in others)  # reads and the report never wait for the sync's loads


def test_reconcile_dag_shape(dags) -> None:
    from tests.support.airflow_compat import cron_of

    dag = dags["jikeyun_kingdee_warehouse_I0134_reconcile"]
    expression, timezone = cron_of(dag.timetable)
    assert expression == "30 2 * * *" and "Asia/Shanghai" in timezone
    assert (dag.catchup, dag.max_active_runs, dag.params["repair"]) == (False, 1, True)
    assert "reconcile" in dag.tags
    assert set(dag.task_dict) == {"read_source", "read_target", "compare", "should_repair", "repair", "report"}
    assert dag.task_dict["repair"].upstream_task_ids == {"compare", "should_repair"}
    assert dag.task_dict["report"].trigger_rule == "none_failed"
