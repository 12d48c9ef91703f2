"""Test-side differences between Airflow 3.1+ and 2.10/2.11; the package's own live in ``jikeyun_kingdee.compat``."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any
from urllib.parse import quote, urlencode

import pytest

from jikeyun_kingdee import compat
from jikeyun_kingdee.compat import AIRFLOW_V3, load_dag_bag, return_value_of

__all__ = ["AIRFLOW_V3", "cron_of", "expected_run_url", "load_dag_bag", "only_airflow2", "only_airflow3",
           "return_value_of", "run_dag_test"]

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
    """:func:`jikeyun_kingdee.compat.run_dag_test`, leaving the task logger's handlers as they were: Airflow 2's
    ``dag.test()`` adds one bound to the current ``sys.stdout`` — pytest's capture of this test, closed afterwards."""
    task_log = logging.getLogger("airflow.task")
    handlers = list(task_log.handlers)
    try:
        return compat.run_dag_test(dag, logical_date, run_conf=run_conf)
    finally:
        task_log.handlers[:] = handlers
