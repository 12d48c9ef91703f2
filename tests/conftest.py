"""Test session set-up: a private AIRFLOW_HOME (SQLite, this repo's dags/) set before Airflow is imported."""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

import pytest

from tests.support import REPO

_HOME = Path(os.environ.get("JK_TEST_AIRFLOW_HOME") or tempfile.mkdtemp(prefix="jk-airflow-home-"))

os.environ["AIRFLOW_HOME"] = str(_HOME)
os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(REPO / "dags"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", f"sqlite:///{_HOME / 'airflow.db'}")
os.environ.setdefault("JIKEYUN_KINGDEE_SCHEMES", str(REPO / "include" / "schemes"))


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def airflow_db() -> None:
    """A freshly migrated Airflow metadata DB (SQLite in the private AIRFLOW_HOME), once per test session."""
    from airflow.utils import db

    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    db.resetdb()
    # Airflow 2's migrations apply alembic.ini's logging: a root handler bound to this test's captured stderr
    root.handlers[:] = handlers
    root.setLevel(level)
