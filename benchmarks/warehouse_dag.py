"""Benchmark of the warehouse DAG in six cases: API calls against the minimum, each task's peak memory, and where a
run's wall time goes.

    .venv/bin/python benchmarks/warehouse_dag.py [--cases 1 2 3 4 5 6] [--quick] [--home DIR] [--keep]

Cases (sizes with ``--quick`` in brackets):

1. full sync of 10,000 [1,000] warehouses (about 20 % blocked up, 2 % deleted) into an empty Kingdee;
2. the same into a Kingdee that already holds every one of them, audited, 10 % under other names, with an empty
   sync ledger (going live after the hosted platform);
3. an hourly window with 50 changes (on top of case 1: 30 warehouses renamed in one bulk second, 10 renamed apart,
   5 blocked up, 5 new);
4. the same window run again (the run cleared, as with Clear in the UI), nothing changed;
5. the next hourly window, in which nothing changed;
6. memory: a full sync of 100,000 [10,000] warehouses into an empty Kingdee against the same at 1,000, each task's
   peak RSS at both sizes. Run without sandbox latency to keep it short.

How it runs (see ``bench_airflow.py``): a real Airflow 3 deployment — scheduler with the LocalExecutor
(parallelism 1: one task at a time) and the execution API server, SQLite metadata, no dag-processor (the DAG is
serialized once) — so every task runs in its own task-runner process, forked for that task, which parses the DAG
file as in production. The DAG file is ``benchmarks/dags/jikeyun_kingdee_profiled.py``: the package's DAGs with each
task's callable profiled. The sandboxes run in their own processes (``bench_sandbox.py``) with realistic latency:
Jikeyun 80 ms a call; Kingdee 40 ms a call plus 5 ms per row a write touches (Save/BatchSave models,
Submit/Audit/UnAudit/Forbid/Enable records).

What is measured, and how:

* API calls per endpoint: the sandboxes' own counters for the run. The minimum per case (issue 10): Jikeyun
  ⌈(n+1)/200⌉ for n records in the window; a Kingdee login per task that must call Kingdee (the target check, and
  one load task per 2,000 rows — the scheme's ``rows_per_chunk`` — that need a call); look-ups min(⌈R/B⌉
  IN-queries, max(1, ⌈M/L⌉) scope queries) for the R rows the ledger does not know unchanged, M records of the
  organisation, L the scheme's ``lookup_limit`` (2,000) rows a query; writes
  ⌈created/B⌉ (saved, submitted and audited in one BatchSave), per batch of updated audited rows UnAudit, Save,
  Submit, Audit; per batch of rows to forbid (or re-enable) one Forbid (Enable); the target check (form and
  organisation: 2 queries) once, and only when something is written; nothing for rows the ledger knows unchanged.
  B is the scheme's rows per batch. Rows to forbid count only when the scheme's lifecycle says so.
* Peak RSS per task: ``getrusage(RUSAGE_SELF).ru_maxrss`` of the task process, taken when it exits. The task
  process is forked from the executor's supervisor, so it starts with what that one holds (Airflow imported).
* Wall time of a run: from the run being queued to its end (the metadata DB's end date). Split into
  - API wait: the sum of the hooks' per-call latencies (the ``api_call … latency_ms`` intervals, timed around
    ``hooks.call_log.logged_call``), less the CPU this process spent inside those intervals;
  - package CPU: ``time.process_time()`` around each task's callable (the ``@task`` function: hooks, ledger,
    staging, the package's step);
  - package other: the rest of the callables' wall time (local files and the ledger database, waiting for a core);
  - Airflow: everything outside the callables — the scheduler and executor getting a task to a process, the task
    process starting (fork, parsing the DAG file, the execution API) and finishing (XCom, state).
* CPU: the package's (above), the DAG file's parse in each task process (package code run at Airflow's start-up),
  and Airflow's: the CPU time of the scheduler's process tree (executor, supervisors, task processes) and the API
  server during the run, less the package's.

The machine may be shared: wall times are noisy, CPU times less so; both are printed.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import requests
from bench_airflow import (
    REPO,
    Deployment,
    Service,
    free_port,
    parse_db_time,
    start_process,
    tree_cpu_seconds,
)

DAG_FILE = REPO / "dags" / "jikeyun_kingdee_schemes.py"
SCHEME_FILE = REPO / "include" / "schemes" / "warehouse_I0134.yaml"
JIKEYUN = {"appkey": "12345678", "appsecret": "0123456789abcdef0123456789ABCDEF"}
KINGDEE = {"acct_id": "5db25ac8d2b819", "username": "webapi", "password": "Kingdee@123"}
BEIJING = timezone(timedelta(hours=8))
HOURLY_WINDOW = datetime(2026, 11, 20, 10, 0, tzinfo=BEIJING)  # cases 3 and 4; case 5 is the hour after
FULL_SYNC_WINDOWS = datetime(2026, 11, 10, 0, 0, tzinfo=BEIJING)  # full syncs: one hour each from here
API_PAGE_MAX = 200
CHUNK_ROWS = 2000  # rows per load task the minimum assumes: the scheme's rows_per_chunk, else the contract's default
LOOKUP_LIMIT = 2000  # rows per ExecuteBillQuery: the scheme's target.lookup_limit, else this (older servers' cap)
LATENCY = {"jikeyun": 0.080, "kingdee": 0.040, "kingdee_row": 0.005}
GOAL_RATIO, GOAL_CPU_SHARE, GOAL_RSS_MB = 1.2, 0.10, 30


# -- the sandboxes ------------------------------------------------------------------------------------------------


def control(url: str, command: str, payload: dict[str, Any] | None = None) -> Any:
    answer = requests.post(f"{url}/_sandbox/{command}", json=payload or {}, timeout=300)
    answer.raise_for_status()
    return answer.json()["result"]


def round_trip_ms(url: str, count: int = 50) -> float:
    """Median milliseconds of a sandbox's round trip on one kept-alive connection: the sandbox's own helper
    (``sandbox._http.round_trip_ms``) where it has one, else the same measured here with a ``requests.Session``
    over the control endpoint (no scripted latency there)."""
    from jikeyun_kingdee.sandbox import _http

    helper = getattr(_http, "round_trip_ms", None)
    if helper is not None:
        return float(helper(url, count))
    times = []
    with requests.Session() as session:
        session.post(f"{url}/_sandbox/calls", json={}, timeout=10).raise_for_status()
        for _ in range(count):
            started = time.perf_counter()
            session.post(f"{url}/_sandbox/calls", json={}, timeout=10).raise_for_status()
            times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


@dataclass
class Sandboxes:
    """Both sandboxes, each in its own process, on ports fixed for the whole benchmark (the deployment's
    connections point at them); restarted with fresh data for each environment."""

    logs: Path
    ports: dict[str, int] = field(default_factory=lambda: {"jikeyun": free_port(), "kingdee": free_port()})
    services: dict[str, Service] = field(default_factory=dict)

    def url(self, kind: str) -> str:
        return f"http://127.0.0.1:{self.ports[kind]}"

    def connections(self) -> dict[str, str]:
        return {
            "AIRFLOW_CONN_JIKEYUN_DEFAULT": json.dumps(
                {
                    "conn_type": "jikeyun",
                    "host": self.url("jikeyun"),
                    "login": JIKEYUN["appkey"],
                    "password": JIKEYUN["appsecret"],
                    "extra": {"max_calls_per_second": 1000},
                }
            ),
            "AIRFLOW_CONN_KINGDEE_DEFAULT": json.dumps(
                {
                    "conn_type": "kingdee",
                    "host": f"{self.url('kingdee')}/k3cloud/",
                    "login": KINGDEE["username"],
                    "password": KINGDEE["password"],
                    "extra": {"acct_id": KINGDEE["acct_id"], "auth": "password"},
                }
            ),
        }

    def start(self, warehouses: int, seed: int, row_latency: float) -> None:
        self.stop()
        script = str(Path(__file__).resolve().parent / "bench_sandbox.py")
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO / "plugins"), os.environ.get("PYTHONPATH", "")]))
        self.services["jikeyun"] = start_process(
            "jikeyun",
            [
                sys.executable,
                script,
                "jikeyun",
                "--port",
                str(self.ports["jikeyun"]),
                "--warehouses",
                str(warehouses),
                "--seed",
                str(seed),
                "--appkey",
                JIKEYUN["appkey"],
                "--appsecret",
                JIKEYUN["appsecret"],
            ],
            env,
            self.logs,
        )
        self.services["kingdee"] = start_process(
            "kingdee",
            [
                sys.executable,
                script,
                "kingdee",
                "--port",
                str(self.ports["kingdee"]),
                "--row-latency",
                str(row_latency),
                "--password",
                KINGDEE["password"],
            ],
            env,
            self.logs,
        )
        for kind, service in self.services.items():
            deadline = time.monotonic() + 120
            while True:
                try:
                    control(self.url(kind), "calls")
                    break
                except requests.RequestException:
                    if service.process.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(f"{kind} sandbox did not start:\n{service.tail()}") from None
                    time.sleep(0.2)

    def stop(self) -> None:
        for service in self.services.values():
            service.stop(grace=5)
        self.services.clear()

    def set_latency(self, realistic: bool) -> None:
        control(
            self.url("jikeyun"), "faults", {"latency": LATENCY["jikeyun"] if realistic else 0.0, "latency_count": None}
        )
        control(
            self.url("kingdee"), "faults", {"latency": LATENCY["kingdee"] if realistic else 0.0, "latency_count": None}
        )

    def reset_calls(self) -> None:
        for kind in self.services:
            control(self.url(kind), "reset-calls")

    def calls(self) -> dict[str, int]:
        merged: dict[str, int] = {}
        for kind in self.services:
            merged.update(control(self.url(kind), "calls"))
        return merged

    def cpu_seconds(self) -> float:
        return float(sum(tree_cpu_seconds(service.process.pid) for service in self.services.values()))


# -- what a case must do, and the fewest calls it takes --------------------------------------------------------------


@dataclass
class Item:
    key: str
    state: str  # active | blocked | deleted
    row: dict[str, Any]

    @property
    def signature(self) -> str:
        return json.dumps([self.state, self.row], sort_keys=True, ensure_ascii=False)


def items_of(scheme: Any, records: Iterable[dict[str, Any]]) -> dict[str, Item]:
    """What the run must apply: the latest record per key, those the scheme keeps (its condition; blocked and
    deleted ones when its lifecycle forbids them), rendered with the scheme's mapping."""
    from jikeyun_kingdee.transform import matches
    from jikeyun_kingdee.values import truthy

    source, lifecycle = scheme.source, getattr(scheme, "lifecycle", None)
    blocked_field = getattr(lifecycle, "blocked_field", "isBlockup")
    deleted_field = getattr(lifecycle, "deleted_field", "isDelete")
    latest: dict[str, dict[str, Any]] = {}
    for record in records:
        key = str(record[source.id_field]).strip()
        if key not in latest or int(record.get("gmtModified") or 0) >= int(latest[key].get("gmtModified") or 0):
            latest[key] = record
    items = {}
    for key, record in latest.items():
        state = (
            "deleted"
            if truthy(record.get(deleted_field))
            else "blocked"
            if truthy(record.get(blocked_field))
            else "active"
        )
        keep = (
            matches(source.condition, record)
            if state == "active" or lifecycle is None
            else getattr(lifecycle, f"on_{state}", "ignore") == "forbid"
        )
        if keep:
            items[key] = Item(key, state, scheme.target.field_map.render(record))
    return items


