"""Jikeyun and Kingdee calls of the document scheme ``sales_outbound_I0134`` (``oms.trade.fullinfoget`` →
``SAL_OUTSTOCK``), its DAG run with ``dag.test()`` against both sandboxes after the warehouse and goods DAGs (the
base data present, their ledgers knowing it), case by case, against the minimum of issue 18 item 11:

1. one hourly window of N shipped trades (plus a few whose material the goods scheme never creates: waiting);
2. the same window again: nothing posted twice, no Kingdee write;
3. a 30-day backfill over those windows (one run whose window is the month, read in 7-day slices): no Kingdee write;
4. the next window, no new trade, the waiting trades' base data unchanged: no Kingdee call.

The minimum: Jikeyun ⌈(n_s+1)/P⌉ per window slice s (n_s trades modified in it, P the page size; a slice is at most
``source.max_window_days``); Kingdee, per batch of d new documents, one number look-up (ExecuteBillQuery) and
⌈d/B⌉ BatchSave (B documents per BatchSave), base-data checks at most one query per referenced form per batch and
none when the base-data ledgers know — so a run that posts nothing needs no Kingdee call at all, and one that posts
needs one login (ValidateUser). The base-data DAGs run for the same logical dates first, so the document's waits
(``wait_for_<scheme>``) pass at once.

``python benchmarks/document_calls.py [--trades 2000] [--waiting 5] [--goods 100] [--warehouses 20] [--schemes DIR]``
"""

from __future__ import annotations

import os

os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING")  # figures only

