"""Kingdee calls of the load step (``pipeline.load_chunk``, one task with its own hook) for N warehouses, against the
minimum possible, case by case, into one Kingdee sandbox and one sync ledger:

1. all new (empty Kingdee);
2. 10% changed, the records audited and the ledger knowing the rest;
3. nothing changed (the ledger knows every row);
4. 10% blocked up at the source (forbidden in Kingdee);
5. those unblocked again (enabled);
6. going live: Kingdee already holds all of them, audited, 10% with other names, and the ledger is empty.

The minimum per case (B rows per write call, L rows per query, one chunk): one login when anything is called;
one look-up per ⌈rows to look up / L⌉; per kind of write ⌈rows / B⌉ calls (creates one BatchSave with
IsAutoSubmitAndAudit; updates UnAudit, BatchSave, Submit, Audit; Forbid; Enable); nothing for rows the ledger knows.

``--scheme goods`` measures the goods scheme (``goods_I0134``, BD_MATERIAL with its sub-entities) the same way: N
SKUs of a generated catalogue rendered by the scheme's field map, 10% of them renamed at goods level.

``python benchmarks/kingdee_calls.py [--scheme warehouse|goods] [--rows 1000] [--latency 0.04 --row-latency
0.005]``. The same script runs
against an older package on ``PYTHONPATH`` (before blocked rows reached the load, it skips cases 4 and 5 and
stages the chunk as batches).
"""

from __future__ import annotations

import os

os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING")  # figures only, not one log line per API call

import argparse
import json
import math
import tempfile
import time
from collections import Counter
from collections.abc import Set
from pathlib import Path
from typing import Any

os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="jk-bench-airflow-"))

import jikeyun_kingdee
from jikeyun_kingdee.hooks.kingdee import KingdeeHook
from jikeyun_kingdee.items import LoadChunk
from jikeyun_kingdee.ledger import SyncLedger
from jikeyun_kingdee.pipeline import load_chunk
from jikeyun_kingdee.sandbox.kingdee import KingdeeSandbox
from jikeyun_kingdee.scheme import load_scheme
from jikeyun_kingdee.staging import ObjectStoragePath, write_ndjson

ORG = "I0134"
T0 = 1_790_000_000_000


def row(i: int, name: str | None = None) -> dict[str, Any]:
    """A row as the scheme mapping builds it."""
    return {"FName": name or f"仓库{i:05d}", "FNumber": f"WH{i:05d}", "FStockProperty": "1",
            "FCreateOrgId": {"FNumber": ORG}, "FUseOrgId": {"FNumber": ORG}, "FAllowMinusQty": True}


def items(count: int, modified: int, *, renamed: Set[int] = frozenset(), state: str = "active",
          only: set[int] | None = None) -> list[dict[str, Any]]:
    return [{"key": f"WH{i:05d}", "modified": modified, "row": row(i, f"仓库{i:05d}（改）" if i in renamed else None),
             "state": state} for i in range(count) if only is None or i in only]


class GoodsRows:
    """Rows of the goods scheme: ``count`` SKUs of a generated catalogue (units the scheme maps), rendered by its
    field map; a renamed SKU has its goods name changed."""

    def __init__(self, scheme: Any, count: int) -> None:
        from jikeyun_kingdee.sandbox.jikeyun_goods import generate_catalogue

        units = scheme.lookups["unit"].values
        self.fields = scheme.target.field_map
        self.skus = [{**sku, "unitName": sku["unitName"] if sku["unitName"] in units else "件"}
                     for sku in generate_catalogue(skus=count, seed=5)]

    def row(self, i: int, name: str | None = None) -> dict[str, Any]:
        sku = self.skus[i]
        return dict(self.fields.render({**sku, "goodsName": name or sku["goodsName"]}))

    def items(self, count: int, modified: int, *, renamed: Set[int] = frozenset(), state: str = "active",
              only: set[int] | None = None) -> list[dict[str, Any]]:
        return [{"key": self.skus[i]["skuBarcode"], "modified": modified,
                 "row": self.row(i, f"{self.skus[i]['goodsName']}（改）" if i in renamed else None), "state": state}
                for i in range(count) if only is None or i in only]


def minimum(**writes: int) -> Counter[str]:
    """Minimum calls: one login and one look-up pass when anything is written, plus the writes given."""
    calls = Counter({k: v for k, v in writes.items() if v})
    if calls:
        calls.update({"ValidateUser": 1})
    return calls


class Bench:
    def __init__(self, sandbox: KingdeeSandbox, folder: Path, scheme: Any, ledger: SyncLedger) -> None:
        self.sandbox, self.folder, self.scheme, self.ledger = sandbox, folder, scheme, ledger
        self.runs = 0

    def load(self, staged: list[dict[str, Any]]) -> tuple[Counter[str], Counter[str], float]:
        """One load task over ``staged``; returns (calls by the hook, statuses, seconds)."""
        self.runs += 1
        run = ObjectStoragePath(f"file://{self.folder / f'run-{self.runs}'}")
        (run / "filter").mkdir(parents=True, exist_ok=True)
        path = run / "filter" / "items-00000.ndjson"
        write_ndjson(path, staged)
        chunk: LoadChunk = {"chunk": 0, "items": str(path), "rows": len(staged)}
        hook = KingdeeHook()
        self.sandbox.reset_counts()
        started = time.perf_counter()
        manifest = load_chunk(self.scheme, hook, self.ledger, run, chunk, f"bench-{self.runs}")
        seconds = time.perf_counter() - started
        calls = Counter(hook.call_counts)
        served = {k: v for k, v in self.sandbox.calls.items() if not k.startswith("fault:")}
        assert dict(calls) == served, (calls, served)
        return calls, Counter(manifest["counts"]), seconds


