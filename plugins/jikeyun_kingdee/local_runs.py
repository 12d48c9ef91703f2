"""Running the DAGs in this process, for the demo, the benchmarks and the tests (the package's tasks never use it).

Airflow 2 and 3 differ here: ``execution_date`` vs ``logical_date``, ``airflow.models.dagbag`` vs
``airflow.dag_processing.dagbag``, ``XCom`` vs ``XComModel``; the installed line comes from
:data:`jikeyun_kingdee.compat.AIRFLOW_V3`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from jikeyun_kingdee.compat import AIRFLOW_V3


def load_dag_bag(dag_folder: str) -> Any:
    """The ``DagBag`` of ``dag_folder`` (example DAGs as configured)."""
    if AIRFLOW_V3:
        from airflow.dag_processing.dagbag import DagBag

        return DagBag(dag_folder=dag_folder)
    from airflow.models.dagbag import DagBag as Airflow2DagBag

    return Airflow2DagBag(dag_folder=dag_folder)


def run_dag(dag: Any, logical_date: datetime | None, run_conf: dict[str, Any] | None = None) -> Any:
    """Run ``dag`` once in this process (``dag.test()``) and return its DAG run.

    :param logical_date: the run's logical date; ``None`` on Airflow 3 = a run without one (and without a data
        interval), on Airflow 2 (where every run has one) = now.
    """
    if AIRFLOW_V3:
        return dag.test(logical_date=logical_date, run_conf=run_conf)
    return dag.test(execution_date=logical_date, run_conf=run_conf)


def return_value_of(dag_run: Any, task_id: str) -> Any:
    """What task ``task_id`` of ``dag_run`` returned (its ``return_value`` XCom), or ``None``."""
    from airflow.utils.session import create_session

    with create_session() as session:
        if not AIRFLOW_V3:
            from airflow.models.xcom import XCom

            return XCom.get_one(run_id=dag_run.run_id, dag_id=dag_run.dag_id, task_id=task_id,
                                key="return_value", session=session)
        from airflow.models.xcom import XComModel

        value = session.scalar(
            XComModel.get_many(run_id=dag_run.run_id, key="return_value", dag_ids=dag_run.dag_id, task_ids=task_id)
            .with_only_columns(XComModel.value)
        )
    return XComModel.deserialize_value(type("StoredXCom", (), {"value": value})()) if value is not None else None