import argparse
import math
import tempfile
import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SCHEME_FILE, BASE_FILES = "sales_outbound_I0134.yaml", ("warehouse_I0134.yaml", "goods_I0134.yaml")
BEIJING = timezone(timedelta(hours=8))
BASE_MODIFIED = (datetime(2026, 10, 1, tzinfo=timezone.utc), datetime(2026, 11, 1, tzinfo=timezone.utc))
#: the first document window is the hour that ends here (a manual run covers the hour that ends at its logical date)
WINDOW_END = datetime(2026, 11, 10, 10, tzinfo=BEIJING)
#: the backfill: one run over November (Beijing), which holds the windows above
MONTH_END = datetime(2026, 12, 1, tzinfo=BEIJING)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trades", type=int, default=2000, help="shipped trades in the first window")
    parser.add_argument("--waiting", type=int, default=5, help="trades of them whose material never reaches Kingdee")
    parser.add_argument("--goods", type=int, default=100, help="goods of the catalogue (1 to 5 SKUs each)")
    parser.add_argument("--warehouses", type=int, default=20)
    parser.add_argument("--schemes", type=Path, default=REPO / "include" / "schemes", help="the scheme folder")
    args = parser.parse_args()

    from jikeyun_kingdee.demo import configure_airflow, connect

    home = Path(tempfile.mkdtemp(prefix="jk-bench-documents-"))
    configure_airflow(home, REPO / "dags")
    os.environ["JIKEYUN_KINGDEE_SCHEMES"] = str(args.schemes.resolve())

    from airflow.utils import db

    from jikeyun_kingdee.local_runs import load_dag_bag
    from jikeyun_kingdee.pools import ensure_pools
    from jikeyun_kingdee.sandbox.jikeyun import JikeyunSandbox
    from jikeyun_kingdee.sandbox.jikeyun_trades import TRADES_METHOD
    from jikeyun_kingdee.sandbox.kingdee import KingdeeSandbox
    from jikeyun_kingdee.scheme import load_scheme

    db.resetdb()
    schemes = args.schemes.resolve()
    scheme = load_scheme(schemes / SCHEME_FILE)
    bases = [load_scheme(schemes / name) for name in BASE_FILES]
    ensure_pools([scheme, *bases])
    source, target = scheme.source, scheme.target
    page, per_save = source.page_size, target.rows_per_batch
    with JikeyunSandbox(warehouses=args.warehouses, goods=args.goods, modified_from=BASE_MODIFIED[0],
                        modified_to=BASE_MODIFIED[1]) as jikeyun, KingdeeSandbox() as kingdee:
        connect(jikeyun, kingdee)
        bag = load_dag_bag(str(REPO / "dags"))
        assert not bag.import_errors, bag.import_errors
        bench = Bench(jikeyun, kingdee, bag, TRADES_METHOD)
        waiting_barcodes = prepare_base_data(jikeyun, bases[1], args.waiting)
        for base in bases:  # the base data, then their (empty) windows of the logical dates the document runs at
            bench.run(base.dag_id, WINDOW_END, full_resync=True)
            for moment in (WINDOW_END + timedelta(hours=1), MONTH_END):
                bench.run(base.dag_id, moment)

        in_window = WINDOW_END - timedelta(minutes=30)
        for i in range(args.trades):
            jikeyun.trades.add_trade(status=6000 if i % 3 else 9090, trade_type=1, isDelete=0,
                                     modified_at=in_window + timedelta(seconds=i % 1500))
        for i in range(args.waiting):
            jikeyun.trades.add_trade(status=6000, trade_type=1, isDelete=0, lines=[{"barcode": waiting_barcodes[i]}],
                                     modified_at=in_window)
        n = args.trades + args.waiting
        print(f"package {REPO} · {args.trades:,} shipped trades + {args.waiting} waiting for a material in the window "
              f"{WINDOW_END - timedelta(hours=1):%Y-%m-%d %H:%M} → {WINDOW_END:%H:%M} (Beijing) · P {page} trades a "
              f"page · B {per_save} documents a BatchSave · rows per load chunk {scheme.rows_per_chunk}")
        print(f"{'case':<46}{'Jikeyun':>8}{'min':>5}{'Kingdee':>9}{'min':>5}{'writes':>8}  Kingdee calls / minimum; "
              "summary; wall")

        posted = args.trades
        chunks = math.ceil(n / scheme.rows_per_chunk)
        saves = sum(math.ceil(d / per_save) for d in split(posted, scheme.rows_per_chunk))
        bench.case("1 one window, N new shipped trades", scheme.dag_id, WINDOW_END,
                   jikeyun_min=math.ceil((n + 1) / page),
                   kingdee_min=Counter(ValidateUser=1, ExecuteBillQuery=chunks, BatchSave=saves))
        bench.case("2 the same window again", scheme.dag_id, WINDOW_END, jikeyun_min=math.ceil((n + 1) / page),
                   kingdee_min=Counter())
        monthly = bench.monthly_dag(scheme)
        slices = slice_counts(jikeyun, MONTH_END - timedelta(days=30), MONTH_END, source.max_window_days or 7)
        bench.case(f"3 backfill of 30 days ({len(slices)} slices)", monthly, MONTH_END,
                   jikeyun_min=sum(math.ceil((s + 1) / page) for s in slices), kingdee_min=Counter())
        bench.case("4 next window, waiting trades, base data same", scheme.dag_id, WINDOW_END + timedelta(hours=1),
                   jikeyun_min=1, kingdee_min=Counter())
        print(f"documents standing in Kingdee: {len(kingdee.records('SAL_OUTSTOCK'))} SAL_OUTSTOCK "
              f"(of {args.trades:,} trades that can post); wall {time.perf_counter() - bench.began:.0f} s in all")


def split(total: int, size: int) -> list[int]:
    return [min(size, total - start) for start in range(0, total, size)] if total else []


def slice_counts(jikeyun: Any, start: datetime, end: datetime, days: float) -> list[int]:
    """Trades modified in each slice of at most ``days`` days of ``[start, end)``."""
    moments = [datetime.strptime(t["gmtModified"], "%Y-%m-%d %H:%M:%S").replace(tzinfo=BEIJING)
               for t in jikeyun.trades.records.values()]
    counts, low = [], start
    while low < end:
        high = min(low + timedelta(days=days), end)
        counts.append(sum(1 for m in moments if low <= m < high))
        low = high
    return counts


