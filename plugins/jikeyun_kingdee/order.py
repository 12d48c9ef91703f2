"""The order of a document scheme's run (``target.kind: document``): its writes to Kingdee wait for the runs of the
base-data DAGs (``base_data.schemes``) for the same window, so the warehouses, materials and customers a document
references are there first.

One :class:`BaseDataRunSensor` per base-data scheme (task ``wait_for_<scheme name>``), an ``ExternalTaskSensor``
on that DAG's run with the same logical date (the schemes share a schedule: :func:`reference_errors` checks it),
deferred: its trigger polls in the triggerer and the task holds no worker slot. It succeeds when that run has
finished, whatever its outcome (a failed base-data run is waited for, not inherited). After
``base_data.wait_minutes`` (counted from when the wait starts, with the run) it is skipped instead, and the task
that first writes to Kingdee runs all the same (trigger rule ``none_failed``): the documents whose references are
still missing are kept waiting and retried by later runs. The waits have no upstream task, so extract, transform
and filter run meanwhile. Nothing here touches the network or a database at parse time.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping
from datetime import datetime, timedelta, timezone
from importlib import import_module
from pathlib import Path
from typing import Any

from jikeyun_kingdee.compat import AirflowSkipException, BaseTrigger, ExternalTaskSensor, TriggerEvent
from jikeyun_kingdee.scheme import Scheme

log = logging.getLogger(__name__)

#: how often the trigger asks whether a base-data run has finished
POKE_SECONDS = 60.0
#: the shortest wait: one look even with ``wait_minutes: 0`` (a run already finished is not skipped)
FIRST_LOOK_SECONDS = 1.0
#: the deferral's own timeout comes this long after the trigger's deadline: a safety net should the trigger not fire
#: (the sensor's soft fail skips then too)
DEFERRAL_MARGIN = timedelta(minutes=5)
#: the states of a base-data run that count as finished (any outcome)
FINISHED_RUN_STATES = ("success", "failed")


def wait_task_id(base_data_scheme: str) -> str:
    return f"wait_for_{base_data_scheme}"


def base_data_dag_id(base_data_scheme: str) -> str:
    """The sync DAG of a base-data scheme (as :attr:`Scheme.dag_id` names it)."""
    return f"jikeyun_kingdee_{base_data_scheme}"


def reference_errors(schemes: Mapping[str, tuple[Path, Scheme]]) -> dict[str, str]:
    """The document schemes whose ``base_data.schemes`` cannot be waited for, each with its error naming the file and
    the field: a name given twice, a name that is no valid scheme of the folder, a scheme that is not base data, or
    one on another schedule or time zone (its runs' logical dates would not match the document's).

    :param schemes: the folder's valid schemes by name, with their files.
    """
    errors: dict[str, str] = {}
    for name, (path, scheme) in schemes.items():
        if scheme.base_data is None:
            continue
        problems = [f"{twice!r} is named twice" for twice in sorted(
            {n for n in scheme.base_data.schemes if scheme.base_data.schemes.count(n) > 1})]
        for referenced in dict.fromkeys(scheme.base_data.schemes):
            if referenced not in schemes:
                problems.append(f"{referenced!r} is not a valid scheme of {path.parent}")
                continue
            other = schemes[referenced][1]
            if other.target.kind != "base_data":
                problems.append(f"{referenced!r} is not a base-data scheme (target.kind: {other.target.kind})")
            elif (other.schedule, other.timezone) != (scheme.schedule, scheme.timezone):
                problems.append(f"{referenced!r} runs on schedule {other.schedule!r} ({other.timezone}), this scheme "
                                f"on {scheme.schedule!r} ({scheme.timezone}): a base-data scheme must share the "
                                "document's schedule, so that their runs cover the same windows")
        if problems:
            errors[name] = f"{path}: base_data.schemes: " + "; ".join(problems)
    return errors


def wait_for_base_data(scheme: Scheme, before: Any) -> list[Any]:
    """Add, in the DAG being built, one wait per base-data scheme of a document ``scheme`` upstream of ``before``
    (the first task that writes to Kingdee), and let ``before`` run when a wait is skipped. Nothing for a
    base-data scheme.

    :param before: that task, or the ``XComArg`` of its output.
    :returns: the wait tasks.
    """
    if scheme.base_data is None or not scheme.base_data.schemes:
        return []
    writer = getattr(before, "operator", before)
    waits = [BaseDataRunSensor(task_id=wait_task_id(name), base_data_scheme=name,
                               wait=timedelta(minutes=scheme.base_data.wait_minutes))
             for name in scheme.base_data.schemes]
    for wait in waits:
        wait >> writer
    writer.trigger_rule = "none_failed"  # a wait that timed out is skipped: the load goes on
    return waits


class BaseDataRunSensor(ExternalTaskSensor):
    """Waits, deferred, for the run of a base-data scheme's DAG with this run's logical date to finish (success or
    failed), at most ``wait``; then it is skipped (soft fail), as it is for a run without a logical date (a manual
    full read), which has no such run to wait for.

    The trigger is the sensor's own ``WorkflowTrigger`` inside a :class:`UntilTrigger`, which ends it at the
    deadline: the deadline holds under ``dag.test()`` too (which runs triggers in line, without deferral timeouts),
    and the same way on both Airflow lines.

    :param base_data_scheme: the name of the base-data scheme.
    :param wait: the longest wait.
    """

    ui_color = "#fdf1e0"

    def __init__(self, *, base_data_scheme: str, wait: timedelta, **kwargs: Any) -> None:
        super().__init__(external_dag_id=base_data_dag_id(base_data_scheme), external_task_id=None,
                         allowed_states=list(FINISHED_RUN_STATES), deferrable=True, soft_fail=True,
                         poke_interval=POKE_SECONDS, timeout=(wait + DEFERRAL_MARGIN).total_seconds(), **kwargs)
        self.wait = wait

    def pre_execute(self, context: Any) -> None:
        """Skip in a run without a logical date. (Here, not in ``execute``: Airflow 2 warns that an ``execute``
        calling its base class's ``execute`` is "called outside TaskInstance".)"""
        if context.get("logical_date") is None:
            raise AirflowSkipException(f"a run without a logical date: no run of {self.external_dag_id} to wait for")

    def defer(self, *, trigger: Any, method_name: str, kwargs: dict[str, Any] | None = None,
              timeout: timedelta | None = None) -> Any:
        """Defer with ``trigger`` ended at this wait's deadline, and the deferral's timeout a margin after it."""
        deadline = datetime.now(timezone.utc) + self.wait
        log.info("waiting for the run of %s with this logical date until %s", self.external_dag_id,
                 deadline.isoformat())
        return super().defer(trigger=UntilTrigger(trigger, deadline), method_name=method_name, kwargs=kwargs,
                             timeout=self.wait + DEFERRAL_MARGIN)

    def execute_complete(self, context: Any, event: dict[str, Any] | None = None) -> None:
        if event is not None and event.get("status") == UntilTrigger.TIMEOUT:
            raise AirflowSkipException(
                f"the run of {self.external_dag_id} with this logical date has not finished within {self.wait}: "
                "going on (what lacks its base data waits for a later run)")
        super().execute_complete(context, event)


class UntilTrigger(BaseTrigger):
    """Another trigger, until a deadline: its first event, or ``{"status": "timeout"}`` if the deadline comes first
    (after one look at least: ``FIRST_LOOK_SECONDS``).

    :param inner: the trigger, or its serialised form ``(classpath, kwargs)``.
    :param deadline: an aware moment.
    """

    TIMEOUT = "timeout"

    def __init__(self, inner: Any, deadline: datetime, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.inner_classpath, self.inner_kwargs = inner if isinstance(inner, (tuple, list)) else inner.serialize()
        self.deadline = deadline

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return f"{type(self).__module__}.{type(self).__qualname__}", {
            "inner": (self.inner_classpath, self.inner_kwargs), "deadline": self.deadline}

    def _inner(self) -> Any:
        module, name = self.inner_classpath.rsplit(".", 1)
        return getattr(import_module(module), name)(**self.inner_kwargs)

    async def run(self) -> AsyncIterator[Any]:
        events = self._inner().run()
        left = max((self.deadline - datetime.now(timezone.utc)).total_seconds(), FIRST_LOOK_SECONDS)
        event = None
        try:
            event = await asyncio.wait_for(events.__anext__(), timeout=left)
        except (asyncio.TimeoutError, StopAsyncIteration):
            pass
        finally:
            await events.aclose()
        yield event if event is not None else TriggerEvent({"status": self.TIMEOUT,
                                                            "deadline": self.deadline.isoformat()})
