"""Helpers shared by test modules (test modules import this, never a conftest)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def require_service(name: str, available: bool, why: str) -> None:
    """Skip a test whose service is missing on a developer machine; fail loudly in CI (CI=true)."""
    if available:
        return
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{name} is required in CI but not available: {why}")
    pytest.skip(f"{name} not available: {why}")