@dataclass
class Minimum:
    """The fewest calls per endpoint for one run, and what they are for."""

    calls: dict[str, int]
    detail: dict[str, int]

    @property
    def jikeyun(self) -> int:
        return self.calls.get("erp.warehouse.get", 0)

    @property
    def kingdee(self) -> int:
        return sum(n for endpoint, n in self.calls.items() if endpoint != "erp.warehouse.get")


def minimum_calls(
    scheme: Any, read: int, items: dict[str, Item], stocks: list[dict[str, Any]], ledger: dict[str, str]
) -> Minimum:
    """Issue 10's minimum for a run that reads ``read`` records and must apply ``items`` to a Kingdee holding
    ``stocks`` (the organisation's BD_STOCK records), the ledger knowing ``ledger`` (key → signature)."""
    target = scheme.target
    batch = target.rows_per_batch
    chunk_rows = int(getattr(scheme, "rows_per_chunk", CHUNK_ROWS))
    lookup_limit = int(getattr(target, "lookup_limit", LOOKUP_LIMIT))
    by_number = {str(stock["FNumber"]): stock for stock in stocks}
    count: Counter[str] = Counter()
    for item in items.values():
        if ledger.get(item.key) == item.signature:
            count["known_unchanged"] += 1
            continue
        count["to_check"] += 1
        stock = by_number.get(str(item.row.get(target.number_field)))
        if item.state == "active":
            if stock is None:
                count["create"] += 1
                continue
            if stock.get("FForbidStatus") == "B":
                count["enable"] += 1
            if any(
                str(stock.get(name)) != str(value)
                for name, value in item.row.items()
                if name in stock and not isinstance(value, (dict, bool))
            ):
                count["update_audited" if stock.get("FDocumentStatus") == "C" else "update_other"] += 1
        elif stock is not None and stock.get("FForbidStatus") != "B":
            count["forbid"] += 1

    def batches(n: int) -> int:
        return -(-n // int(batch))  # ceil(n / batch)

    updated = count["update_audited"] + count["update_other"]
    writes = batches(count["create"]) + batches(updated) + batches(count["forbid"]) + batches(count["enable"])
    check = writes > 0
    to_check = count["to_check"]
    lookups = min(batches(to_check), max(1, math.ceil(len(stocks) / lookup_limit))) if to_check else 0
    calls = {
        "erp.warehouse.get": math.ceil((read + 1) / API_PAGE_MAX),
        "ValidateUser": int(check) + math.ceil(to_check / chunk_rows),
        "ExecuteBillQuery": 2 * int(check) + lookups,
        "BatchSave": batches(count["create"]) + batches(updated),
        "UnAudit": batches(count["update_audited"]),
        "Submit": batches(updated),
        "Audit": batches(updated),
        "ExcuteOperation": batches(count["forbid"]) + batches(count["enable"]),
    }
    detail = {"read": read, "items": len(items), "organisation_records": len(stocks), "lookups": lookups, **count}
    return Minimum(calls, detail)


def wrong_in_kingdee(scheme: Any, items: dict[str, Item], stocks: list[dict[str, Any]]) -> list[str]:
    """Keys whose Kingdee record does not show what the run had to apply."""
    by_number = {str(stock["FNumber"]): stock for stock in stocks}
    wrong = []
    for item in items.values():
        stock = by_number.get(str(item.row.get(scheme.target.number_field)))
        if item.state == "active":
            ok = (
                stock is not None
                and stock.get("FForbidStatus") != "B"
                and all(
                    str(stock.get(name)) == str(value)
                    for name, value in item.row.items()
                    if name in stock and not isinstance(value, (dict, bool))
                )
            )
        else:
            ok = stock is None or stock.get("FForbidStatus") == "B"
        if not ok:
            wrong.append(item.key)
    return wrong


# -- one measured run --------------------------------------------------------------------------------------------------


@dataclass
class TaskFigures:
    name: str
    count: int = 0
    process_wall: float = 0.0
    startup: float = 0.0
    callable_wall: float = 0.0
    api_latency: float = 0.0
    api_cpu: float = 0.0
    package_cpu: float = 0.0
    parse_cpu: float = 0.0
    process_cpu: float = 0.0
    peak_rss_mb: float = 0.0
    calls: int = 0

    def add(self, task: dict[str, Any], process: dict[str, Any] | None, parse: dict[str, Any] | None) -> None:
        self.count += 1
        self.callable_wall += task["wall"]
        self.startup += task["started_at"]
        self.api_latency += task["api_latency"]
        self.api_cpu += task["api_cpu"]
        self.package_cpu += task["cpu"]
        self.calls += sum(task["api_calls"].values())
        if parse:
            self.parse_cpu += parse["cpu"]
        if process:
            self.process_wall += process["age"]
            self.process_cpu += process["utime"] + process["stime"]
            self.peak_rss_mb = max(self.peak_rss_mb, process["maxrss_kb"] / 1024)


@dataclass
class RunFigures:
    title: str
    state: str
    wall: float
    calls: dict[str, int]
    minimum: Minimum
    tasks: dict[str, TaskFigures]
    airflow_cpu: float
    sandbox_cpu: float
    rtt: dict[str, float]
    latency: bool
    summary: dict[str, Any]
    wrong: list[str]
    failed: list[str]
    failure_logs: dict[str, str] = field(default_factory=dict)

    def total(self, name: str) -> float:
        return float(sum(getattr(t, name) for t in self.tasks.values()))

    @property
    def jikeyun_calls(self) -> int:
        return sum(n for endpoint, n in self.calls.items() if endpoint.startswith("erp."))

    @property
    def kingdee_calls(self) -> int:
        return sum(n for endpoint, n in self.calls.items() if not endpoint.startswith("erp."))


class Bench:
    """The deployment, the sandboxes and the scheme; runs and measures cases."""

    def __init__(self, home: Path, quick: bool) -> None:
        from jikeyun_kingdee.scheme import load_scheme

        self.home, self.quick = home, quick
        self.scheme = load_scheme(SCHEME_FILE)
        self.dag_id = self.scheme.dag_id
        self.sandboxes = Sandboxes(home / "logs-sandboxes")
        self.deployment = Deployment(home=home / "airflow", connections=self.sandboxes.connections())
        self.ledger: dict[str, str] = {}
        self.full_syncs = 0
        self.environment = ""

    def start(self) -> None:
        self.deployment.prepare()
        self.deployment.cli("dags", "unpause", self.dag_id)
        pool = self.target_pool()
        if pool:
            self.deployment.cli("pools", "set", pool, "4", "benchmark: the target's load pool")
        self.deployment.start()

    def target_pool(self) -> str | None:
        try:
            from jikeyun_kingdee.pools import target_pool
        except ImportError:  # the package before target pools (the benchmark's "before" figures)
            return None
        return target_pool(self.scheme)

    def stop(self) -> None:
        self.deployment.stop()
        self.sandboxes.stop()

    def environment_for(self, name: str, warehouses: int, realistic: bool, seed: int = 7) -> None:
        """Fresh sandboxes (``warehouses`` in Jikeyun, an empty Kingdee) and an empty sync ledger."""
        self.sandboxes.start(warehouses, seed, LATENCY["kingdee_row"] if realistic else 0.0)
        self.deployment.ledger_path.unlink(missing_ok=True)
        self.ledger.clear()
        self.environment = name

    # -- data ----------------------------------------------------------------------------------------------------
    def jikeyun_records(self, window: tuple[datetime, datetime] | None) -> list[dict[str, Any]]:
        records: list[dict[str, Any]] = control(self.sandboxes.url("jikeyun"), "warehouses")
        if window is None:
            return records
        start, end = (round(t.timestamp() * 1000) for t in window)
        return [r for r in records if start <= int(r["gmtModified"]) <= end]

    def kingdee_stocks(self) -> list[dict[str, Any]]:
        stocks: list[dict[str, Any]] = control(self.sandboxes.url("kingdee"), "stocks",
                                                {"org": self.scheme.target.organisation})
        return stocks

    def preload_kingdee(self, renamed_every: int = 10) -> int:
        """Case 2: Kingdee holds every warehouse, audited; every ``renamed_every``-th under another name."""
        records = sorted(self.jikeyun_records(None), key=lambda r: r["warehouseCode"])
        rows = []
        for i, record in enumerate(records):
            row = self.scheme.target.field_map.render(record)
            if i % renamed_every == 0:
                row["FName"] = f"{row['FName']}（平台）"
            rows.append(row)
        control(self.sandboxes.url("kingdee"), "add-stocks", {"rows": rows, "status": "C"})
        return len(rows)

    def change_window(self, window_start: datetime) -> dict[str, int]:
        """Case 3: 50 changes inside the hour: 30 renamed in one bulk second, 10 renamed apart, 5 blocked, 5 new."""
        from jikeyun_kingdee.values import truthy

        url = self.sandboxes.url("jikeyun")
        active = sorted(
            r["warehouseCode"]
            for r in self.jikeyun_records(None)
            if not truthy(r.get("isBlockup")) and not truthy(r.get("isDelete"))
        )
        bulk = window_start + timedelta(minutes=20)
        for i, code in enumerate(active[:40]):
            moment = bulk if i < 30 else window_start + timedelta(minutes=25 + 2 * (i - 30))
            control(
                url,
                "modify-warehouse",
                {"code": code, "modified_at": moment.isoformat(), "warehouseName": f"改名仓{i:02d}"},
            )
        for i, code in enumerate(active[40:45]):
            control(
                url,
                "block-warehouse",
                {"code": code, "modified_at": (window_start + timedelta(minutes=5 + i)).isoformat()},
            )
        for i in range(5):
            control(
                url,
                "add-warehouse",
                {
                    "warehouseName": f"新建仓{i}",
                    "isBlockup": 0,
                    "isDelete": 0,
                    "modified_at": (window_start + timedelta(minutes=50 + i)).isoformat(),
                },
            )
        return {"renamed": 40, "renamed_in_one_second": 30, "blocked": 5, "new": 5}

    # -- running ---------------------------------------------------------------------------------------------------
    def next_full_sync_window(self) -> tuple[datetime, datetime]:
        start = FULL_SYNC_WINDOWS + timedelta(hours=self.full_syncs)
        self.full_syncs += 1
        return start, start + timedelta(hours=1)

    def run(
        self,
        title: str,
        *,
        window: tuple[datetime, datetime] | None,
        realistic: bool,
        rerun_of: str | None = None,
        run_id: str | None = None,
        timeout: float = 3600,
    ) -> RunFigures:
        """Queue one run (or clear ``rerun_of``), wait for it and gather its figures."""
        read_window = window
        if window is None:
            window = self.next_full_sync_window()
        records = self.jikeyun_records(read_window)
        items = items_of(self.scheme, records)
        stocks = self.kingdee_stocks()
        minimum = minimum_calls(self.scheme, len(records), items, stocks, self.ledger)
        self.sandboxes.set_latency(realistic)
        rtt = {kind: round_trip_ms(self.sandboxes.url(kind)) for kind in ("jikeyun", "kingdee")}
        self.sandboxes.reset_calls()
        offset = self.deployment.profile_offset()
        cpu_airflow, cpu_sandboxes = self.deployment.cpu_seconds(), self.sandboxes.cpu_seconds()
        if rerun_of:
            run_id = rerun_of
            self.deployment.helper("clear-run", dag_id=self.dag_id, run_id=run_id)
        else:
            run_id = run_id or f"bench_{self.environment}_{int(time.time())}"
            conf = {"full_resync": True} if read_window is None else None
            self.deployment.helper(
                "create-run",
                dag_id=self.dag_id,
                run_id=run_id,
                start=window[0].isoformat(),
                end=window[1].isoformat(),
                conf=conf,
            )
        queued = datetime.now(timezone.utc)
        row = self.deployment.wait_for_run(self.dag_id, run_id, timeout)
        ended = parse_db_time(row["end_date"]) or datetime.now(timezone.utc)
        cpu_airflow = self.deployment.cpu_seconds() - cpu_airflow
        cpu_sandboxes = self.sandboxes.cpu_seconds() - cpu_sandboxes
        calls = {k: v for k, v in self.sandboxes.calls().items() if ":" not in k}
        tasks = self.task_figures(run_id, offset)
        stocks_after = self.kingdee_stocks()
        wrong = wrong_in_kingdee(self.scheme, items, stocks_after)
        if row["state"] == "success":
            self.ledger.update({key: item.signature for key, item in items.items() if key not in wrong})
        failed, failure_logs = [], {}
        for ti in self.deployment.task_instances(self.dag_id, run_id):
            if ti["state"] in ("failed", "upstream_failed", "up_for_retry"):
                name = f"{ti['task_id']}[{ti['map_index']}]" if ti["map_index"] >= 0 else ti["task_id"]
                failed.append(f"{name} {ti['state']}")
                failure_logs[name] = self.task_log_tail(run_id, ti["task_id"], ti["map_index"])
        package_cpu = sum(t.package_cpu + t.parse_cpu for t in tasks.values())
        return RunFigures(
            title=title,
            state=row["state"],
            wall=(ended - queued).total_seconds(),
            calls=calls,
            minimum=minimum,
            tasks=tasks,
            airflow_cpu=cpu_airflow - package_cpu,
            sandbox_cpu=cpu_sandboxes,
            rtt=rtt,
            latency=realistic,
            summary=self.report_summary(run_id),
            wrong=wrong,
            failed=failed,
            failure_logs=failure_logs,
        )

    def task_log_tail(self, run_id: str, task_id: str, map_index: int, lines: int = 25) -> str:
        folder = self.deployment.home / "logs" / f"dag_id={self.dag_id}" / f"run_id={run_id}" / f"task_id={task_id}"
        if map_index >= 0:
            folder = folder / f"map_index={map_index}"
        logs = sorted(folder.glob("attempt=*.log"))
        if not logs:
            return f"(no log under {folder})"
        return "\n".join(logs[-1].read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])

    def task_figures(self, run_id: str, offset: int) -> dict[str, TaskFigures]:
        lines = self.deployment.profile_lines(offset)
        parses, processes = {}, {}
        for line in lines:  # the last line of each kind per process id
            if line["kind"] == "parse":
                parses[line["pid"]] = line
            elif line["kind"] == "process":
                processes[line["pid"]] = line
        figures: dict[str, TaskFigures] = {}
        for line in lines:
            if line["kind"] == "task" and line["run_id"] == run_id:
                name = line["task_id"]
                figures.setdefault(name, TaskFigures(name)).add(
                    line, processes.get(line["pid"]), parses.get(line["pid"])
                )
        return figures

    def report_summary(self, run_id: str) -> dict[str, Any]:
        rows = self.deployment.query(
            "SELECT value FROM xcom WHERE dag_id = ? AND run_id = ? AND task_id = 'report' AND key = 'return_value'",
            self.dag_id,
            run_id,
        )
        if not rows or rows[0]["value"] is None:
            return {}
        value = rows[0]["value"]
        value = json.loads(value.decode() if isinstance(value, bytes) else value)
        return value if isinstance(value, dict) else {}


