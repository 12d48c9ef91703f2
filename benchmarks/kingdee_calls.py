"""Kingdee calls needed to upsert 1,000 warehouses (batches of 100, as the scheme writes them) into the sandbox.

Three runs against one sandbox: all new, then 10% changed (spread over every batch), then none changed.
Prints the HTTP requests per operation as counted by the hook and by the sandbox, and the wall time.
``python benchmarks/kingdee_calls.py [--rows 1000] [--batch 100]``
"""

from __future__ import annotations

import os

os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING")  # figures only, not one log line per API call

import argparse
import json
import tempfile
import time

os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="jk-bench-airflow-"))

from jikeyun_kingdee.hooks.kingdee import KingdeeHook  # noqa: E402
from jikeyun_kingdee.sandbox.kingdee import KingdeeSandbox  # noqa: E402
from jikeyun_kingdee.upsert import upsert  # noqa: E402

ORG = "I0134"


def warehouses(count: int, changed_every: int = 0) -> list[dict]:
    """Rows as the scheme mapping builds them; every ``changed_every``-th one with a new name."""
    return [
        {"FName": f"仓库{i:04d}" + ("（改）" if changed_every and i % changed_every == 0 else ""),
         "FNumber": f"WH{i:04d}", "FStockProperty": "1", "FCreateOrgId": {"FNumber": ORG},
         "FUseOrgId": {"FNumber": ORG}, "FAllowMinusQty": True}
        for i in range(count)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=100)
    args = parser.parse_args()
    with KingdeeSandbox(password="bench-password") as sandbox:
        os.environ["AIRFLOW_CONN_KINGDEE_DEFAULT"] = json.dumps({
            "conn_type": "kingdee", "host": f"{sandbox.url}/k3cloud/", "login": sandbox.username,
            "password": sandbox.password, "extra": {"acct_id": sandbox.acct_id}})
        for title, rows in (("all new", warehouses(args.rows)), ("10% changed", warehouses(args.rows, 10)),
                            ("none changed", warehouses(args.rows, 10))):
            hook = KingdeeHook()
            sandbox.reset_counts()
            started = time.perf_counter()
            statuses: dict[str, int] = {}
            for start in range(0, len(rows), args.batch):
                for outcome in upsert(hook, "BD_STOCK", rows[start:start + args.batch], org_number=ORG):
                    statuses[outcome.status] = statuses.get(outcome.status, 0) + 1
            seconds = time.perf_counter() - started
            calls = dict(sorted(hook.call_counts.items()))
            assert calls == {k: v for k, v in sorted(sandbox.calls.items()) if not k.startswith("fault:")}
            print(f"{title:>13}: {sum(calls.values()):3d} calls {calls}  outcomes {statuses}  {seconds:.2f} s")


if __name__ == "__main__":
    main()
