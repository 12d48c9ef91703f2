"""The sync DAGs exactly as ``dags/jikeyun_kingdee_schemes.py`` builds them, with each task's callable profiled.

Benchmark only: the DAGs folder of the embedded deployment that ``benchmarks/warehouse_dag.py`` runs. When the
environment variable ``BENCH_PROFILE`` names a file, every process that parses this file appends JSON lines to it:

* ``{"kind": "parse", "pid", "wall", "cpu"}``: building the DAGs (importing the package, loading the schemes);
* ``{"kind": "task", "pid", "run_id", "task_id", "map_index", "try_number", "wall", "cpu", "started_at",
  "api_latency", "api_cpu", "api_calls", "error"}`` once per task callable (the function under ``@task``, which
  creates the hooks and calls the package's step): ``wall``/``cpu`` are ``time.perf_counter``/``time.process_time``
  (all threads) around it, ``started_at`` is the process's age (seconds since it was forked) when it began,
  ``api_latency`` sums the durations of the ``hooks.call_log.logged_call`` blocks it ran — the interval each
  ``api_call … latency_ms`` log line reports — and ``api_cpu`` is the CPU time spent inside those blocks;
* ``{"kind": "process", "pid", "age", "utime", "stime", "maxrss_kb"}`` when the process exits (Airflow's task
  runner runs the exit handlers registered after its fork): ``getrusage(RUSAGE_SELF)``, i.e. the task process's
  own CPU time and peak resident set size, and its age.

(The words "airflow" and "dag" in this docstring let Airflow's safe-mode file scan pick the file up.)
"""

from __future__ import annotations

import atexit
import functools
import json
import os
import resource
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, cast

PROFILE = os.environ.get("BENCH_PROFILE")


def _write(kind: str, **entry: Any) -> None:
    if PROFILE:
        with open(PROFILE, "a", encoding="utf-8") as out:
            out.write(json.dumps({"kind": kind, "pid": os.getpid(), **entry}) + "\n")


def _age() -> float:
    """Seconds since this process started (``/proc/self/stat`` start time against the system uptime)."""
    with open("/proc/self/stat", encoding="ascii") as stat:
        started_ticks = int(stat.read().rsplit(")", 1)[1].split()[19])
    with open("/proc/uptime", encoding="ascii") as uptime:
        return float(uptime.read().split()[0]) - started_ticks / os.sysconf("SC_CLK_TCK")


def _on_exit() -> None:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    _write("process", age=_age(), utime=usage.ru_utime, stime=usage.ru_stime, maxrss_kb=usage.ru_maxrss)


def _api() -> dict[str, Any]:
    """The API-call accumulator, kept in ``hooks.call_log`` so that it outlives a second parse of this file."""
    from jikeyun_kingdee.hooks import call_log

    api: dict[str, Any] = vars(call_log).setdefault("bench_api", {"latency": 0.0, "cpu": 0.0, "calls": Counter()})
    return api


def _timed_logged_call(original: Callable[..., Any]) -> Callable[..., Any]:
    @contextmanager
    def logged_call(log: Any, system: str, operation: str, **fields: Any) -> Iterator[dict[str, Any]]:
        started, cpu = time.perf_counter(), time.process_time()
        try:
            with original(log, system, operation, **fields) as record:
                yield record
        finally:
            api = _api()
            api["latency"] += time.perf_counter() - started
            api["cpu"] += time.process_time() - cpu
            api["calls"][f"{system}:{operation}"] += 1

    return logged_call


def _time_api_calls() -> None:
    """Time every ``logged_call`` block: replace it in ``hooks.call_log`` (for hooks imported later) and in every
    package module that already imported it. Once per process."""
    from jikeyun_kingdee.hooks import call_log

    state = vars(call_log)
    if "bench_original" in state:
        return
    original = state["bench_original"] = call_log.logged_call
    timed = _timed_logged_call(original)
    for name, module in list(sys.modules.items()):
        if name.startswith("jikeyun_kingdee") and getattr(module, "logged_call", None) is original:
            vars(module)["logged_call"] = timed


def _profiled(task_id: str, callable_: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(callable_)
    def run(*args: Any, **kwargs: Any) -> Any:
        from jikeyun_kingdee.compat import get_current_context

        _time_api_calls()
        api = _api()
        api.update(latency=0.0, cpu=0.0, calls=Counter())
        context = get_current_context()
        ti = context["ti"]
        started_at, started, cpu = _age(), time.perf_counter(), time.process_time()
        error = None
        try:
            return callable_(*args, **kwargs)
        except BaseException as exc:
            error = type(exc).__name__
            raise
        finally:
            _write(
                "task",
                run_id=context["run_id"],
                task_id=task_id,
                map_index=getattr(ti, "map_index", -1),
                try_number=getattr(ti, "try_number", None),
                wall=time.perf_counter() - started,
                cpu=time.process_time() - cpu,
                started_at=started_at,
                api_latency=api["latency"],
                api_cpu=api["cpu"],
                api_calls=dict(api["calls"]),
                error=error,
            )

    return run


def _build() -> dict[str, Any]:
    """Import the package, build the DAGs from the scheme files and wrap every task's callable."""
    started, cpu = time.perf_counter(), time.process_time()
    from jikeyun_kingdee.dag_factory import build_dags
    from jikeyun_kingdee.scheme import default_schemes_folder

    dags = build_dags(default_schemes_folder(__file__), dags_file=__file__)
    for dag in dags.values():
        for task in dag.tasks:
            callable_ = getattr(task, "python_callable", None)
            if callable_ is not None:
                cast(Any, task).python_callable = _profiled(task.task_id, callable_)  # mapped tasks too
    _write("parse", wall=time.perf_counter() - started, cpu=time.process_time() - cpu)
    return dags


if PROFILE:
    atexit.register(_on_exit)
globals().update(_build())
