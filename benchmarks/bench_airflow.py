"""A small real Airflow deployment for the benchmark: scheduler with the LocalExecutor and the execution API server.

Every task runs as Airflow 3 runs it in production: the scheduler queues it, a LocalExecutor worker supervises
it, and the task runner is a process of its own, forked for that one task, which parses the DAG file and talks to
the execution API. ``parallelism`` 1 runs one task at a time, so a run's wall time is the sum of its tasks'
times and the gaps between them. Metadata in SQLite, the DAG serialized once (``airflow dags reserialize``; no
dag-processor runs), the DAGs folder is ``benchmarks/dags`` (the package's DAGs with profiled task callables).

The benchmark's copy of each scheme is scheduled yearly (``0 0 1 1 *``, first interval in 2027), so the scheduler
creates no run of its own: every run is created by the benchmark with the window of its case. Nothing else of the
scheme changes.

``python benchmarks/bench_airflow.py create-run|clear-run '<json kwargs>'`` are the helpers the deployment runs
(in the deployment's environment) to create and clear DAG runs.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar

import psutil
import yaml

REPO = Path(__file__).resolve().parents[1]
BENCH_DAGS = Path(__file__).resolve().parent / "dags"
BIN = Path(sys.executable).parent
STARTUP_TIMEOUT = 240
T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds of a process and all its descendants, the finished ones included (as their reaped times)."""
    try:
        root = psutil.Process(pid)
        family = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    total = 0.0
    for member in family:
        try:
            t = member.cpu_times()
            total += t.user + t.system + t.children_user + t.children_system
        except psutil.NoSuchProcess:
            pass
    return total


def parse_db_time(value: str | None) -> datetime | None:
    if not value:
        return None
    moment = datetime.fromisoformat(value.replace(" ", "T"))
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


