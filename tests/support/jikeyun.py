"""Jikeyun test helpers: the warehouse source and its reads (the scheme's source section, a read of a window through
:func:`~jikeyun_kingdee.source_paging.read_window`, the sandbox's view of a window), and raw protocol calls for
tests of the sandbox itself (a signed form POST whose whole envelope comes back — the hook returns only
``result.data`` or raises — and the sandbox's HTTP scripting commands)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pendulum
import requests

from jikeyun_kingdee.hooks.jikeyun import compact_json, sign
from jikeyun_kingdee.sandbox.jikeyun import JikeyunSandbox
from jikeyun_kingdee.scheme import SourceSpec
from jikeyun_kingdee.source_paging import Pages, read_window

METHOD, LIST_KEY = "erp.warehouse.get", "warehouseInfo"
ALL = {"includeDeleteAndBlockup": 1}
P = 200


def ms(moment: datetime) -> int:
    return round(moment.timestamp() * 1000)


def warehouse_source(page_size: int = P, **changes: Any) -> SourceSpec:
    """The warehouse scheme's source section (``includeDeleteAndBlockup: 1``), with ``changes``."""
    return SourceSpec.model_validate({"method": METHOD, "list_path": LIST_KEY, "id_field": "warehouseCode",
                                      "page_size": page_size, "request": ALL, **changes})


def read(hook: Any, window: tuple[datetime | None, datetime | None] = (None, None), page_size: int = P,
         **changes: Any) -> list[dict[str, Any]]:
    """The records of one window read of the warehouse source through the hook's ``call``, in the order yielded."""
    return list(read_window(hook.call, warehouse_source(page_size, **changes), *window))


def codes(records: Any) -> list[str]:
    """Warehouse codes in the order given (repeats kept, so tests can see them)."""
    return [r["warehouseCode"] for r in records]


def plain_pages(hook: Any, request: dict[str, Any], page_size: int = P) -> Pages:
    """Pages of ``erp.warehouse.get`` with the fixed ``request`` and no window of their own (for offset reads)."""
    return Pages(hook.call, METHOD, (LIST_KEY,), page_size, request, None, "beijing")


def in_window(sandbox: Any, start: datetime, end: datetime) -> set[str]:
    """Codes the sandbox holds modified in ``[start, end)``."""
    return {r["warehouseCode"] for r in sandbox.records.values() if ms(start) <= r["gmtModified"] < ms(end)}


def near_edges(sandbox: Any, start: datetime, end: datetime) -> set[str]:
    """Codes within a second of either end: the one-second widening may return them too."""
    return {r["warehouseCode"] for r in sandbox.records.values()
            if min(abs(r["gmtModified"] - ms(start)), abs(r["gmtModified"] - ms(end))) < 2000}


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
