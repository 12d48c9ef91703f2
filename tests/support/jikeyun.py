"""The warehouse source and its reads, shared by the Jikeyun tests: the scheme's source section, a read of a window
through :func:`~jikeyun_kingdee.source_paging.read_window` and the sandbox's view of a window."""

from __future__ import annotations

from datetime import datetime
from typing import Any

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
