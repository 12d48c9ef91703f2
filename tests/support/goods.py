"""Constants, the clock and helpers of the goods scheme's tests (``include/schemes/goods_I0134.yaml``)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from tests.support import REPO as REPO

UTC = timezone.utc

SYNC_DAG_ID = "jikeyun_kingdee_goods_I0134"
RECONCILE_DAG_ID = "jikeyun_kingdee_goods_I0134_reconcile"
ORG = "I0134"
FORM = "BD_MATERIAL"
GOODS_METHOD = "erp.storage.goodslist"
#: goods the module's catalogue holds (1 to 5 SKUs each, about 2.3 on average)
GOODS = 200
# The generated catalogue was modified in this range; incremental windows are the hours after it.
MODIFIED_FROM = datetime(2026, 10, 1, tzinfo=UTC)
MODIFIED_TO = datetime(2026, 11, 1, tzinfo=UTC)
JIKEYUN_SECRET = "s3cr3t-jikeyun-appsecret-goods"
KINGDEE_PASSWORD = "s3cr3t-kingdee-password-goods"
#: the scheme's unit table (lookups.unit), as the tests expect it to be applied
UNITS = {"个": "Pcs", "件": "Pcs", "瓶": "Ping", "箱": "Xiang", "千克": "kg", "台": "Tai"}

WRITES = ("Save", "BatchSave", "Submit", "Audit", "UnAudit", "ExcuteOperation", "Delete")


def hour(n: int) -> datetime:
    """End of the n-th hourly window after the generated catalogue's range."""
    return MODIFIED_TO + timedelta(hours=n)


def writes(kingdee) -> dict[str, int]:
    """Write calls the Kingdee sandbox has answered, by operation."""
    return {operation: kingdee.calls.get(operation, 0) for operation in WRITES}


def states(dag_run) -> dict[str, str]:
    """Task id (``load[2]`` for mapped ones) → state of a DAG run."""
    return {f"{ti.task_id}[{ti.map_index}]" if ti.map_index >= 0 else ti.task_id: ti.state
            for ti in dag_run.get_task_instances()}


def lifecycle(sku: dict[str, Any]) -> str:
    """A raw Jikeyun SKU record's lifecycle state: deleted goods, else blocked goods or SKU, else active."""
    if int(sku.get("isDelete") or 0):
        return "deleted"
    return "blocked" if int(sku.get("isBlockup") or 0) or int(sku.get("skuIsBlockup") or 0) else "active"


def expected_material(sku: dict[str, Any]) -> dict[str, str]:
    """What Kingdee should hold for an active SKU (the fields the scheme maps, and the statuses)."""
    unit = UNITS[sku["unitName"]]
    return {"FNumber": sku["skuBarcode"], "FName": sku["goodsName"], "FSpecification": sku["skuName"],
            "FBaseUnitId": unit, "FStoreUnitID": unit, "FErpClsID": "1", "FCategoryID": "CHLB01_SYS",
            "FDocumentStatus": "C", "FForbidStatus": "A"}


def materials(kingdee) -> dict[str, dict[str, Any]]:
    """BD_MATERIAL of the organisation by number, with the fields :func:`expected_material` names."""
    keys = ("FNumber", "FName", "FSpecification", "FBaseUnitId", "FStoreUnitID", "FErpClsID", "FCategoryID",
            "FDocumentStatus", "FForbidStatus")
    return {r["FNumber"]: {k: _number(r.get(k)) for k in keys} for r in kingdee.records(FORM, org=ORG)}


def _number(value: Any) -> Any:
    return value.get("FNumber") if isinstance(value, dict) else value


def assert_kingdee_equals_jikeyun(jikeyun, kingdee) -> None:
    """Every active SKU is a material as mapped, audited and not forbidden; every blocked or deleted one is absent
    or forbidden; Kingdee holds nothing else."""
    stored = materials(kingdee)
    for sku in jikeyun.goods.records.values():
        material = stored.pop(sku["skuBarcode"], None)
        if lifecycle(sku) == "active":
            assert material == expected_material(sku), sku["skuBarcode"]
        else:
            assert material is None or material["FForbidStatus"] == "B", (sku["skuBarcode"], material)
    assert stored == {}


def keep_to_the_unit_table(sandbox) -> None:
    """SKUs of units the scheme does not map (双, 袋) get 件, at their own modification time, so that only a test
    about unmapped units meets one."""
    import pendulum

    for sku in list(sandbox.goods.records.values()):
        if sku["unitName"] not in UNITS:
            sandbox.goods.edit_sku(sku["skuId"], unitName="件",
                                   modified_at=pendulum.from_timestamp(sku["skuGmtModified"] / 1000))
