"""Test-side differences between Airflow 3.1+ and 2.10/2.11; the package's own live in ``jikeyun_kingdee.compat``."""

from __future__ import annotations

import logging
from datetime import datetime
from importlib import import_module
from typing import Any
from urllib.parse import quote, urlencode

import pytest

from jikeyun_kingdee import compat
from jikeyun_kingdee.compat import AIRFLOW_V3
from jikeyun_kingdee.local_runs import load_dag_bag, return_value_of, run_dag

__all__ = ["AIRFLOW_V3", "asset_events", "cron_of", "expected_run_url", "load_dag_bag", "only_airflow2",
           "only_airflow3", "queued_dag_ids", "reconfigure_stats", "return_value_of", "run_dag_test",
           "write_dags_to_db"]

only_airflow3 = pytest.mark.skipif(not AIRFLOW_V3, reason="Airflow 3 only")
only_airflow2 = pytest.mark.skipif(AIRFLOW_V3, reason="Airflow 2 only")


def expected_run_url(base_url: str, dag_id: str, run_id: str, task_id: str | None = None) -> str:
    """Where the installed Airflow's UI shows a run (Airflow 3: run pages; Airflow 2: the grid view)."""
    if not AIRFLOW_V3:
        query = {"dag_run_id": run_id} | ({"task_id": task_id} if task_id else {})
        return f"{base_url}/dags/{dag_id}/grid?{urlencode(query)}"
    url = f"{base_url}/dags/{dag_id}/runs/{quote(run_id, safe='')}"
    return f"{url}/tasks/{task_id}" if task_id else url


def cron_of(timetable) -> tuple[str, str]:
    """Cron expression and time zone name of a cron timetable (Airflow 2 tells them only when serialised)."""
    if AIRFLOW_V3:
        return timetable.expression, str(timetable.timezone)
    serialised = timetable.serialize()
    return serialised["expression"], str(serialised["timezone"])


def run_dag_test(dag: Any, logical_date: datetime | None, run_conf: dict[str, Any] | None = None) -> Any:
    """:func:`jikeyun_kingdee.local_runs.run_dag`, leaving the task logger's handlers as they were: Airflow 2's
    ``dag.test()`` adds one bound to the current ``sys.stdout`` — pytest's capture of this test, closed afterwards."""
    task_log = logging.getLogger("airflow.task")
    handlers = list(task_log.handlers)
    try:
        return run_dag(dag, logical_date, run_conf=run_conf)
    finally:
        task_log.handlers[:] = handlers


def reconfigure_stats() -> None:
    """Configure Airflow's ``Stats`` again from the current ``[metrics]`` settings, as an Airflow process does when it
    starts (Airflow 3: ``stats.initialize`` with the configured factory; Airflow 2: the ``Stats`` metaclass)."""
    if AIRFLOW_V3:
        from airflow.sdk.observability import stats
        from airflow.sdk.observability.metrics.stats_utils import get_stats_factory

        stats.initialize(factory=get_stats_factory(), export_legacy_names=compat.legacy_metric_names_on())
        return
    airflow_stats = import_module("airflow.stats")  # Airflow 2: a metaclass holds the factory and the logger
    if "factory" in vars(airflow_stats._Stats):
        del airflow_stats._Stats.factory
    airflow_stats.Stats.instance = None  # created again, on first use, by the new factory
    airflow_stats._Stats.__init__(airflow_stats.Stats)


def write_dags_to_db(*dags: Any) -> None:
    """Record DAGs in the metadata DB (their DAG rows and asset references) as the DAG processor does, unpaused."""
    from airflow.models.dag import DagModel
    from airflow.utils.session import create_session
    from sqlalchemy import update

    if AIRFLOW_V3:
        from airflow.dag_processing.bundles.manager import DagBundlesManager
        from airflow.serialization.definitions.dag import SerializedDAG

        with create_session() as session:
            DagBundlesManager().sync_bundles_to_db(session=session)
        SerializedDAG.bulk_write_to_db("dags-folder", None, list(dags))
    else:
        type(dags[0]).bulk_write_to_db(list(dags))  # Airflow 2's DAG class
    with create_session() as session:
        session.execute(update(DagModel).where(DagModel.dag_id.in_([d.dag_id for d in dags])).values(is_paused=False)
                        .execution_options(synchronize_session=False))


def _asset_models() -> tuple[Any, Any, Any, str]:
    """(asset model, event model, DAG-run queue model, name of their asset id column)."""
    if AIRFLOW_V3:
        from airflow.models.asset import AssetDagRunQueue, AssetEvent, AssetModel

        return AssetModel, AssetEvent, AssetDagRunQueue, "asset_id"
    dataset = import_module("airflow.models.dataset")
    return dataset.DatasetModel, dataset.DatasetEvent, dataset.DatasetDagRunQueue, "dataset_id"


def asset_events(uri: str) -> list[dict[str, Any]]:
    """The stored events of the asset (Airflow 2: dataset) ``uri``: source DAG, run and task, and extra."""
    from airflow.utils.session import create_session
    from sqlalchemy import select

    model, event, _, id_column = _asset_models()
    with create_session() as session:
        rows = session.scalars(select(event).join(model, getattr(event, id_column) == model.id)
                               .where(model.uri == uri).order_by(event.id)).all()
        return [{"dag_id": r.source_dag_id, "run_id": r.source_run_id, "task_id": r.source_task_id, "extra": r.extra}
                for r in rows]


def queued_dag_ids(uri: str, *, clear: bool = False) -> set[str]:
    """DAGs queued to run because the asset ``uri`` changed (what the scheduler turns into asset-triggered runs).

    :param clear: remove those queue entries after reading them.
    """
    from airflow.utils.session import create_session
    from sqlalchemy import delete, select

    model, _, queue, id_column = _asset_models()
    with create_session() as session:
        asset_ids = select(model.id).where(model.uri == uri).scalar_subquery()
        queued = set(session.scalars(select(queue.target_dag_id).where(getattr(queue, id_column).in_(asset_ids))))
        if clear:
            session.execute(delete(queue).where(getattr(queue, id_column).in_(asset_ids))
                            .execution_options(synchronize_session=False))
    return queued
