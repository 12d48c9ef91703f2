"""Assets (Airflow 2: datasets): the sync's inlet and outlet, its asset event, and a DAG scheduled on the outlet.

``dag.test()`` runs no scheduler, so "triggered" is shown by what the scheduler acts on: the stored asset event and
the asset DAG-run queue entry of the consumer DAG, from which the scheduler creates its run.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pendulum
import pytest

from jikeyun_kingdee import lineage
from jikeyun_kingdee.compat import DAG, Asset, task
from jikeyun_kingdee.scheme import load_scheme

from tests.support.airflow_compat import AIRFLOW_V3, asset_events, queued_dag_ids, run_dag_test, write_dags_to_db
from tests.support.dag_timeline import DAG_ID, hour

pytestmark = pytest.mark.usefixtures("staging")

SCHEME = Path(__file__).resolve().parents[2] / "include" / "schemes" / "warehouse_I0134.yaml"
TARGET_URI = "kingdee://kingdee_default/BD_STOCK/I0134"
SOURCE_URI = "jikeyun://jikeyun_default/erp.warehouse.get"
CONSUMER_ID = "jikeyun_kingdee_test_stock_consumer"


def consumer_dag() -> DAG:
    """A DAG of another team that runs whenever Kingdee's BD_STOCK of I0134 was synced."""
    with DAG(dag_id=CONSUMER_ID, schedule=[Asset(uri=TARGET_URI)], start_date=pendulum.datetime(2026, 11, 1, tz="UTC"),
             catchup=False) as dag:

        @task
        def use_stocks() -> None:
            pass

        use_stocks()
    return dag


def test_the_assets_name_source_and_target_and_airflow_checks_their_uris(warehouse_dag) -> None:
    scheme = load_scheme(SCHEME)
    assert lineage.target_asset(scheme).uri == TARGET_URI
    assert lineage.source_asset(scheme).uri == SOURCE_URI
    report, extract = warehouse_dag.get_task("report"), warehouse_dag.get_task("extract")
    assert [a.uri for a in report.outlets] == [TARGET_URI] and [a.uri for a in report.inlets] == [SOURCE_URI]
    assert [a.uri for a in extract.inlets] == [SOURCE_URI]
    others = ("check_target", "extract", "transform", "filter", "load")
    assert all(not warehouse_dag.get_task(task_id).outlets for task_id in others)
    # Airflow normalises through the package's URI handler (a trailing slash goes) ...
    assert Asset(uri=TARGET_URI + "/").uri == TARGET_URI
    # ... which refuses a URI without connection or organisation (Airflow 2 warns unless strict URI validation is on)
    refused = (pytest.raises(ValueError, match="kingdee://<connection>") if AIRFLOW_V3
               else pytest.warns(UserWarning, match="not AIP-60 compliant"))
    with refused:
        Asset(uri="kingdee://kingdee_default/BD_STOCK")


def test_a_successful_sync_records_one_asset_event_with_its_counts_and_queues_the_consumer(
    warehouse_dag, jikeyun, kingdee
) -> None:
    write_dags_to_db(warehouse_dag, consumer_dag())
    queued_dag_ids(TARGET_URI, clear=True)

    dr = run_dag_test(warehouse_dag, hour(1), run_conf={"full_resync": True})
    assert dr.state == "success"
    events = [e for e in asset_events(TARGET_URI) if e["run_id"] == dr.run_id]
    assert len(events) == 1  # one event per run (not one per load chunk), from the report task
    event = events[0]
    assert (event["dag_id"], event["task_id"]) == (DAG_ID, "report")
    active = sum(int(w["isBlockup"]) == 0 and int(w.get("isDelete") or 0) == 0 for w in jikeyun.warehouses.values())
    counts = event["extra"]["counts"]
    assert counts["created"] == active == len(kingdee.stocks(org="I0134"))
    assert counts["fetched"] == len(jikeyun.warehouses) and counts["rejected"] == 0
    assert event["extra"]["api_calls"]["BatchSave"] == kingdee.calls["BatchSave"]
    assert event["extra"]["window"] == [None, None]  # a full resync reads everything
    assert queued_dag_ids(TARGET_URI) == {CONSUMER_ID}
    assert asset_events(SOURCE_URI) == []  # inlets are read, not changed

    # A run that rejects a record fails: no event, the consumer is not queued.
    queued_dag_ids(TARGET_URI, clear=True)
    refused = min(stock["FNumber"] for stock in kingdee.stocks(org="I0134"))
    jikeyun.modify_warehouse(refused, warehouseName="被拒绝的新名称", modified_at=hour(1) + timedelta(minutes=10))
    kingdee.fail_rows([refused])
    failed = run_dag_test(warehouse_dag, hour(2))
    assert failed.state == "failed"
    assert [e for e in asset_events(TARGET_URI) if e["run_id"] == failed.run_id] == []
    assert queued_dag_ids(TARGET_URI) == set()



def _providers_manager() -> Any:
    try:
        from airflow.sdk.providers_manager_runtime import ProvidersManagerTaskRuntime

        return ProvidersManagerTaskRuntime()
    except ImportError:
        from airflow.providers_manager import ProvidersManager

        return ProvidersManager()


def test_airflow_registers_the_uri_schemes_for_openlineage() -> None:
    """The OpenLineage provider turns inlets/outlets into datasets through the converter Airflow registered for their
    scheme (and drops those without one); the package's provider info registers its own for both schemes, found here
    the way that provider looks it up (task-runtime providers manager on Airflow 3.2+, else the core one)."""
    manager = _providers_manager()
    converters = getattr(manager, "asset_to_openlineage_converters", None) or manager.dataset_to_openlineage_converters
    handlers = getattr(manager, "asset_uri_handlers", None) or manager.dataset_uri_handlers
    for scheme in ("jikeyun", "kingdee"):
        assert converters[scheme] is lineage.to_openlineage
        assert handlers[scheme] is lineage.normalize_uri