# -- printing ------------------------------------------------------------------------------------------------------


def ratio(calls: int, minimum: int) -> str:
    if minimum == 0:
        return "—" if calls == 0 else f"+{calls}"
    return f"{calls / minimum:.2f}"


def print_run(figures: RunFigures, out: list[str]) -> None:
    def say(text: str = "") -> None:
        print(text, flush=True)
        out.append(text)

    m = figures.minimum
    say(f"\n== {figures.title}: run {figures.state} in {figures.wall:.1f} s wall")
    latency = (
        (
            f"Jikeyun {LATENCY['jikeyun'] * 1000:.0f} ms/call, Kingdee {LATENCY['kingdee'] * 1000:.0f} ms/call + "
            f"{LATENCY['kingdee_row'] * 1000:.0f} ms/row written"
        )
        if figures.latency
        else "none"
    )
    rtt = ", ".join(f"{kind} {median:.1f} ms" for kind, median in figures.rtt.items())
    say(f"   sandbox latency: {latency}; sandbox round trip on a kept-alive connection (median): {rtt}")
    say("   to do: " + ", ".join(f"{k} {v}" for k, v in m.detail.items()))
    if figures.summary:
        shown = {k: v for k, v in figures.summary.items() if isinstance(v, int) and not isinstance(v, bool)}
        say("   report: " + ", ".join(f"{k} {v}" for k, v in shown.items()))
    if figures.failed:
        say(f"   FAILED tasks: {', '.join(figures.failed)}")
        for name, tail in figures.failure_logs.items():
            say(f"   --- log of {name} (tail) ---\n{tail}")
    wrong = f"{len(figures.wrong)} records wrong, e.g. {figures.wrong[:5]}"
    say(f"   Kingdee afterwards: {'as it must be' if not figures.wrong else wrong}")
    say(f"   {'endpoint':<20}{'calls':>7}{'minimum':>9}{'ratio':>8}")
    for endpoint in sorted(
        set(figures.calls) | {e for e, n in m.calls.items() if n}, key=lambda e: (not e.startswith("erp."), e)
    ):
        calls, floor = figures.calls.get(endpoint, 0), m.calls.get(endpoint, 0)
        say(f"   {endpoint:<20}{calls:>7}{floor:>9}{ratio(calls, floor):>8}")
    total, floor = figures.jikeyun_calls + figures.kingdee_calls, m.jikeyun + m.kingdee
    say(f"   {'Jikeyun':<20}{figures.jikeyun_calls:>7}{m.jikeyun:>9}{ratio(figures.jikeyun_calls, m.jikeyun):>8}")
    say(f"   {'Kingdee':<20}{figures.kingdee_calls:>7}{m.kingdee:>9}{ratio(figures.kingdee_calls, m.kingdee):>8}")
    say(f"   {'all':<20}{total:>7}{floor:>9}{ratio(total, floor):>8}   (goal ≤ {GOAL_RATIO})")
    say(
        f"   {'task':<14}{'n':>4}{'process':>9}{'start-up':>9}{'callable':>9}{'API wait':>9}{'pkg CPU':>9}"
        f"{'parse CPU':>10}{'proc CPU':>9}{'peak RSS':>10}{'calls':>7}"
    )
    for t in figures.tasks.values():
        say(
            f"   {t.name:<14}{t.count:>4}{t.process_wall:>8.1f}s{t.startup:>8.1f}s{t.callable_wall:>8.2f}s"
            f"{t.api_latency:>8.2f}s{t.package_cpu:>8.2f}s{t.parse_cpu:>9.2f}s{t.process_cpu:>8.2f}s"
            f"{t.peak_rss_mb:>7.0f} MB{t.calls:>7}"
        )
    callable_wall = figures.total("callable_wall")
    api_wait = figures.total("api_latency") - figures.total("api_cpu")
    package_cpu = figures.total("package_cpu")
    other = callable_wall - api_wait - package_cpu
    airflow = figures.wall - callable_wall
    startup = figures.total("startup")
    shutdown = figures.total("process_wall") - startup - callable_wall
    say(
        f"   wall {figures.wall:.1f} s = Airflow {airflow:.1f} s (task start-up {startup:.1f}, task finish "
        f"{shutdown:.1f}, scheduling and executor {airflow - startup - shutdown:.1f}) + API wait {api_wait:.1f} s + "
        f"package CPU {package_cpu:.1f} s + package other {other:.1f} s"
    )
    parse_cpu = figures.total("parse_cpu")
    share = package_cpu / figures.wall if figures.wall else 0.0
    with_parse = (package_cpu + parse_cpu) / figures.wall if figures.wall else 0.0
    say(
        f"   CPU: package {package_cpu:.1f} s ({share:.1%} of the wall; goal < {GOAL_CPU_SHARE:.0%}), "
        "DAG file parse in "
        f"the task processes {parse_cpu:.1f} s (with it {with_parse:.1%}), Airflow {figures.airflow_cpu:.1f} s, "
        f"sandboxes {figures.sandbox_cpu:.1f} s"
    )


