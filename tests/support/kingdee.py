"""Kingdee test data: the organisation of the warehouse scheme, its BD_STOCK target, and BatchSave rows as the
scheme mapping builds them."""

from __future__ import annotations

from typing import Any

from jikeyun_kingdee.scheme import TargetSpec

ORG = "I0134"
#: the warehouse scheme's field mapping (include/schemes/warehouse_I0134.yaml)
WAREHOUSE_FIELDS = {"FName": "{warehouseName}", "FNumber": "{warehouseCode}", "FStockProperty": "1",
                    "FCreateOrgId": {"FNumber": ORG}, "FUseOrgId": {"FNumber": ORG}, "FAllowMinusQty": True}


def stock_target(**settings: Any) -> TargetSpec:
    """The BD_STOCK target of organisation I0134 (explicit approval unless ``settings`` say otherwise)."""
    return TargetSpec.model_validate({"form_id": "BD_STOCK", "organisation": ORG, "pk_field": "FStockId",
                                      "fields": WAREHOUSE_FIELDS, **settings})


def warehouse(number: str, name: str | None = None, **fields: object) -> dict:
    """A row exactly as the scheme mapping builds it."""
    return {"FName": f"仓库{number}" if name is None else name, "FNumber": number, "FStockProperty": "1",
            "FCreateOrgId": {"FNumber": ORG}, "FUseOrgId": {"FNumber": ORG}, "FAllowMinusQty": True, **fields}
