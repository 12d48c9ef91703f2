"""docker-compose.yaml validates with docker-compose v1 (no Docker engine needed) and wires the deployment together."""

from __future__ import annotations

import json
import os
import subprocess
from urllib.parse import urlsplit

import pytest
import yaml

from jikeyun_kingdee.provider_info import connection_type

from tests.support import REPO, require_service

COMPOSE = REPO / ".venv-compose" / "bin" / "docker-compose"
AIRFLOW_SERVICES = (
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
    "airflow-worker",
    "airflow-init",
)
SANDBOXES = {"jikeyun": "jikeyun-sandbox", "kingdee": "kingdee-sandbox"}


def _compose(*args: str, env_file: str = ".env.example") -> subprocess.CompletedProcess:
    require_service("docker-compose", COMPOSE.exists(), f"{COMPOSE} missing: run tools/install-compose.sh")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW_", "JIKEYUN_", "KINGDEE_", "COMPOSE_"))}
    return subprocess.run(
        [str(COMPOSE), "--project-directory", str(REPO), "-f", str(REPO / "docker-compose.yaml"),
         "--env-file", env_file, *args],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
    )


@pytest.fixture(scope="module")
def services() -> dict[str, dict]:
    result = _compose("config")
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)["services"]


def test_compose_file_is_valid():
    result = _compose("config", "--quiet")
    assert result.returncode == 0, result.stderr


def test_jwt_secret_is_required(tmp_path):
    empty = tmp_path / "empty.env"
    empty.write_text("")
    result = _compose("config", "--quiet", env_file=str(empty))
    assert result.returncode != 0
    assert "AIRFLOW_JWT_SECRET" in result.stderr


def test_all_services_exist(services):
    assert {"postgres", "redis", *AIRFLOW_SERVICES, *SANDBOXES.values()} <= set(services)


@pytest.mark.parametrize("name", AIRFLOW_SERVICES)
def test_airflow_services_run_celery_on_redis_and_postgres(services, name):
    env = services[name]["environment"]
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert urlsplit(env["AIRFLOW__CELERY__BROKER_URL"]).hostname == "redis"
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql")
    assert urlsplit(env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]).hostname == "postgres"
    assert urlsplit(env["AIRFLOW__CELERY__RESULT_BACKEND"]).hostname == "postgres"
    assert env["AIRFLOW__API_AUTH__JWT_SECRET"]


@pytest.mark.parametrize("name", AIRFLOW_SERVICES)
def test_dags_and_include_are_mounted(services, name):
    mounts = {volume.split(":")[0]: volume.split(":")[1] for volume in services[name]["volumes"]}
    assert mounts[str(REPO / "dags")] == "/opt/airflow/dags"
    assert mounts[str(REPO / "include")] == "/opt/airflow/include"
    assert mounts["staging"] == "/opt/airflow/staging"  # staged files travel between Celery workers
    assert services[name]["environment"]["AIRFLOW__JIKEYUN_KINGDEE__STAGING_BASE"] == "file:///opt/airflow/staging"


def test_commands(services):
    commands = {name: services[name]["command"] for name in AIRFLOW_SERVICES if name != "airflow-init"}
    assert commands == {
        "airflow-apiserver": "api-server",
        "airflow-scheduler": "scheduler",
        "airflow-dag-processor": "dag-processor",
        "airflow-triggerer": "triggerer",
        "airflow-worker": "celery worker",
    }
    init_env = services["airflow-init"]["environment"]
    assert init_env["_AIRFLOW_DB_MIGRATE"] == "true"


def test_the_package_is_installed_into_the_image(services):
    images = {services[name]["image"] for name in (*AIRFLOW_SERVICES, *SANDBOXES.values())}
    assert len(images) == 1
    assert all(services[name]["build"]["context"] == str(REPO) for name in AIRFLOW_SERVICES)
    dockerfile = (REPO / "Dockerfile").read_text()
    assert "ARG AIRFLOW_IMAGE=apache/airflow:3.3.2-python3.11" in dockerfile
    assert '"apache-airflow==${AIRFLOW_VERSION}" /opt/airflow-jikeyun-kingdee' in dockerfile


@pytest.mark.parametrize(("conn_type", "service"), sorted(SANDBOXES.items()))
def test_connections_point_at_the_sandbox_services(services, conn_type, service):
    command = services[service]["command"].split()
    assert command[:5] == ["python", "-m", "jikeyun_kingdee.sandbox", "serve", conn_type]
    port = int(command[command.index("--port") + 1])
    assert command[command.index("--host") + 1] == "0.0.0.0"

    for name in AIRFLOW_SERVICES:
        conn = json.loads(services[name]["environment"][f"AIRFLOW_CONN_{conn_type.upper()}_DEFAULT"])
        assert conn["conn_type"] == conn_type
        url = urlsplit(conn["host"])
        assert (url.hostname, url.port) == (service, port)
        assert conn["login"] and conn["password"]
        assert set(conn["extra"]) <= set(connection_type(conn_type)["conn-fields"])