@dataclass
class Service:
    """One process of the deployment (or a sandbox), leader of its own process group."""

    name: str
    process: subprocess.Popen
    log: Path

    def stop(self, grace: float = 20.0) -> None:
        try:
            family = [psutil.Process(self.process.pid), *psutil.Process(self.process.pid).children(recursive=True)]
        except psutil.NoSuchProcess:
            family = []
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, sig)
            for member in family:
                with contextlib.suppress(psutil.NoSuchProcess):
                    member.send_signal(sig)
            _, family = psutil.wait_procs(family, timeout=grace if sig == signal.SIGTERM else 5)
            if not family:
                break
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=5)

    def tail(self, lines: int = 30) -> str:
        text = self.log.read_text(encoding="utf-8", errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


def start_process(name: str, argv: list[str], env: dict[str, str], logs: Path) -> Service:
    logs.mkdir(parents=True, exist_ok=True)
    log = logs / f"{name}.log"
    with log.open("ab") as out:
        process = subprocess.Popen(
            argv, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
        )
    return Service(name, process, log)


def wait_until(
    probe: Callable[[], T], what: str, timeout: float, interval: float = 0.5, alive: Callable[[], None] | None = None
) -> T:
    deadline = time.monotonic() + timeout
    while True:
        if alive is not None:
            alive()
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


@dataclass
class Deployment:
    """The embedded Airflow deployment of one benchmark invocation.

    :param home: ``AIRFLOW_HOME`` (created)
    :param connections: ``AIRFLOW_CONN_*`` variables (the sandboxes' URLs on fixed ports)
    """

    home: Path
    connections: dict[str, str]
    log_level: str = "INFO"
    api_url: str = ""
    env: dict[str, str] = field(default_factory=dict, repr=False)
    services: list[Service] = field(default_factory=list)

    @property
    def db_path(self) -> Path:
        return self.home / "airflow.db"

    @property
    def profile(self) -> Path:
        return self.home / "profile.ndjson"

    @property
    def ledger_path(self) -> Path:
        return self.home / "ledger.db"

    def write_schemes(self) -> Path:
        folder = self.home / "schemes"
        folder.mkdir(parents=True, exist_ok=True)
        for path in sorted((REPO / "include" / "schemes").glob("*.yaml")):
            scheme = yaml.safe_load(path.read_text(encoding="utf-8"))
            scheme["schedule"] = "0 0 1 1 *"
            (folder / path.name).write_text(
                yaml.safe_dump(scheme, allow_unicode=True, sort_keys=False), encoding="utf-8"
            )
        return folder

    def prepare(self) -> None:
        """Environment, metadata database, the serialized DAG, unpaused."""
        self.home.mkdir(parents=True, exist_ok=True)
        schemes = self.write_schemes()
        api_port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW__", "AIRFLOW_CONN_", "AIRFLOW_VAR_"))}
        env.update(
            {
                "AIRFLOW_HOME": str(self.home),
                "PYTHONPATH": os.pathsep.join([str(REPO / "plugins"), env.get("PYTHONPATH", "")]).rstrip(os.pathsep),
                "PYTHONUNBUFFERED": "1",
                "JIKEYUN_KINGDEE_SCHEMES": str(schemes),
                "BENCH_PROFILE": str(self.profile),
                "AIRFLOW__CORE__DAGS_FOLDER": str(BENCH_DAGS),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
                "AIRFLOW__CORE__PARALLELISM": "1",
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{api_port}/execution/",
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{self.db_path}",
                "AIRFLOW__API__PORT": str(api_port),
                "AIRFLOW__API__WORKERS": "1",
                "AIRFLOW__API__SECRET_KEY": secrets.token_hex(16),
                "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(32),  # the same in every process: task tokens verify
                "AIRFLOW__LOGGING__LOGGING_LEVEL": self.log_level,
                "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
                "AIRFLOW__JIKEYUN_KINGDEE__STAGING_BASE": f"file://{self.home / 'staging'}",
                "AIRFLOW_CONN_JIKEYUN_KINGDEE_LEDGER": json.dumps(
                    {"conn_type": "sqlite", "host": str(self.ledger_path)}
                ),
                **self.connections,
            }
        )
        self.env = env
        self.api_url = f"http://127.0.0.1:{api_port}"
        for argv in (["db", "migrate"], ["dags", "reserialize"]):
            self.cli(*argv, timeout=STARTUP_TIMEOUT)

    def cli(self, *argv: str, timeout: float = 120) -> str:
        """Run ``airflow <argv>`` to completion in the deployment's environment; its output."""
        done = subprocess.run(
            [str(BIN / "airflow"), *argv], env=self.env, capture_output=True, text=True, timeout=timeout, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"airflow {' '.join(argv)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
        return done.stdout

    def start(self) -> None:
        logs = self.home / "logs-processes"
        self.services.append(
            start_process(
                "api-server",
                [
                    str(BIN / "airflow"),
                    "api-server",
                    "--apps",
                    "execution",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    self.env["AIRFLOW__API__PORT"],
                    "--workers",
                    "1",
                ],
                self.env,
                logs,
            )
        )
        self.services.append(
            start_process("scheduler", [str(BIN / "airflow"), "scheduler", "--skip-serve-logs"], self.env, logs)
        )
        import requests

        def answering() -> bool:
            try:
                return requests.get(f"{self.api_url}/execution/health", timeout=5).status_code < 500
            except requests.RequestException:
                return False

        wait_until(answering, "the execution API to answer", STARTUP_TIMEOUT, alive=self.check_alive)

    def check_alive(self) -> None:
        dead = [
            f"{s.name} (exit {s.process.poll()}):\n{s.tail()}" for s in self.services if s.process.poll() is not None
        ]
        if dead:
            raise RuntimeError("deployment process(es) died: " + "\n".join(dead))

    def stop(self) -> None:
        while self.services:
            self.services.pop().stop()

    def cpu_seconds(self) -> float:
        """CPU seconds used so far by the scheduler (with its executor workers and every task process they
        reaped) and the API server."""
        return sum(tree_cpu_seconds(service.process.pid) for service in self.services)

    # -- runs ------------------------------------------------------------------------------------------------------
    def helper(self, command: str, **kwargs: Any) -> Any:
        done = subprocess.run(
            [sys.executable, __file__, command, json.dumps(kwargs)],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"{command} failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}")
        return json.loads(done.stdout.strip().splitlines()[-1])

    def query(self, sql: str, *params: Any) -> list[sqlite3.Row]:
        for attempt in range(20):
            try:
                with sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True, timeout=10) as db:
                    db.row_factory = sqlite3.Row
                    return db.execute(sql, params).fetchall()
            except sqlite3.OperationalError:
                if attempt == 19:
                    raise
                time.sleep(0.2)
        return []

    def run_state(self, dag_id: str, run_id: str) -> sqlite3.Row | None:
        rows = self.query(
            "SELECT state, queued_at, start_date, end_date FROM dag_run WHERE dag_id = ? AND run_id = ?", dag_id, run_id
        )
        return rows[0] if rows else None

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float) -> sqlite3.Row:
        def finished() -> sqlite3.Row | None:
            row = self.run_state(dag_id, run_id)
            return row if row is not None and row["state"] in ("success", "failed") else None

        row = wait_until(finished, f"run {run_id} to finish", timeout, interval=0.5, alive=self.check_alive)
        assert row is not None  # wait_until returns only a truthy answer (or raises)
        return row

    def task_instances(self, dag_id: str, run_id: str) -> list[sqlite3.Row]:
        return self.query(
            "SELECT task_id, map_index, state, try_number, start_date, end_date, queued_dttm "
            "FROM task_instance WHERE dag_id = ? AND run_id = ? ORDER BY start_date",
            dag_id,
            run_id,
        )

    def profile_offset(self) -> int:
        return self.profile.stat().st_size if self.profile.exists() else 0

    def profile_lines(self, offset: int) -> list[dict[str, Any]]:
        if not self.profile.exists():
            return []
        with self.profile.open("rb") as source:
            source.seek(offset)
            return [json.loads(line) for line in source.read().decode("utf-8").splitlines() if line.strip()]