def summary_line(case: str, f: RunFigures) -> str:
    m = f.minimum
    callable_wall = f.total("callable_wall")
    api_wait = f.total("api_latency") - f.total("api_cpu")
    package_cpu = f.total("package_cpu")
    rss = max((t.peak_rss_mb for t in f.tasks.values()), default=0.0)
    tasks = sum(t.count for t in f.tasks.values())
    return (
        f"| {case} | {f.jikeyun_calls} / {m.jikeyun} | {f.kingdee_calls} / {m.kingdee} | "
        f"{ratio(f.jikeyun_calls + f.kingdee_calls, m.jikeyun + m.kingdee)} | {f.wall:.0f} s | "
        f"{f.wall - callable_wall:.0f} s | {api_wait:.0f} s | {package_cpu:.1f} s ({package_cpu / f.wall:.1%}) | "
        f"{callable_wall - api_wait - package_cpu:.1f} s | {tasks} | {rss:.0f} MB | "
        f"{f.rtt.get('jikeyun', 0):.0f} / {f.rtt.get('kingdee', 0):.0f} ms |"
    )


def parse_times(repeat: int = 3) -> tuple[float, float]:
    """(cold: a fresh interpreter importing and running the DAG file; warm: re-running it in a warm interpreter)."""
    script = (
        f"import runpy, time; t = time.perf_counter(); runpy.run_path({str(DAG_FILE)!r}); "
        "cold = time.perf_counter() - t\n"
        "warm = []\n"
        "for _ in range(5):\n"
        f"    t = time.perf_counter(); runpy.run_path({str(DAG_FILE)!r}); warm.append(time.perf_counter() - t)\n"
        "print(cold, min(warm))\n"
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO / "plugins"), os.environ.get("PYTHONPATH", "")]))
    colds, warms = [], []
    for _ in range(repeat):
        done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, env=env)
        cold, warm = map(float, done.stdout.split()[-2:])
        colds.append(cold)
        warms.append(warm)
    return statistics.median(colds), statistics.median(warms)


