"""Helpers shared by the tests. The house rule:

* Everything that more than one module uses — constants, test data builders, receivers, version switches — lives in
  this package, one module per area (``tests.support.kingdee``, ``tests.support.deployment``, ...), and is imported
  from here: ``from tests.support.kingdee import ORG, warehouse``.
* A ``conftest.py`` defines fixtures and pytest hooks only; no module ever imports a conftest.
* Every test folder is a package (an ``__init__.py``), so module names are ``tests.<area>.test_<name>``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]


def require_service(name: str, available: bool, why: str) -> None:
    """Skip a test whose service is missing on a developer machine; fail loudly in CI (CI=true)."""
    if available:
        return
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{name} is required in CI but not available: {why}")
    pytest.skip(f"{name} not available: {why}")


def set_connection(monkeypatch: pytest.MonkeyPatch, conn_id: str, **fields: Any) -> None:
    """Define an Airflow connection as an ``AIRFLOW_CONN_<ID>`` JSON environment variable."""
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(fields))