# -- helpers run in the deployment's environment ---------------------------------------------------------------------


def create_run(dag_id: str, run_id: str, start: str, end: str, conf: dict[str, Any] | None = None) -> dict[str, Any]:
    """Queue a manual run of ``dag_id`` for the data interval ``[start, end)``, as ``airflow dags trigger`` does
    but with the case's window instead of one inferred from now."""
    from airflow.models.dagbag import DBDagBag
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState
    from airflow.utils.types import DagRunTriggeredByType, DagRunType

    window = datetime.fromisoformat(start), datetime.fromisoformat(end)
    with create_session() as session:
        dag = DBDagBag().get_latest_version_of_dag(dag_id, session=session)
        if dag is None:
            raise LookupError(f"DAG {dag_id} is not serialized")
        run = dag.create_dagrun(
            run_id=run_id,
            logical_date=window[0],
            data_interval=window,
            run_after=window[1],
            conf=conf,
            run_type=DagRunType.MANUAL,
            triggered_by=DagRunTriggeredByType.CLI,
            triggering_user_name="benchmark",
            state=DagRunState.QUEUED,
            session=session,
        )
        return {"run_id": run.run_id}


def clear_run(dag_id: str, run_id: str) -> dict[str, Any]:
    """Clear every task of the run (the UI's Clear on a run): the scheduler runs it again, same run id."""
    from airflow.models.dagbag import DBDagBag
    from airflow.utils.session import create_session

    with create_session() as session:
        dag = DBDagBag().get_latest_version_of_dag(dag_id, session=session)
        if dag is None:
            raise LookupError(f"DAG {dag_id} is not serialized")
        cleared = dag.clear(run_id=run_id, session=session)
    return {"cleared": cleared if isinstance(cleared, int) else len(list(cleared))}


if __name__ == "__main__":
    helpers: dict[str, Callable[..., Any]] = {"create-run": create_run, "clear-run": clear_run}
    print(json.dumps(helpers[sys.argv[1]](**json.loads(sys.argv[2]))))
