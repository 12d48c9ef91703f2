"""Constants and the clock of the DAG tests."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

#: the DAG of include/schemes/warehouse_I0134.yaml: the one place the tests name it
DAG_ID = "jikeyun_kingdee_warehouse_I0134"
# The generated warehouses were modified in this range; incremental tests use hours after it.
MODIFIED_FROM = datetime(2026, 10, 1, tzinfo=timezone.utc)
MODIFIED_TO = datetime(2026, 11, 1, tzinfo=timezone.utc)
JIKEYUN_SECRET = "s3cr3t-jikeyun-appsecret-0123456789"
KINGDEE_PASSWORD = "s3cr3t-kingdee-password"
KINGDEE_APP_SECRET = "fb7d46647ac346dbb5fcd45b65512a45"


def hour(n: int) -> datetime:
    """End of the n-th hourly window after the generated data's range."""
    return MODIFIED_TO + timedelta(hours=n)
