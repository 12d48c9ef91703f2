"""The one place that knows which Airflow line is installed (3.1+ or 2.10/2.11).

Everything else imports Airflow names from here and is written for Airflow 3.
"""

from __future__ import annotations

from airflow import __version__ as AIRFLOW_VERSION
from packaging.version import Version

AIRFLOW_V3 = Version(Version(AIRFLOW_VERSION).base_version) >= Version("3.0")

if AIRFLOW_V3:
    from airflow.sdk import (
        DAG,
        BaseHook,
        BaseNotifier,
        CronDataIntervalTimetable,
        ObjectStoragePath,
        Param,
        conf,
        get_current_context,
        task,
    )
    from airflow.sdk.exceptions import AirflowException, AirflowFailException
else:  # Airflow 2.10 / 2.11
    from airflow.configuration import conf  # type: ignore[no-redef]
    from airflow.decorators import task  # type: ignore[no-redef]
    from airflow.exceptions import AirflowException, AirflowFailException  # type: ignore[no-redef]
    from airflow.hooks.base import BaseHook  # type: ignore[no-redef]
    from airflow.io.path import ObjectStoragePath  # type: ignore[no-redef]
    from airflow.models.dag import DAG  # type: ignore[no-redef]
    from airflow.models.param import Param  # type: ignore[no-redef]
    from airflow.notifications.basenotifier import BaseNotifier  # type: ignore[no-redef]
    from airflow.operators.python import get_current_context  # type: ignore[no-redef]
    from airflow.timetables.interval import CronDataIntervalTimetable  # type: ignore[no-redef]

__all__ = [
    "AIRFLOW_V3",
    "AIRFLOW_VERSION",
    "DAG",
    "AirflowException",
    "AirflowFailException",
    "BaseHook",
    "BaseNotifier",
    "CronDataIntervalTimetable",
    "ObjectStoragePath",
    "Param",
    "conf",
    "get_current_context",
    "task",
]