def prepare_base_data(jikeyun: Any, goods_scheme: Any, waiting: int) -> list[str]:
    """Every SKU in a unit the goods scheme's table maps (as the demo does); ``waiting`` SKUs blocked up, so the goods
    scheme never creates them: their barcodes, for the trades that wait."""
    goods, units = jikeyun.goods, goods_scheme.lookups["unit"].values
    for sku in list(goods.records.values()):
        if sku["unitName"] not in units:
            goods.edit_sku(sku["skuId"], unitName="件", modified_at=BASE_MODIFIED[0])
    blocked = [sku for sku in goods.records.values() if not int(sku["isBlockup"]) and not int(sku["isDelete"])
               and not int(sku["skuIsBlockup"])][-max(waiting, 1):]
    for sku in blocked[:waiting]:
        goods.block_sku(sku["skuId"], modified_at=BASE_MODIFIED[0])
    return [sku["skuBarcode"] for sku in blocked[:waiting]]


class Bench:
    def __init__(self, jikeyun: Any, kingdee: Any, bag: Any, trades_method: str) -> None:
        self.jikeyun, self.kingdee, self.bag, self.method = jikeyun, kingdee, bag, trades_method
        self.began = time.perf_counter()

    def run(self, dag: Any, logical_date: datetime, full_resync: bool = False) -> Any:
        from jikeyun_kingdee.local_runs import run_dag

        dag = self.bag.get_dag(dag) if isinstance(dag, str) else dag
        dag_run = run_dag(dag, logical_date, run_conf={"full_resync": True} if full_resync else None)
        if dag_run.state != "success":
            states = {ti.task_id: ti.state for ti in dag_run.get_task_instances()}
            raise SystemExit(f"{dag.dag_id} at {logical_date}: {dag_run.state} {states}")
        return dag_run

    def monthly_dag(self, scheme: Any) -> Any:
        """The document DAG with one window a month (30 days in November), its base-data waits over at once: a
        backfill of the month in one run (the sync ledger is the scheme's, so it knows what was posted)."""
        from jikeyun_kingdee.dag_factory import build_dag

        assert scheme.base_data is not None
        return build_dag(scheme.model_copy(update={
            "schedule": "0 0 1 * *", "base_data": scheme.base_data.model_copy(update={"wait_minutes": 0})}))

    def case(self, title: str, dag: Any, logical_date: datetime, *, jikeyun_min: int,
             kingdee_min: Counter[str]) -> None:
        from jikeyun_kingdee.local_runs import return_value_of

        before = self.jikeyun_calls()
        self.kingdee.reset_counts()
        started = time.perf_counter()
        dag_run = self.run(dag, logical_date)
        seconds = time.perf_counter() - started
        jikeyun = self.jikeyun_calls() - before
        kingdee = Counter({k: v for k, v in self.kingdee.calls.items() if not k.startswith("fault:")})
        writes = sum(v for k, v in kingdee.items() if k not in ("ValidateUser", "ExecuteBillQuery", "View"))
        detail = ", ".join(f"{e} {kingdee.get(e, 0)}/{kingdee_min.get(e, 0)}"
                           for e in sorted(set(kingdee) | set(kingdee_min))) or "no call"
        summary = return_value_of(dag_run, "report") or {}
        counts = {k: v for k, v in summary.items()
                  if k in ("fetched", "filtered_out", "created", "exists", "unchanged", "waiting",
                           "changed_after_posting", "rejected") and v}
        print(f"{title:<46}{jikeyun:>8}{jikeyun_min:>5}{sum(kingdee.values()):>9}{sum(kingdee_min.values()):>5}"
              f"{writes:>8}  [{detail}] {counts} {seconds:.1f} s")

    def jikeyun_calls(self) -> int:
        return sum(v for (_, method), v in self.jikeyun.day_calls.items() if method == self.method)


if __name__ == "__main__":
    main()
