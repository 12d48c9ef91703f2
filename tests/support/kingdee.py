"""Kingdee test data: the organisation of the warehouse scheme and BatchSave rows as the scheme mapping builds them."""

from __future__ import annotations

ORG = "I0134"


def warehouse(number: str, name: str | None = None, **fields: object) -> dict:
    """A row exactly as the scheme mapping builds it."""
    return {"FName": f"仓库{number}" if name is None else name, "FNumber": number, "FStockProperty": "1",
            "FCreateOrgId": {"FNumber": ORG}, "FUseOrgId": {"FNumber": ORG}, "FAllowMinusQty": True, **fields}
