"""The one place that knows which Airflow line is installed: 3.3 or 2.11 (:data:`SUPPORTED_LINES`).

Other lines are refused when the package is imported, with a message naming the supported ones, rather than failing
later inside a task (3.1 lacks names of ``airflow.sdk`` this package uses; 3.2 runs tasks with a fastapi/cadwyn pair
that pip may resolve newer than it was released with). The package's requirements still admit them, so installing
it beside such an Airflow never moves that Airflow to another line: it stops with this message instead. Code for
3.1/3.2 differences below stays where it costs nothing, for the day those lines are tested.

Everything else imports Airflow names from here and is written for Airflow 3. What differs on Airflow 2:

* imports: ``airflow.sdk`` → ``airflow.decorators``, ``airflow.models``, ``airflow.hooks.base``, ``airflow.io.path``,
  ``airflow.timetables.interval``, ``airflow.notifications.basenotifier``, ``airflow.utils.log.secrets_masker``;
* monitoring: no Deadline Alerts (``AsyncCallback``, ``DeadlineAlert``, ``DeadlineReference`` are ``None``); the
  scheme's deadline becomes an SLA (see :func:`jikeyun_kingdee.alerting.sla_miss_callback`);
* metrics: ``Stats`` is Airflow's metrics layer, configured by Airflow's own processes from ``[metrics]`` (StatsD,
  Datadog or OpenTelemetry). Airflow 3.2+ keeps it in the task SDK (``airflow.sdk.observability.stats``, the copy the
  task runner initialises; ``airflow.stats`` is a deprecated shim of it), Airflow 2 and 3.1 in ``airflow.stats``;
* assets: ``Asset`` is Airflow 2's ``Dataset`` (same ``uri`` and ``extra``; Airflow 3 adds a name, by default the URI);
* the UI: ``[webserver] base_url`` and the grid view instead of ``[api] base_url`` and the run pages
  (:func:`ui_run_url`);
* imports of the operator base and the time trigger (a task waiting for a quota defers with it):
  ``airflow.sdk.BaseOperator`` and the standard provider's ``DateTimeTrigger`` → ``airflow.models.baseoperator``,
  ``airflow.triggers.temporal``;
* the wait of a document's load for the base-data DAGs' runs (:mod:`jikeyun_kingdee.order`): ``ExternalTaskSensor``
  and its ``WorkflowTrigger`` come from the standard provider on Airflow 3 (``airflow.providers.standard``), from
  ``airflow.sensors.external_task`` on Airflow 2; ``AirflowSkipException`` from ``airflow.sdk.exceptions`` or
  ``airflow.exceptions``. (Airflow 2's sensor defers with the task's ``execution_timeout``, Airflow 3's with its
  ``timeout``: :class:`jikeyun_kingdee.order.BaseDataRunSensor` sets the deferral's timeout itself, the same on both);
* running a DAG in-process, for the demo and the tests, differs too: those helpers are in
  :mod:`jikeyun_kingdee.local_runs` (the package's tasks never need them).
"""

from __future__ import annotations

import functools
from importlib import import_module
from typing import Any
from urllib.parse import quote, urlencode

from airflow import __version__ as AIRFLOW_VERSION
from packaging.version import Version

#: the Airflow lines CI tests (README, "Supported Airflow lines"); the package refuses to import on any other
SUPPORTED_LINES = ("2.11", "3.3")
AIRFLOW_LINE = "{}.{}".format(*Version(AIRFLOW_VERSION).release)
if AIRFLOW_LINE not in SUPPORTED_LINES:
    raise ImportError(
        f"jikeyun_kingdee supports Airflow {' and '.join(SUPPORTED_LINES)}; this is Airflow {AIRFLOW_VERSION}. "
        f"Install it beside a supported Airflow, e.g. pip install . \"apache-airflow=={SUPPORTED_LINES[-1]}.*\""
    )
AIRFLOW_V3 = Version(Version(AIRFLOW_VERSION).base_version) >= Version("3.0")

if AIRFLOW_V3:
    from airflow.sdk import (
        DAG,
        AsyncCallback,
        BaseHook,
        BaseNotifier,
        CronDataIntervalTimetable,
        DeadlineAlert,
        DeadlineReference,
        ObjectStoragePath,
        Param,
        conf,
        get_current_context,
        task,
    )
    from airflow.sdk.exceptions import AirflowException, AirflowFailException, AirflowSkipException
    from airflow.sdk.log import mask_secret

    try:  # 3.2+
        from airflow.sdk._shared.secrets_masker import redact
    except ImportError:  # 3.1
        from airflow.sdk.execution_time.secrets_masker import redact

    _UI_BASE_URL = ("api", "base_url")