def report(title: str, calls: Counter[str], least: Counter[str], statuses: Counter[str], seconds: float) -> None:
    total, floor = sum(calls.values()), sum(least.values())
    ratio = f"{total / floor:.2f}" if floor else ("1.00" if total == 0 else "inf")
    endpoints = sorted(set(calls) | set(least))
    detail = ", ".join(f"{e} {calls.get(e, 0)}/{least.get(e, 0)}" for e in endpoints) or "no call"
    print(f"{title:<44} {total:4d} calls, minimum {floor:3d}, ratio {ratio:>5}  [{detail}]  "
          f"{dict(sorted(statuses.items()))}  {seconds:.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scheme", choices=("warehouse", "goods"), default="warehouse")
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--latency", type=float, default=0.0, help="sandbox seconds per call")
    parser.add_argument("--row-latency", type=float, default=0.0, help="sandbox seconds per row written")
    args = parser.parse_args()
    root = Path(jikeyun_kingdee.__file__).resolve().parents[2]
    scheme = load_scheme(root / "include" / "schemes" / f"{args.scheme}_I0134.yaml")
    target = scheme.target
    n, b = args.rows, target.rows_per_batch
    make_items, make_row = items, row
    if args.scheme == "goods":
        goods = GoodsRows(scheme, n)
        make_items, make_row = goods.items, goods.row
    lookups = math.ceil(n / getattr(target, "lookup_limit", 2000))
    tenth = set(range(0, n, 10))
    records = "SKUs" if args.scheme == "goods" else "warehouses"
    print(f"package {root} · {n} {records} · {b} rows per write call · approval "
          f"{getattr(target, 'approval', 'explicit' if target.submit_and_audit else 'none')} · "
          "calls/minimum per endpoint")
    with KingdeeSandbox(password="bench-password") as sandbox, tempfile.TemporaryDirectory() as tmp:
        sandbox.faults.update(latency=args.latency)
        if args.row_latency and hasattr(sandbox, "configure"):  # older sandboxes have no per-row latency
            sandbox.configure(row_latency=args.row_latency)
        os.environ["AIRFLOW_CONN_KINGDEE_DEFAULT"] = json.dumps(
            {
                "conn_type": "kingdee",
                "host": f"{sandbox.url}/k3cloud/",
                "login": sandbox.username,
                "password": sandbox.password,
                "extra": {"acct_id": sandbox.acct_id},
            }
        )
        ledger = SyncLedger(scheme.name, url=f"sqlite:///{Path(tmp) / 'ledger.db'}")
        bench = Bench(sandbox, Path(tmp), scheme, ledger)
        changed = math.ceil(len(tenth) / b)
        cases = [
            ("1 all new", make_items(n, T0), minimum(ExecuteBillQuery=1, BatchSave=math.ceil(n / b))),
            (
                "2 10% changed, audited, ledger knows",
                make_items(n, T0 + 1, renamed=tenth),
                minimum(ExecuteBillQuery=1, UnAudit=changed, BatchSave=changed, Submit=changed, Audit=changed),
            ),
            ("3 none changed, ledger knows", make_items(n, T0 + 1, renamed=tenth), minimum()),
            (
                "4 10% blocked (forbid)",
                make_items(n, T0 + 2, state="blocked", only=tenth, renamed=tenth),
                minimum(ExecuteBillQuery=1, ExcuteOperation=changed),
            ),
            (
                "5 the same unblocked (enable)",
                make_items(n, T0 + 3, only=tenth, renamed=tenth),
                minimum(ExecuteBillQuery=1, ExcuteOperation=changed),
            ),
        ]
        for title, staged, least in cases:
            calls, statuses, seconds = bench.load(staged)
            report(title, calls, least, statuses, seconds)
        ledger.dispose()
        sandbox.reset()
        ledger = SyncLedger(f"{scheme.name}_live", url=f"sqlite:///{Path(tmp) / 'ledger.db'}")
        bench.ledger = ledger
        bench.scheme = scheme.model_copy(update={"name": f"{scheme.name}_live"})
        sandbox.add_records(target.form_id, [make_row(i) for i in range(n)], status="C")
        calls, statuses, seconds = bench.load(make_items(n, T0, renamed=tenth))
        report(
            "6 going live: all in Kingdee, 10% differ",
            calls,
            minimum(ExecuteBillQuery=lookups, UnAudit=changed, BatchSave=changed, Submit=changed, Audit=changed),
            statuses,
            seconds,
        )
        ledger.dispose()


if __name__ == "__main__":
    main()
