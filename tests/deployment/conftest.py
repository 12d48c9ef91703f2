"""A real Airflow deployment for the tests of this folder, started once per session and always torn down.

PostgreSQL (a fresh metadata database and a fresh ledger database), CeleryExecutor with Redis as broker, and as
separate processes: api-server, scheduler, dag-processor, triggerer, one Celery worker (concurrency 2), the
Jikeyun sandbox, a slow Jikeyun sandbox (for the deadline test) and the Kingdee sandbox. Every process runs in its
own process group with its output in a log file under the session's tmp dir; the tails of those files are attached
to every failing test's report. The tests talk to Airflow over its REST API only, and script the sandboxes over
``POST /_sandbox/<command>``.
"""

from __future__ import annotations

import atexit
import functools
import json
import os
import re
import secrets
import signal
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypedDict

import pendulum
import pytest
import requests
import yaml

from tests.support import require_service
from tests.support.alerting import WebhookReceiver
from tests.support.dag_timeline import DAG_ID
from tests.support.deployment import (
    DEADLINE_DAG_ID,
    JIKEYUN_APPKEY,
    JIKEYUN_SECRET,
    KINGDEE_ACCT_ID,
    KINGDEE_APP_ID,
    KINGDEE_APP_SECRET,
    KINGDEE_PASSWORD,
    SCREENSHOT_LOG,
    SLOW_SECONDS,
    WAREHOUSES,
    WECOM_KEY,
    Deployment,
    Service,
)


class _PostgresParams(TypedDict):
    host: str
    port: int
    user: str


POSTGRES: _PostgresParams = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}
REDIS_URL = "redis://127.0.0.1:6379/0"
STARTUP_TIMEOUT = 180
REPO = Path(__file__).resolve().parents[2]


# -- set-up helpers --------------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _postgres_admin():
    import psycopg2

    conn = psycopg2.connect(dbname="postgres", connect_timeout=5, **POSTGRES)
    conn.autocommit = True
    return conn


def _services_available(config: pytest.Config) -> None:
    try:
        _postgres_admin().close()
        postgres = ""
    except Exception as exc:  # psycopg2.OperationalError, or psycopg2 missing
        postgres = f"{type(exc).__name__}: {exc}".strip()
    require_service("PostgreSQL", not postgres, f"{POSTGRES['host']}:{POSTGRES['port']}: {postgres}")
    try:
        import redis

        redis.Redis.from_url(REDIS_URL, socket_timeout=5).ping()
        broker = ""
    except Exception as exc:
        broker = f"{type(exc).__name__}: {exc}"
    require_service("Redis", not broker, f"{REDIS_URL}: {broker}")


def _run_admin_sql(*statements: str) -> None:
    conn = _postgres_admin()  # autocommit, outside `with conn`: CREATE/DROP DATABASE refuse a transaction block
    try:
        with conn.cursor() as cursor:
            for statement in statements:
                cursor.execute(statement)
    finally:
        conn.close()


def _drop_databases(*names: str) -> None:
    _run_admin_sql(*(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)' for name in names))


def _create_databases(*names: str) -> None:
    _drop_databases(*names)
    _run_admin_sql(*(f'CREATE DATABASE "{name}"' for name in names))


def next_hour(timezone: str = "Asia/Shanghai") -> pendulum.DateTime:
    return pendulum.now(timezone).start_of("hour").add(hours=1)


def write_schemes(folder: Path) -> None:
    """Copies of the warehouse scheme for the deployment.

    Both start at the next full hour without catch-up, so the scheduler creates no run of its own while the test
    runs: every run is the test's (a trigger or a backfill). Retries are kept but short. The second scheme reads
    the slow Jikeyun sandbox and alerts WeCom one minute after a run was queued.
    """
    scheme = yaml.safe_load((REPO / "include" / "schemes" / "warehouse_I0134.yaml").read_text(encoding="utf-8"))
    scheme.update(start_date=next_hour().isoformat(), catchup=False, retries=2, retry_delay_seconds=5,
                  retry_exponential_backoff=False, alerting={"on_failure": True, "on_rejects": True},
                  rows_per_chunk=100)  # three load chunks of the 300 warehouses
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "warehouse_I0134.yaml").write_text(yaml.safe_dump(scheme, allow_unicode=True), encoding="utf-8")
    slow = dict(scheme, name="warehouse_I0134_deadline", retries=0,
                source=dict(scheme["source"], connection="jikeyun_slow"),
                alerting={"wecom_conn_id": "wecom_deadline", "deadline_minutes": 1})
    (folder / "warehouse_I0134_deadline.yaml").write_text(yaml.safe_dump(slow, allow_unicode=True), encoding="utf-8")


