"""Helpers shared by test modules (test modules import this, never a conftest)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from jikeyun_kingdee.sandbox._http import Reply, Request, SandboxServer

REPO = Path(__file__).resolve().parents[1]


def require_service(name: str, available: bool, why: str) -> None:
    """Skip a test whose service is missing on a developer machine; fail loudly in CI (CI=true)."""
    if available:
        return
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{name} is required in CI but not available: {why}")
    pytest.skip(f"{name} not available: {why}")


@dataclass
class Posted:
    """One webhook call as the receiver saw it."""

    path: str
    query: dict[str, str]
    body: Any
    headers: dict[str, str]


class WebhookReceiver(SandboxServer):
    """Robot webhook stand-in (DingTalk and WeCom answer alike): records POSTed JSON, answers ``answer``."""

    name = "webhook"

    def __init__(self) -> None:
        super().__init__()
        self.posted: list[Posted] = []
        self.answer: dict[str, Any] = {"errcode": 0, "errmsg": "ok"}

    def handle(self, request: Request) -> Reply:
        url = urlsplit(request.path)
        query = {name: values[0] for name, values in parse_qs(url.query).items()}
        self.posted.append(Posted(url.path, query, json.loads(request.body or b"null"), request.headers))
        self.count(url.path)
        return Reply(body=self.answer)