else:  # Airflow 2.11
    from airflow.configuration import conf
    from airflow.decorators import task
    from airflow.exceptions import AirflowException, AirflowFailException, AirflowSkipException
    from airflow.hooks.base import BaseHook
    from airflow.io.path import ObjectStoragePath
    from airflow.models.dag import DAG
    from airflow.models.param import Param
    from airflow.notifications.basenotifier import BaseNotifier
    from airflow.operators.python import get_current_context
    from airflow.timetables.interval import CronDataIntervalTimetable
    from airflow.utils.log.secrets_masker import mask_secret, redact

    AsyncCallback = DeadlineAlert = DeadlineReference = None  # Airflow 2 has SLAs instead
    _UI_BASE_URL = ("webserver", "base_url")


def _first_found(*names: tuple[str, str]) -> Any:
    """The first of ``(module, attribute)`` that imports."""
    for module, attribute in names:
        try:
            return getattr(import_module(module), attribute)
        except (ImportError, AttributeError):
            continue
    raise ImportError(f"none of {names} found")


# Airflow's metrics layer: the task SDK's (3.2+; the copy its task runner configures), else airflow.stats (2.x, 3.1)
Stats: Any = _first_found(("airflow.sdk.observability.stats", "Stats"), ("airflow.stats", "Stats"))
# Airflow 3's Asset, Airflow 2's Dataset
Asset: Any = _first_found(("airflow.sdk", "Asset"), ("airflow.datasets", "Dataset"))
# the operator base class, and the trigger a task waiting until a moment defers with (no worker slot held)
BaseOperator: Any = _first_found(("airflow.sdk", "BaseOperator"), ("airflow.models.baseoperator", "BaseOperator"))
DateTimeTrigger: Any = _first_found(("airflow.providers.standard.triggers.temporal", "DateTimeTrigger"),
                                    ("airflow.triggers.temporal", "DateTimeTrigger"))

# a sensor of another DAG's runs (deferrable: its trigger polls in the triggerer), and the base of triggers
ExternalTaskSensor: Any = _first_found(("airflow.providers.standard.sensors.external_task", "ExternalTaskSensor"),
                                       ("airflow.sensors.external_task", "ExternalTaskSensor"))
BaseTrigger: Any = _first_found(("airflow.sdk", "BaseTrigger"), ("airflow.triggers.base", "BaseTrigger"))
TriggerEvent: Any = _first_found(("airflow.sdk", "TriggerEvent"), ("airflow.triggers.base", "TriggerEvent"))


@functools.cache
def legacy_metric_names_on() -> bool:
    """Whether metrics are also sent under their legacy names, the tag values folded into the name.

    ``[metrics] legacy_names_on`` (Airflow 3.2+, default on), read once per process as Airflow does; Airflow 2 and
    3.1 have no such option and always send both forms of their own metrics.
    """
    return conf.getboolean("metrics", "legacy_names_on", fallback=True)


def ui_run_url(base_url: str | None, dag_id: str, run_id: str, task_id: str | None = None) -> str:
    """Link to a DAG run, or one task of it, in the installed Airflow's UI.

    :param base_url: UI base; ``None`` = the configured one (``[api] base_url``, on Airflow 2 ``[webserver] base_url``).
    """
    if base_url is None:
        base_url = conf.get(*_UI_BASE_URL, fallback="http://localhost:8080")
    dag_url = f"{base_url.rstrip('/')}/dags/{quote(dag_id, safe='')}"
    if not AIRFLOW_V3:  # the grid view selects a run and a task by query parameters
        return f"{dag_url}/grid?" + urlencode({"dag_run_id": run_id, **({"task_id": task_id} if task_id else {})})
    run_url = f"{dag_url}/runs/{quote(run_id, safe='')}"
    return f"{run_url}/tasks/{quote(task_id, safe='')}" if task_id else run_url


__all__ = [
    "AIRFLOW_V3",
    "AIRFLOW_VERSION",
    "DAG",
    "AirflowException",
    "AirflowFailException",
    "AirflowSkipException",
    "Asset",
    "AsyncCallback",
    "BaseHook",
    "BaseNotifier",
    "BaseOperator",
    "BaseTrigger",
    "CronDataIntervalTimetable",
    "DateTimeTrigger",
    "DeadlineAlert",
    "DeadlineReference",
    "ExternalTaskSensor",
    "ObjectStoragePath",
    "Param",
    "Stats",
    "TriggerEvent",
    "conf",
    "get_current_context",
    "legacy_metric_names_on",
    "mask_secret",
    "redact",
    "task",
    "ui_run_url",
]
