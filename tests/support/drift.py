"""Drift injected straight into the Kingdee sandbox's store, as a person editing Kingdee by hand would leave it.

The sandbox keeps BD_STOCK records in memory (``FDocumentStatus``, ``FForbidStatus`` included); these helpers
change them through its scripting methods, without any API call: nothing is counted, the ledger knows nothing.
"""

from __future__ import annotations

from typing import Any

from jikeyun_kingdee.sandbox.kingdee import KingdeeSandbox

ORG = "I0134"


def rename(kingdee: KingdeeSandbox, number: str, name: str) -> None:
    """Someone renamed the warehouse in the Kingdee client."""
    assert kingdee.edit_stocks([number], org=ORG, FName=name) == 1


def delete(kingdee: KingdeeSandbox, number: str) -> None:
    """Someone deleted it (un-audited and deleted, in the client's terms)."""
    assert kingdee.delete_stocks([number], org=ORG) == 1


def unaudit(kingdee: KingdeeSandbox, number: str) -> None:
    """Someone un-audited it (反审核: C → D) and left it so."""
    assert kingdee.edit_stocks([number], org=ORG, FDocumentStatus="D") == 1


def forbid(kingdee: KingdeeSandbox, number: str) -> None:
    """Someone forbade it (禁用: FForbidStatus A → B)."""
    assert kingdee.edit_stocks([number], org=ORG, FForbidStatus="B") == 1


def add_by_hand(kingdee: KingdeeSandbox, number: str, name: str) -> dict[str, Any]:
    """A warehouse made in Kingdee by hand (or another tool), audited; returns it as stored."""
    [stock_id] = kingdee.add_stocks([{"FNumber": number, "FName": name, "FStockProperty": "1", "FCreateOrgId": ORG,
                                      "FUseOrgId": ORG, "FAllowMinusQty": False}], status="C")
    return next(s for s in kingdee.stocks(org=ORG) if s["FStockId"] == stock_id)
