"""Metrics of the sync, sent through Airflow's own metrics layer (``Stats``).

Airflow's processes configure ``Stats`` from ``[metrics]`` (``statsd_on``, ``statsd_datadog_enabled``,
``statsd_influxdb_enabled`` or ``otel_on``, with Airflow's prefix, allow and block lists); this module adds no client
of its own, so the metrics go wherever the scheduler's and workers' metrics go.

Names follow Airflow's convention (its metrics registry since 3.2): each metric has a name without variables, sent
with tags (Datadog, InfluxDB-style StatsD tags, OpenTelemetry attributes), and a legacy name with the name variables
folded in, for plain StatsD, which drops tags — like Airflow's ``ti.finish`` and
``ti.finish.<dag_id>.<task_id>.<state>``.
Both are sent unless ``[metrics] legacy_names_on`` is off (Airflow 3.2+). As in Airflow, a dot inside a folded value
becomes ``__`` (``erp.warehouse.get`` → ``erp__warehouse__get``) so the name keeps its segments. Tags that are not
name variables (``outcome``, ``dag_id`` and ``task_id`` of API calls) are sent with both names.

:data:`METRICS` is the one table of names; the README lists the same.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cached_property
from typing import Any, Literal

import pendulum

from jikeyun_kingdee.compat import AirflowException, Stats, get_current_context, legacy_metric_names_on

PREFIX = "jikeyun_kingdee"

# Integer entries of the run summary that count something other than records.
NOT_RECORD_COUNTS = frozenset({"batches", "load_chunks", "chunks", "api_calls_total", "http_retries", "retries",
                               "quota_waits"})


@dataclass(frozen=True)
class Metric:
    """One metric: its name, type, legacy name (``{variable}`` placeholders) and meaning."""

    name: str
    type: Literal["counter", "gauge", "timer"]
    legacy_name: str
    tags: tuple[str, ...]
    description: str

    @cached_property
    def name_variables(self) -> list[str]:
        return [field for _, field, _, _ in string.Formatter().parse(self.legacy_name) if field]

    def legacy(self, tags: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        """The legacy name for ``tags`` and the tags left over (those that are not name variables).

        :raises KeyError: a name variable has no tag.
        """
        variables = self.name_variables
        name = self.legacy_name.format(**{key: str(tags[key]).replace(".", "__") for key in variables})
        return name, {key: value for key, value in tags.items() if key not in variables}


RECORDS = Metric(
    f"{PREFIX}.records", "counter", f"{PREFIX}.records.{{dag_id}}.{{status}}", ("dag_id", "status"),
    "Records of one run by status, sent by the report task: every record count of the run summary under its "
    "own name (fetched, transform_rejected, filtered_out, duplicates_dropped, rows, created, updated, unchanged, "
    "stale_skipped, rejected, and forbidden, enabled, absent where the summary has them); zeros are sent too.",
)
FRESHNESS = Metric(
    f"{PREFIX}.freshness", "gauge", f"{PREFIX}.freshness.{{dag_id}}", ("dag_id",),
    "Seconds from the end of the window the last successful run loaded to now, sent when a run succeeds "
    "(a run without a window, e.g. a full resync, loaded up to its start).",
)
API_CALLS = Metric(
    f"{PREFIX}.api.calls", "counter", f"{PREFIX}.api.calls.{{system}}.{{operation}}",
    ("system", "operation", "outcome", "dag_id", "task_id"),
    "HTTP calls to an API (system jikeyun or kingdee; operation = Jikeyun method or Kingdee service), each attempt "
    "counted; outcome ok or the error class; dag_id and task_id when called from a task.",
)
API_RETRIES = Metric(
    f"{PREFIX}.api.retries", "counter", f"{PREFIX}.api.retries.{{system}}.{{operation}}",
    ("system", "operation", "dag_id", "task_id"),
    "Calls that were a hook's retry (attempt 2 or later) of the same request.",
)
API_LATENCY = Metric(
    f"{PREFIX}.api.latency", "timer", f"{PREFIX}.api.latency.{{system}}.{{operation}}",
    ("system", "operation", "outcome", "dag_id", "task_id"),
    "Wall time of one API call (milliseconds in StatsD), including reading the answer.",
)

SOURCE_DAY_CALLS = Metric(
    f"{PREFIX}.source.day_calls", "counter", f"{PREFIX}.source.day_calls.{{dag_id}}.{{operation}}",
    ("dag_id", "operation", "beijing_day"),
    "Answered calls of a run's read of its source API (the Jikeyun method) per Beijing day — the day its daily "
    "quota counts by (erp.storage.goodslist: 1,000) — sent by the report task; a read that waited for the quota "
    "sends one value per day it read on.",
)
QUOTA_WAITS = Metric(
    f"{PREFIX}.source.quota_waits", "counter", f"{PREFIX}.source.quota_waits.{{dag_id}}", ("dag_id",),
    "Times a run's read stopped at its source API's exhausted quota and waited, deferred, for the reset.",
)

METRICS: dict[str, Metric] = {m.name: m for m in (RECORDS, FRESHNESS, API_CALLS, API_RETRIES, API_LATENCY,
                                                  SOURCE_DAY_CALLS, QUOTA_WAITS)}


def emit(metric: Metric, value: float | timedelta, tags: Mapping[str, Any]) -> None:
    """Send one value of ``metric`` under its name with ``tags`` and, when legacy names are on, its legacy name.

    :param value: count (counter), value (gauge) or duration (timer).
    """
    send = {"counter": Stats.incr, "gauge": Stats.gauge, "timer": Stats.timing}[metric.type]
    tags = {key: tag for key, tag in tags.items() if tag is not None}
    if legacy_metric_names_on():
        legacy_name, extra_tags = metric.legacy(tags)
        send(legacy_name, value, tags=extra_tags)
    send(metric.name, value, tags=tags)


def record_counts(summary: Mapping[str, Any]) -> dict[str, int]:
    """The record counts of a run summary (its integer entries that count records), by name."""
    return {
        name: value for name, value in summary.items()
        if isinstance(value, int) and not isinstance(value, bool) and name not in NOT_RECORD_COUNTS
    }


def emit_records(dag_id: str, summary: Mapping[str, Any]) -> dict[str, int]:
    """Send :data:`RECORDS` for every record count of ``summary``; return the counts sent."""
    counts = record_counts(summary)
    for status, count in counts.items():
        emit(RECORDS, count, {"dag_id": dag_id, "status": status})
    return counts


def emit_source_calls(dag_id: str, summary: Mapping[str, Any]) -> dict[tuple[str, str], int]:
    """Send :data:`SOURCE_DAY_CALLS` per Beijing day and method of the run summary's ``source_calls_by_day``, and
    :data:`QUOTA_WAITS` when the read waited; return the calls sent by (day, method)."""
    sent: dict[tuple[str, str], int] = {}
    for day, calls in (summary.get("source_calls_by_day") or {}).items():
        for operation, count in calls.items():
            emit(SOURCE_DAY_CALLS, count, {"dag_id": dag_id, "operation": operation, "beijing_day": day})
            sent[(day, operation)] = count
    if summary.get("quota_waits"):
        emit(QUOTA_WAITS, summary["quota_waits"], {"dag_id": dag_id})
    return sent


def loaded_until(window_end: datetime | None, read_at: datetime | str | None) -> datetime:
    """Up to when a successful run has copied the source: the end of its window, but no later than when its extract
    began reading (a run without a window, e.g. a full resync, or one whose window ends in the future, copied what
    existed then).

    :param read_at: when the extract began (ISO text as in its manifest); ``None`` = now.
    """
    read = pendulum.parse(read_at) if isinstance(read_at, str) else read_at
    started = pendulum.instance(read) if isinstance(read, datetime) else pendulum.now("UTC")
    return min(pendulum.instance(window_end), started) if window_end is not None else started


def emit_freshness(dag_id: str, until: datetime, now: datetime | None = None) -> float:
    """Send :data:`FRESHNESS`: seconds from ``until`` (see :func:`loaded_until`) to ``now``; return them."""
    seconds = max(0.0, ((now or pendulum.now("UTC")) - until).total_seconds())
    emit(FRESHNESS, round(seconds, 3), {"dag_id": dag_id})
    return seconds


def _task_tags() -> dict[str, str]:
    """``dag_id`` and ``task_id`` of the running Airflow task, or nothing outside a task."""
    try:
        ti = get_current_context()["ti"]
    except (RuntimeError, AirflowException):  # outside a task (Airflow 3 raises RuntimeError, 2 AirflowException)
        return {}
    return {"dag_id": ti.dag_id, "task_id": ti.task_id}


def emit_api_call(system: str, operation: str, seconds: float, outcome: str, attempt: int | None = None) -> None:
    """Send :data:`API_CALLS`, :data:`API_LATENCY` and, for a retry (``attempt`` > 1), :data:`API_RETRIES`.

    :param seconds: wall time of the call.
    :param outcome: ``ok`` or the class name of the error.
    """
    where = {"system": system, "operation": operation, **_task_tags()}
    emit(API_CALLS, 1, {**where, "outcome": outcome})
    emit(API_LATENCY, timedelta(seconds=seconds), {**where, "outcome": outcome})
    if attempt is not None and attempt > 1:
        emit(API_RETRIES, 1, where)
