"""Constants, the clock and helpers of the sales outbound scheme's tests
(``include/schemes/sales_outbound_I0134.yaml``)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

UTC = timezone.utc

SYNC_DAG_ID = "jikeyun_kingdee_sales_outbound_I0134"
RECONCILE_DAG_ID = "jikeyun_kingdee_sales_outbound_I0134_reconcile"
WAREHOUSE_DAG_ID = "jikeyun_kingdee_warehouse_I0134"
GOODS_DAG_ID = "jikeyun_kingdee_goods_I0134"
ORG = "I0134"
FORM = "SAL_OUTSTOCK"
TRADES_METHOD = "oms.trade.fullinfoget"
# The generated base data was modified in this range; the trades of the tests are added in the hours after it.
MODIFIED_FROM = datetime(2026, 10, 1, tzinfo=UTC)
MODIFIED_TO = datetime(2026, 11, 1, tzinfo=UTC)
JIKEYUN_SECRET = "s3cr3t-jikeyun-appsecret-trades"
KINGDEE_PASSWORD = "s3cr3t-kingdee-password-trades"
#: the scheme's customer table (lookups.customer); other shops are their own customer number
CUSTOMERS = {"TM001": "SHOP001", "JD001": "SHOP002", "PF001": "SHOP003"}


def hour(n: int) -> datetime:
    """End of the n-th hourly window after the generated data's range."""
    return MODIFIED_TO + timedelta(hours=n)


def documents(kingdee) -> dict[str, dict[str, Any]]:
    """SAL_OUTSTOCK of the organisation by bill number."""
    return {d["FBillNo"]: d for d in kingdee.records(FORM, org=ORG)}


def number(value: Any) -> Any:
    return value.get("FNumber") if isinstance(value, dict) else value


def kingdee_calls(kingdee) -> dict[str, int]:
    """Calls the Kingdee sandbox answered, by operation (the login aside)."""
    return {k: v for k, v in kingdee.calls.items() if k not in ("ValidateUser",) and not k.startswith("fault")}
