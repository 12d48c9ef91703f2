"""Raw Jikeyun protocol calls for tests of the sandbox itself: a signed form POST whose whole envelope comes back
(the hook returns only ``result.data`` or raises), and the sandbox's HTTP scripting commands."""

from __future__ import annotations

from typing import Any

import pendulum
import requests

from jikeyun_kingdee.hooks.jikeyun import compact_json, sign
from jikeyun_kingdee.sandbox.jikeyun import JikeyunSandbox


def raw_call(sandbox: JikeyunSandbox, method: str, bizcontent: dict[str, Any]) -> dict[str, Any]:
    """One signed call, signed now (real time, Beijing); returns the whole JSON envelope."""
    params = {"method": method, "appkey": sandbox.appkey, "version": "v1.0", "contenttype": "json",
              "timestamp": pendulum.now("Asia/Shanghai").format("YYYY-MM-DD HH:mm:ss"),
              "bizcontent": compact_json(bizcontent)}
    params["sign"] = sign(params, sandbox.appsecret)
    answer = requests.post(f"{sandbox.url}/open/openapi/do", data=params, timeout=30)
    answer.raise_for_status()
    envelope: dict[str, Any] = answer.json()
    return envelope


def control(sandbox: JikeyunSandbox, command: str, payload: dict[str, Any] | None = None) -> Any:
    """A scripting command over HTTP (``POST /_sandbox/<command>``); its ``result``."""
    answer = requests.post(f"{sandbox.url}/_sandbox/{command}", json=payload or {}, timeout=30)
    assert answer.status_code == 200, answer.text
    return answer.json()["result"]


def control_refused(sandbox: JikeyunSandbox, command: str, payload: dict[str, Any]) -> str:
    """A scripting command the sandbox must refuse (HTTP 400); its error text."""
    answer = requests.post(f"{sandbox.url}/_sandbox/{command}", json=payload, timeout=30)
    assert answer.status_code == 400, answer.text
    error: str = answer.json()["error"]
    return error
