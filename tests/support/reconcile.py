"""Constants, the clock and small helpers of the reconcile tests (test modules must not import conftest)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from tests.support import REPO

UTC = timezone.utc  # datetime.UTC is 3.11+; the package supports 3.10

SYNC_DAG_ID = "jikeyun_kingdee_warehouse_I0134"
RECONCILE_DAG_ID = "jikeyun_kingdee_warehouse_I0134_reconcile"
WAREHOUSES = 300
# The generated warehouses were modified in this range; incremental windows are the hours after it.
MODIFIED_FROM = datetime(2026, 10, 1, tzinfo=UTC)
MODIFIED_TO = datetime(2026, 11, 1, tzinfo=UTC)
JIKEYUN_SECRET = "s3cr3t-jikeyun-appsecret-reconcile"
KINGDEE_PASSWORD = "s3cr3t-kingdee-password-reconcile"
WECOM_KEY = "wecom-key-reconcile-7f3a"


def hour(n: int) -> datetime:
    """End of the n-th hourly window after the generated data's range."""
    return MODIFIED_TO + timedelta(hours=n)


WRITES = ("Save", "BatchSave", "Submit", "Audit", "UnAudit", "ExcuteOperation", "Delete")


def writes(kingdee) -> dict[str, int]:
    """Write calls the Kingdee sandbox has answered, by operation."""
    return {operation: kingdee.calls.get(operation, 0) for operation in WRITES}


def states(dag_run) -> dict[str, str]:
    """Task id (``load[2]`` for mapped ones) → state of a DAG run."""
    return {f"{ti.task_id}[{ti.map_index}]" if ti.map_index >= 0 else ti.task_id: ti.state
            for ti in dag_run.get_task_instances()}


def lifecycle(warehouse: dict[str, Any]) -> str:
    """A raw Jikeyun warehouse's lifecycle state: ``active``, ``blocked`` or ``deleted``."""
    if int(warehouse.get("isDelete") or 0):
        return "deleted"
    return "blocked" if int(warehouse.get("isBlockup") or 0) else "active"


def assert_kingdee_equals_jikeyun(jikeyun, kingdee, *, besides: list[dict]) -> None:
    """Every active warehouse is in Kingdee with its name, audited and not forbidden; every blocked or deleted one
    is absent or forbidden; and Kingdee holds nothing else than ``besides``."""
    stocks = {s["FNumber"]: s for s in kingdee.stocks(org="I0134")}
    for code, warehouse in jikeyun.warehouses.items():
        stock = stocks.pop(code, None)
        if lifecycle(warehouse) == "active":
            assert stock is not None, code
            assert (stock["FName"], stock["FDocumentStatus"], stock["FForbidStatus"]) == (
                warehouse["warehouseName"], "C", "A"), code
        else:
            assert stock is None or stock["FForbidStatus"] == "B", (code, stock)
    assert list(stocks.values()) == besides


def rerun_loads(run) -> dict[str, str]:
    """What clearing every load task of the sync run ``run`` does: the load step again on the run's staged chunks
    (an older snapshot when later runs were applied since). Returns the load status by key."""
    from jikeyun_kingdee.hooks.kingdee import KingdeeHook
    from jikeyun_kingdee.ledger import SyncLedger
    from jikeyun_kingdee.local_runs import return_value_of
    from jikeyun_kingdee.pipeline import load_chunk
    from jikeyun_kingdee.scheme import load_scheme
    from jikeyun_kingdee.staging import ObjectStoragePath, read_ndjson

    scheme = load_scheme(REPO / "include" / "schemes" / "warehouse_I0134.yaml")
    statuses: dict[str, str] = {}
    with SyncLedger(scheme.name) as ledger:
        for chunk in return_value_of(run, "filter")["chunks"]:
            folder = ObjectStoragePath(chunk["items"]).parent.parent  # the run's folder (<folder>/filter/chunk-n)
            manifest = load_chunk(scheme, KingdeeHook(), ledger, folder, chunk, run.run_id)
            statuses |= {r["key"]: r["status"] for r in read_ndjson(manifest["results"])}
    return statuses
