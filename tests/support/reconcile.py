"""Constants, the clock and small helpers of the reconcile tests (test modules must not import conftest)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

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