def _sandbox_url(service: Service, deployment: Deployment) -> str:
    pattern = re.compile(r"sandbox listening on (http://\S+)")
    url = deployment.wait_until(lambda: (m := pattern.search(service.log.read_text(errors="replace"))) and m.group(1),
                                f"{service.name} to listen", timeout=60, interval=0.2)
    assert url is not None  # wait_until returns only a truthy probe result: the URL
    return url


def _environment(home: Path, metadata_db: str, ledger_db: str, api_port: int, queue: str,
                 jikeyun: str, slow: str, kingdee: str, webhook: str) -> dict[str, str]:
    pg = f"{POSTGRES['user']}@{POSTGRES['host']}:{POSTGRES['port']}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW__", "AIRFLOW_CONN_", "AIRFLOW_VAR_"))}
    env.update({
        "AIRFLOW_HOME": str(home),
        "PYTHONUNBUFFERED": "1",
        "JIKEYUN_KINGDEE_SCHEMES": str(home / "schemes"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{api_port}/execution/",
        "AIRFLOW__CORE__AUTH_MANAGER": "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "passwords.json"),
        # the UI's Test button on a connection runs the hook's test_connection() in the api-server; the plugins
        # folder holds the fix that lets Test work on connections without a port (see its module docstring)
        "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "tools" / "airflow_plugins"),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"postgresql+psycopg2://{pg}/{metadata_db}",
        "AIRFLOW__CELERY__BROKER_URL": REDIS_URL,
        "AIRFLOW__CELERY__RESULT_BACKEND": f"db+postgresql://{pg}/{metadata_db}",
        "AIRFLOW__CELERY__WORKER_CONCURRENCY": "2",
        "AIRFLOW__OPERATORS__DEFAULT_QUEUE": queue,  # this session's own queue on the shared Redis
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{api_port}",
        "AIRFLOW__API__PORT": str(api_port),
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__API__SECRET_KEY": secrets.token_hex(16),
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(32),  # the same in every process: task tokens verify
        "AIRFLOW__JIKEYUN_KINGDEE__STAGING_BASE": f"file://{home / 'staging'}",
        "AIRFLOW_CONN_JIKEYUN_DEFAULT": json.dumps({
            "conn_type": "jikeyun", "host": jikeyun, "login": JIKEYUN_APPKEY, "password": JIKEYUN_SECRET,
            "extra": {"max_calls_per_second": 200},
        }),
        "AIRFLOW_CONN_JIKEYUN_SLOW": json.dumps({
            "conn_type": "jikeyun", "host": slow, "login": JIKEYUN_APPKEY, "password": JIKEYUN_SECRET,
            "extra": {"timeout": SLOW_SECONDS + 60},
        }),
        "AIRFLOW_CONN_KINGDEE_DEFAULT": json.dumps({
            "conn_type": "kingdee", "host": f"{kingdee}/k3cloud/", "login": "webapi", "password": KINGDEE_PASSWORD,
            "extra": {"acct_id": KINGDEE_ACCT_ID, "auth": "password"},
        }),
        "AIRFLOW_CONN_JIKEYUN_KINGDEE_LEDGER": json.dumps({
            "conn_type": "postgres", "host": POSTGRES["host"], "port": POSTGRES["port"], "login": POSTGRES["user"],
            "schema": ledger_db,
        }),
        "AIRFLOW_CONN_WECOM_DEADLINE": json.dumps({"conn_type": "http", "host": webhook, "password": WECOM_KEY}),
    })
    return env


# -- fixtures --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def webhook() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as receiver:
        yield receiver


@pytest.fixture(scope="session")
def deployment(
    pytestconfig: pytest.Config, tmp_path_factory: pytest.TempPathFactory, webhook: WebhookReceiver
) -> Iterator[Deployment]:
    _services_available(pytestconfig)
    home = tmp_path_factory.mktemp("deployment")
    tag = f"{os.getpid()}_{secrets.token_hex(3)}"
    metadata_db, ledger_db, queue = f"airflow_deploy_test_{tag}", f"jk_ledger_test_{tag}", f"jk_deploy_{tag}"
    api_port = _free_port()
    password = secrets.token_urlsafe(12)
    (home / "passwords.json").write_text(json.dumps({"admin": password}))
    write_schemes(home / "schemes")

    deployment = Deployment(home=home, env=dict(os.environ, PYTHONUNBUFFERED="1"), password=password)
    databases_created = False

    def tear_down() -> None:
        deployment.stop()
        if databases_created:
            _drop_databases(metadata_db, ledger_db)
            import redis

            redis.Redis.from_url(REDIS_URL).delete(queue, f"_kombu.binding.{queue}",
                                                   f"_kombu.binding_permanent.{queue}")

    atexit.register(tear_down)  # also when the session ends without fixture teardown
    sigterm = signal.signal(signal.SIGTERM, _exit_on_sigterm)  # a killed session still runs teardown and atexit
    try:
        sandbox = [sys.executable, "-m", "jikeyun_kingdee.sandbox", "serve"]
        jikeyun_args = ["jikeyun", "--appkey", JIKEYUN_APPKEY, "--appsecret", JIKEYUN_SECRET]
        jikeyun = deployment.start("jikeyun", *sandbox, *jikeyun_args, "--warehouses", str(WAREHOUSES), "--seed", "11")
        slow = deployment.start("jikeyun-slow", *sandbox, *jikeyun_args, "--warehouses", "0")
        kingdee = deployment.start("kingdee", *sandbox, "kingdee", "--acct-id", KINGDEE_ACCT_ID,
                                   "--password", KINGDEE_PASSWORD, "--app-id", KINGDEE_APP_ID,
                                   "--app-secret", KINGDEE_APP_SECRET)
        _create_databases(metadata_db, ledger_db)
        databases_created = True
        deployment.sandboxes = {s.name: _sandbox_url(s, deployment) for s in (jikeyun, slow, kingdee)}
        deployment.env = _environment(home, metadata_db, ledger_db, api_port, queue,
                                      deployment.sandboxes[jikeyun.name], deployment.sandboxes[slow.name],
                                      deployment.sandboxes[kingdee.name], webhook.url)
        deployment.api_url = f"http://127.0.0.1:{api_port}"

        migrate = deployment.airflow("db-migrate", "db", "migrate")
        if migrate.process.wait(timeout=STARTUP_TIMEOUT) != 0:
            raise AssertionError(f"airflow db migrate failed:\n{migrate.tail(60)}")
        deployment.services.remove(migrate)
        pools = deployment.start("pools", sys.executable, "-m", "jikeyun_kingdee.pools", "--apply")  # load/repair pools
        if pools.process.wait(timeout=STARTUP_TIMEOUT) != 0:
            raise AssertionError(f"creating the target pools failed:\n{pools.tail(60)}")
        deployment.services.remove(pools)
        # Every component shares this AIRFLOW_HOME, so the api-server reads task logs from files: no log servers
        # (they would listen on every interface).
        deployment.airflow("api-server", "api-server", "--host", "127.0.0.1", "--port", str(api_port), "--workers", "1")
        deployment.airflow("scheduler", "scheduler", "--skip-serve-logs")
        deployment.airflow("dag-processor", "dag-processor")
        deployment.airflow("triggerer", "triggerer", "--skip-serve-logs")
        deployment.airflow("celery-worker", "celery", "worker", "--concurrency", "2", "--queues", queue,
                           "--skip-serve-logs", "--without-gossip", "--without-mingle")

        deployment.wait_until(lambda: requests.get(f"{deployment.api_url}/api/v2/monitor/health", timeout=5).ok,
                              "the api-server to answer", STARTUP_TIMEOUT)
        deployment.login()
        for dag_id in (DAG_ID, DEADLINE_DAG_ID):
            deployment.wait_until(functools.partial(_parsed, deployment, dag_id), f"{dag_id} to be parsed",
                                  STARTUP_TIMEOUT)
        yield deployment
    except Exception as exc:
        raise AssertionError(f"deployment: {type(exc).__name__}: {exc}\n{deployment.report()}") from exc
    finally:
        tear_down()
        atexit.unregister(tear_down)
        signal.signal(signal.SIGTERM, sigterm)


def _exit_on_sigterm(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)


def _parsed(deployment: Deployment, dag_id: str) -> bool:
    errors = deployment.api("GET", "importErrors")
    if errors["total_entries"]:
        raise AssertionError(f"import errors: {errors['import_errors']}")
    return deployment.api("GET", f"dags/{dag_id}", expect=(200, 404)).get("dag_id") == dag_id


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Any:
    """Attach the tails of every deployment process log to a failing test's report, and for a browser test a
    screenshot of the page as the failure left it."""
    report = yield
    funcargs = getattr(item, "funcargs", {})
    deployment, ui = funcargs.get("deployment"), funcargs.get("ui")
    if report.failed and ui is not None and report.when == "call":
        try:
            report.sections.append(("browser screenshot", str(ui.shot(f"failed-{item.name}"))))
        except Exception as exc:  # the browser itself may be what failed
            report.sections.append(("browser screenshot", f"none: {type(exc).__name__}: {exc}"))
    if report.failed and isinstance(deployment, Deployment):
        report.sections.append(("deployment process logs", deployment.report()))
    return report


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    """Where the browser tests left their screenshots."""
    shots = config.stash.get(SCREENSHOT_LOG, [])
    if shots:
        terminalreporter.write_sep("-", f"browser screenshots in {shots[0].parent}")
        terminalreporter.write_line(", ".join(path.name for path in shots))
