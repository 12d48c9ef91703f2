"""Airflow wiring shared by the sync DAG (:mod:`jikeyun_kingdee.dag_factory`) and the reconcile DAG
(:mod:`jikeyun_kingdee.reconcile_dag`): what a run reads (its conf, window and staging folder), the tasks' default
arguments, the deadline, and how failures are retried and alerted. Nothing here touches the network or a database
at parse time.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

from jikeyun_kingdee import pipeline
from jikeyun_kingdee.alerting import deadline_alert, sla_miss_callback
from jikeyun_kingdee.compat import (
    AIRFLOW_V3,
    AirflowFailException,
    BaseOperator,
    DateTimeTrigger,
    ObjectStoragePath,
    get_current_context,
)
from jikeyun_kingdee.scheme import AlertingConfig, Scheme
from jikeyun_kingdee.staging import run_folder, staging_base

log = logging.getLogger(__name__)


def is_fatal(error: BaseException) -> bool:
    """Whether retrying the task cannot help: the upstream said no (signature, permission, parameters, validation,
    missing organisation). Transport failures and lost sessions stay retryable (the hooks already retried them)."""
    from jikeyun_kingdee.hooks.jikeyun import JikeyunFatalError
    from jikeyun_kingdee.hooks.kingdee import KingdeeError, KingdeeSessionLost, KingdeeTransportError

    if isinstance(error, (JikeyunFatalError, pipeline.TargetNotReady)):
        return True
    return isinstance(error, KingdeeError) and not isinstance(error, (KingdeeTransportError, KingdeeSessionLost))


@contextmanager
def no_retry_on_fatal() -> Iterator[None]:
    """A fatal upstream error fails the task at once, without task retries."""
    try:
        yield
    except Exception as exc:
        if is_fatal(exc):
            raise AirflowFailException(f"{type(exc).__name__}: {exc}") from exc
        raise


def run_conf(context: Mapping[str, Any]) -> dict[str, Any]:
    """The run's conf, where the trigger form puts its params (``full_resync``, ``repair``).

    Read there, not from the task's ``params``: those are resolved onto the task object, which ``dag.test()`` reuses
    from one run to the next."""
    dag_run = context.get("dag_run")
    return dict(getattr(dag_run, "conf", None) or {}) if dag_run is not None else {}


def run_window(context: Mapping[str, Any]) -> tuple[datetime | None, datetime | None]:
    """The window a sync run reads: its data interval, or ``(None, None)`` (everything) for a full resync or a run
    without a data interval (e.g. triggered manually with ``logical_date: null``)."""
    start, end = context.get("data_interval_start"), context.get("data_interval_end")
    if run_conf(context).get("full_resync") is True or start is None or end is None:
        return None, None
    return start, end


def run_staging_folder(scheme: Scheme, context: Mapping[str, Any] | None = None) -> ObjectStoragePath:
    """The staging folder of the current sync run (``<base>/<dag_id>/<window>/<run_id>``), every task's the same."""
    current: Mapping[str, Any] = context if context is not None else get_current_context()
    start, end = run_window(current)
    return run_folder(staging_base(), scheme.dag_id, current["run_id"], start, end)


def reconcile_staging_folder(scheme: Scheme) -> ObjectStoragePath:
    """The staging folder of the current reconcile run (``<base>/<reconcile dag_id>/full/<run_id>``): it reads
    everything, whatever its data interval."""
    return run_folder(staging_base(), scheme.reconcile_dag_id, get_current_context()["run_id"], None, None)


def unless_alerted(
    callbacks: list[Callable[..., Any]], alerted: type[BaseException]
) -> Callable[[dict[str, Any]], None]:
    """The failure callbacks of a report task that sends its own, richer alert before it raises ``alerted``
    (rejected records, drift left): no second alert for that failure."""

    def on_failure(context: dict[str, Any]) -> None:
        if isinstance(context.get("exception"), alerted):
            return
        for callback in callbacks:
            callback(context)

    return on_failure


def default_args(scheme: Scheme, on_failure: list[Callable[..., Any]]) -> dict[str, Any]:
    """The tasks' owner, retries and failure alert, from the scheme."""
    return {
        "owner": scheme.owner,
        "retries": scheme.retries,
        "retry_delay": timedelta(seconds=scheme.retry_delay_seconds),
        "retry_exponential_backoff": scheme.retry_exponential_backoff,
        "max_retry_delay": timedelta(seconds=scheme.max_retry_delay_seconds),
        "on_failure_callback": on_failure,
    }


def deadline_wiring(alerting: AlertingConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    """The scheme's deadline: ``(DAG arguments, arguments of the run's last task)``.

    Airflow 3: a Deadline Alert of the DAG. Airflow 2: the SLA of the run's last task (mapped tasks take no SLA) and
    the DAG's ``sla_miss_callback``.
    """
    if AIRFLOW_V3:
        deadline = deadline_alert(alerting)
        return ({"deadline": deadline} if deadline is not None else {}), {}
    on_sla_miss = sla_miss_callback(alerting)
    if on_sla_miss is None or alerting.deadline_minutes is None:
        return {}, {}
    return {"sla_miss_callback": on_sla_miss}, {"sla": timedelta(minutes=alerting.deadline_minutes)}


class SourceReadOperator(BaseOperator):
    """A task that reads the scheme's source: ``read(scheme, resume)`` (the sync's extract, the reconcile's
    read_source). When the source's call quota runs out (:class:`~jikeyun_kingdee.pipeline.SourceQuotaExhausted`:
    what was read is staged, the position saved) the task defers — Airflow's own deferral, so it holds no worker
    slot and burns no retry — until the quota comes back (:class:`~jikeyun_kingdee.compat.DateTimeTrigger` at the
    scheme's ``source.quota_reset``, Beijing midnight by default, reckoned from the server's clock), then reads
    again, going on from the saved position. It defers again if the quota is still spent.

    The task always reads with ``resume=True``: a checkpoint in the run's folder (same run, same window) is where
    the read goes on, also when a task retry or a cleared task follows a read the quota stopped, so quota already
    spent is not spent again; without one the read starts afresh.

    :param scheme: the scheme whose source the task reads.
    :param read: a module-level function ``(scheme, resume) -> manifest``.
    """

    ui_color = "#e8f4fd"

    def __init__(self, *, scheme: Scheme, read: Callable[[Scheme, bool], Any], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.scheme, self.read = scheme, read

    def execute(self, context: Any) -> Any:
        return self._read()

    def resume_read(self, context: Any, event: Any = None) -> Any:
        """Where the task goes on when the quota's reset has come (``event``: the trigger's, unused)."""
        return self._read()

    def _read(self) -> Any:
        try:
            return self.read(self.scheme, True)
        except pipeline.SourceQuotaExhausted as exc:
            log.warning("%s: waiting, deferred, until %s", exc, exc.resets_at.isoformat())
            self.defer(trigger=DateTimeTrigger(moment=exc.resets_at), method_name="resume_read")
            raise  # not reached: defer raises TaskDeferred
