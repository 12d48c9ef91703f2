"""Drift injected straight into the Kingdee sandbox's store, as a person editing Kingdee by hand would leave it.

The sandbox keeps BD_STOCK records in memory (``FDocumentStatus``, ``FForbidStatus`` included); these helpers
change them without any API call, so nothing is counted and the ledger knows nothing of it.
"""

from __future__ import annotations

from typing import Any

from jikeyun_kingdee.sandbox.kingdee import KingdeeSandbox

ORG = "I0134"


def _record(kingdee: KingdeeSandbox, number: str, org: str = ORG) -> dict[str, Any]:
    """The live stored record (not a copy) of ``number`` in ``org``."""
    matches = [r for r in kingdee._stocks.values() if r["FNumber"] == number and r["FUseOrgId"] == org]
    if len(matches) != 1:
        raise KeyError(f"the Kingdee sandbox holds {len(matches)} records {number!r} of organisation {org}")
    return matches[0]


def rename(kingdee: KingdeeSandbox, number: str, name: str) -> None:
    """Someone renamed the warehouse in the Kingdee client."""
    with kingdee._lock:
        _record(kingdee, number)["FName"] = name


def delete(kingdee: KingdeeSandbox, number: str) -> None:
    """Someone deleted it (un-audited and deleted, in the client's terms)."""
    with kingdee._lock:
        del kingdee._stocks[_record(kingdee, number)["FStockId"]]


def unaudit(kingdee: KingdeeSandbox, number: str) -> None:
    """Someone un-audited it (反审核: C → D) and left it so."""
    with kingdee._lock:
        _record(kingdee, number)["FDocumentStatus"] = "D"


def forbid(kingdee: KingdeeSandbox, number: str) -> None:
    """Someone forbade it (禁用: FForbidStatus A → B)."""
    with kingdee._lock:
        _record(kingdee, number)["FForbidStatus"] = "B"


def add_by_hand(kingdee: KingdeeSandbox, number: str, name: str) -> dict[str, Any]:
    """A warehouse made in Kingdee by hand (or another tool), audited; returns a copy of it as stored."""
    kingdee.add_stocks([{"FNumber": number, "FName": name, "FStockProperty": "1", "FCreateOrgId": ORG,
                         "FUseOrgId": ORG, "FAllowMinusQty": False}], status="C")
    with kingdee._lock:
        return dict(_record(kingdee, number))