# -- the cases -------------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, nargs="+", default=[1, 2, 3, 4, 5, 6], choices=range(1, 7))
    parser.add_argument("--quick", action="store_true", help="1,000 warehouses (case 6: 10,000 against 1,000)")
    parser.add_argument("--home", type=Path, help="work folder (default: a new temporary one)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs, staged files)")
    parser.add_argument("--no-parse-time", action="store_true", help="skip measuring the DAG file's parse time")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(REPO / "plugins"))  # this checkout's package, not whatever is installed
    cases = sorted(set(args.cases))
    base, large, small = (1_000, 10_000, 1_000) if args.quick else (10_000, 100_000, 1_000)

    home = (args.home or Path(tempfile.mkdtemp(prefix="jk-bench-"))).resolve()
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    os.environ.setdefault("AIRFLOW_HOME", str(home / "harness"))  # this process imports the package (scheme, mapping)
    out: list[str] = []

    def say(text: str = "") -> None:
        print(text, flush=True)
        out.append(text)

    started = time.perf_counter()
    say(f"warehouse DAG benchmark, cases {cases}{' (quick)' if args.quick else ''}; work folder {home}")
    say(
        f"load average at the start {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores "
        "(shared machine: walls are noisy)"
    )
    if not args.no_parse_time:
        cold, warm = parse_times()
        say(
            f"DAG file parse time: {cold * 1000:.0f} ms cold (fresh interpreter, imports included), "
            f"{warm * 1000:.1f} ms warm"
        )
    bench = Bench(home, args.quick)
    results: list[tuple[str, RunFigures]] = []
    try:
        bench.start()
        say(
            f"scheme {bench.scheme.name}: page size {bench.scheme.source.page_size}, rows per batch "
            f"{bench.scheme.target.rows_per_batch}; deployment ready after {time.perf_counter() - started:.0f} s"
        )
        if {1, 3, 4, 5} & set(cases):
            bench.environment_for("sync", base, realistic=True)
            title = f"case 1: full sync of {base:,} warehouses into an empty Kingdee"
            results.append(("1", bench.run(title, window=None, realistic=1 in cases)))
            if 1 not in cases:
                say(f"(case 1 ran without latency as the set-up of cases {cases})")
            else:
                print_run(results[-1][1], out)
            window = (HOURLY_WINDOW, HOURLY_WINDOW + timedelta(hours=1))
            if {3, 4} & set(cases):
                changes = bench.change_window(window[0])
                title = f"case 3: hourly window with 50 changes {changes}"
                window_run = f"bench_window_{int(time.time())}"
                results.append(("3", bench.run(title, window=window, realistic=3 in cases, run_id=window_run)))
                if 3 in cases:
                    print_run(results[-1][1], out)
                if 4 in cases:
                    results.append(
                        (
                            "4",
                            bench.run(
                                "case 4: the same window run again (cleared), nothing changed",
                                window=window,
                                realistic=True,
                                rerun_of=window_run,
                            ),
                        )
                    )
                    print_run(results[-1][1], out)
            if 5 in cases:
                empty = (window[1], window[1] + timedelta(hours=1))
                results.append(
                    ("5", bench.run("case 5: an hourly window in which nothing changed", window=empty, realistic=True))
                )
                print_run(results[-1][1], out)
            results = [(c, f) for c, f in results if int(c) in cases]
        if 2 in cases:
            bench.environment_for("golive", base, realistic=True)
            held = bench.preload_kingdee()
            title = (f"case 2: full sync of {base:,} into a Kingdee holding all {held:,} (audited, 10% renamed), "
                     "ledger empty")
            results.append(("2", bench.run(title, window=None, realistic=True)))
            print_run(results[-1][1], out)
        memory: dict[int, RunFigures] = {}
        if 6 in cases:
            for size in (small, large):
                bench.environment_for(f"memory{size}", size, realistic=False)
                memory[size] = bench.run(
                    f"case 6: full sync of {size:,} into an empty Kingdee, no sandbox latency",
                    window=None,
                    realistic=False,
                    timeout=7200,
                )
                print_run(memory[size], out)
            results.append(("6", memory[large]))
    finally:
        bench.stop()

    say("\n== summary (calls: made / minimum; wall split as above; peak RSS: the largest task process)")
    say(
        "| case | Jikeyun calls | Kingdee calls | ratio | wall | Airflow | API wait | package CPU | package other "
        "| tasks | peak RSS | sandbox RTT |"
    )
    say("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for case, figures in sorted(results):
        say(summary_line(case, figures))
    if memory:
        say(f"\n== case 6, peak RSS per task: {large:,} against {small:,} warehouses (goal: at most +{GOAL_RSS_MB} MB)")
        say(f"| task | {small:,} | {large:,} | difference |")
        say("|---|---|---|---|")
        for name, t in memory[large].tasks.items():
            reference = memory[small].tasks.get(name)
            base_rss = reference.peak_rss_mb if reference else float("nan")
            say(
                f"| {name}{f' (×{t.count})' if t.count > 1 else ''} | {base_rss:.0f} MB | {t.peak_rss_mb:.0f} MB | "
                f"{t.peak_rss_mb - base_rss:+.0f} MB |"
            )
    say(
        f"\nload average at the end {os.getloadavg()[0]:.2f}; "
        f"benchmark took {(time.perf_counter() - started) / 60:.1f} min"
    )
    if args.keep:
        say(f"work folder kept: {home}")
    else:
        shutil.rmtree(home, ignore_errors=True)
    return 0 if all(f.state == "success" for _, f in results) else 1


if __name__ == "__main__":
    sys.exit(main())
