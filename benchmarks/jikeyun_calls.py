"""Jikeyun API calls of the warehouse source's window read (``source_paging.read_window``, style ``time_keyset``) on
the sandbox, against the minimum ⌈(n+1)/P⌉.

n is the number of records the sandbox holds in the window, P the page size; the minimum is what offset paging
needs when nothing changes during the read (the ``+1``: a full last page needs one more, empty, page to end). Each
case runs on a fresh sandbox; "lost" counts records that were in the window, never modified, and not returned.

The formulas of every strategy (``jikeyun_kingdee.source_paging``), per pass of a window (one per window pair) and
per slice (``max_window_days``):

* ``time_keyset`` (warehouses): sorted server ⌈(n+1)/P⌉ (within 1.1× as long as a page spans more than a few
  seconds); a bulk second about one call per P - 3 records; an unsorted server 2F + 1 (bisection, F ranges that
  answered a full page). The figures below.
* ``id_cursor`` (goods, ``maxSkuId``): ⌈(n+1)/P⌉ per pass when the server honours the cursor; when it ignores it,
  ⌈(n+1)/(P-2)⌉ overlapping offset pages plus the page that showed it, plus one pass per shift between two calls.
  A goods window is two passes (goods and SKU modification times), so about 2⌈(n+1)/P⌉ against 1,000 calls a day.
* ``scroll`` (trades, ``scrollId``): Σ over slices of ⌈(n_s+1)/P⌉ — at least one call per slice of ≤ 7 days — plus
  the calls of a slice read again after its scroll expired.
* ``offset`` (a source without a window): ⌈(n+1)/P⌉.

The goods source (``include/schemes/goods_I0134.yaml``: ``id_cursor`` on ``maxSkuId``, two window passes) is
measured the same way, against 2·⌈(n+1)/P⌉ for a window of n changed SKUs (each pass reads at most the n SKUs, in
⌈(n_pass+1)/P⌉ calls), and a first load that needs more calls than the daily quota allows is read over several
Beijing days (the sandbox's clock travelled to each reset), resumed from its saved position each time.

Run: ``.venv/bin/python benchmarks/jikeyun_calls.py [--quick]``
"""

from __future__ import annotations

import os

os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING")  # figures only, not one log line per API call

import argparse
import functools
import json
import logging
import math
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, TypedDict

os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="jk-bench-airflow-"))

import jikeyun_kingdee
from jikeyun_kingdee.compat import ObjectStoragePath
from jikeyun_kingdee.hooks.jikeyun import JikeyunHook
from jikeyun_kingdee.sandbox._http import round_trip_ms
from jikeyun_kingdee.sandbox.jikeyun import JikeyunSandbox
from jikeyun_kingdee.scheme import SourceSpec, load_scheme
from jikeyun_kingdee.source_paging import read_window

METHOD, LIST_KEY, ALL = "erp.warehouse.get", "warehouseInfo", {"includeDeleteAndBlockup": 1}
HOUR = (datetime(2025, 6, 1, 0, 0, tzinfo=timezone.utc), datetime(2025, 6, 1, 1, 0, tzinfo=timezone.utc))
DENSE_FROM = datetime(2025, 5, 1, tzinfo=timezone.utc)
Window = tuple[datetime, datetime] | None


def ms(moment: datetime) -> int:
    return round(moment.timestamp() * 1000)


def in_window(sandbox: JikeyunSandbox, window: Window) -> set[str]:
    if window is None:
        return set(sandbox.warehouses)
    start, end = (ms(t) for t in window)
    return {r["warehouseCode"] for r in sandbox.records.values() if start <= r["gmtModified"] < end}


def read(sandbox: JikeyunSandbox, window: Window, page_size: int) -> tuple[set[str], int, float]:
    """Codes returned, calls made and seconds taken by one window read of the warehouse source."""
    os.environ["AIRFLOW_CONN_JIKEYUN_DEFAULT"] = json.dumps({
        "conn_type": "jikeyun", "host": sandbox.url, "login": sandbox.appkey, "password": sandbox.appsecret,
    })
    hook = JikeyunHook()
    source = SourceSpec.model_validate({"method": METHOD, "list_path": LIST_KEY, "page_size": page_size,
                                        "request": ALL, "id_field": "warehouseCode"})
    start, end = window or (None, None)
    began = time.perf_counter()
    codes = {r["warehouseCode"] for r in read_window(hook.call, source, start, end)}
    return codes, hook.call_counts[METHOD], time.perf_counter() - began


def bulk_edit(sandbox: JikeyunSandbox, count: int, moment: datetime) -> None:
    """``count`` warehouses edited in one bulk action: all get the same modification time."""
    sandbox.bulk_edit(modified_at=moment, count=count, warehouseName="批量改名")


def spread_edits(sandbox: JikeyunSandbox, count: int) -> None:
    """``count`` warehouses edited one by one over the hour."""
    for i, code in enumerate(sorted(sandbox.warehouses)[:count]):
        sandbox.modify_warehouse(code, modified_at=HOUR[0] + timedelta(seconds=70 * i + 3))


class _Spread(TypedDict, total=False):
    modified_from: datetime
    modified_to: datetime


def case(label: str, *, warehouses: int, window: Window, page_size: int = 200, sort: bool = True,
         prepare: Callable[[JikeyunSandbox], None] | None = None, modify_after_page: int | None = None,
         span: timedelta | None = None) -> None:
    """One read on a fresh sandbox; ``span``: the generated modification times lie in that much time from
    2025-05-01 (default: all of 2025)."""
    spread: _Spread = {} if span is None else {"modified_from": DENSE_FROM, "modified_to": DENSE_FROM + span}
    with JikeyunSandbox(warehouses=warehouses, sort_by_modified=sort, **spread) as sandbox:
        if prepare:
            prepare(sandbox)
        expected = in_window(sandbox, window)
        before = {r["warehouseId"]: r["gmtModified"] for r in sandbox.records.values()}
        if modify_after_page is not None:
            sandbox.modify_during_paging(after_page=modify_after_page)
        got, calls, seconds = read(sandbox, window, page_size)
        modified = {r["warehouseCode"] for r in sandbox.records.values()
                    if r["gmtModified"] != before[r["warehouseId"]]}
        n = len(expected)
        minimum = math.ceil((n + 1) / page_size)
        lost = len(expected - got - modified)
        print(f"{label:<44}{n:>7}{page_size:>5}{calls:>7}{minimum:>9}{calls / minimum:>7.2f}{lost:>6}{seconds:>8.2f}")


# -- goods: erp.storage.goodslist, the shipped goods scheme -------------------------------------------------------
GOODS_METHOD = "erp.storage.goodslist"


def goods_scheme() -> Any:
    root = Path(jikeyun_kingdee.__file__).resolve().parents[2]
    return load_scheme(root / "include" / "schemes" / "goods_I0134.yaml")


def connect(sandbox: JikeyunSandbox) -> JikeyunHook:
    os.environ["AIRFLOW_CONN_JIKEYUN_DEFAULT"] = json.dumps({
        "conn_type": "jikeyun", "host": sandbox.url, "login": sandbox.appkey, "password": sandbox.appsecret,
    })
    return JikeyunHook()


def changed_skus(sandbox: JikeyunSandbox, window: tuple[datetime, datetime]) -> set[str]:
    start, end = (ms(t) for t in window)
    return {r["skuId"] for r in sandbox.goods.records.values()
            if start <= r["goodsGmtModified"] < end or start <= r["skuGmtModified"] < end}


def goods_case(label: str, *, skus: int, goods_edits: int = 0, sku_edits: int = 0, page_size: int = 200,
               edit_during_read: bool = False) -> None:
    """One hour of a goods window: ``goods_edits`` goods edited at goods level (each with all its SKUs) and
    ``sku_edits`` SKUs at SKU level (the first ones by skuId, so the two sets overlap)."""
    source = goods_scheme().source.model_copy(update={"page_size": page_size})
    with JikeyunSandbox(warehouses=0, skus=skus, modified_from=DENSE_FROM, modified_to=HOUR[0]) as sandbox:
        goods = sandbox.goods
        goods.bulk_edit_goods(modified_at=HOUR[0] + timedelta(minutes=10), count=goods_edits, goodsMemo="改")
        goods.bulk_edit_skus(modified_at=HOUR[0] + timedelta(minutes=20), count=sku_edits, memo="改")
        expected = changed_skus(sandbox, HOUR)
        before = {r["skuId"]: (r["goodsGmtModified"], r["skuGmtModified"]) for r in goods.records.values()}
        if edit_during_read:
            goods.modify_during_paging(after_page=0, level="sku", count=1)
        hook = connect(sandbox)
        began = time.perf_counter()
        got = {r["skuId"] for r in read_window(hook.call, source, *HOUR)}
        seconds = time.perf_counter() - began
        moved = {r["skuId"] for r in goods.records.values()
                 if (r["goodsGmtModified"], r["skuGmtModified"]) != before[r["skuId"]]}
        n, calls = len(expected), hook.call_counts[GOODS_METHOD]
        bound = 2 * math.ceil((n + 1) / page_size)
        lost = len(expected - got - moved)
        print(f"{label:<44}{n:>7}{page_size:>5}{calls:>7}{bound:>9}{calls / bound:>7.2f}{lost:>6}{seconds:>8.2f}")


def goods_first_load(skus: int, quota: int, page_size: int = 200) -> None:
    """A first load of ``skus`` SKUs (no window: one pass by maxSkuId) with ``quota`` calls a Beijing day: the read
    stops at the quota answer, waits for the reset (here: the sandbox's clock travels there) and goes on."""
    from jikeyun_kingdee.pipeline import SourceQuotaExhausted, extract

    logging.getLogger("jikeyun_kingdee.pipeline").setLevel(logging.ERROR)  # one warning per quota stop otherwise
    scheme = goods_scheme()
    with JikeyunSandbox(warehouses=0, skus=skus, daily_quota={GOODS_METHOD: quota}) as sandbox, \
            tempfile.TemporaryDirectory() as tmp:
        sandbox.travel(datetime(2026, 11, 2, 2, tzinfo=timezone.utc))  # 10:00 in Beijing
        folder = ObjectStoragePath(f"file://{tmp}")
        days, began = 1, time.perf_counter()
        while True:
            try:
                manifest = extract(scheme, connect(sandbox), folder, None, None, resume=days > 1)
                break
            except SourceQuotaExhausted as stopped:
                days += 1
                sandbox.travel(stopped.resets_at + timedelta(seconds=1))
        seconds = time.perf_counter() - began
        least = math.ceil((skus + 1) / page_size)
        answered = sum(sum(day.values()) for day in manifest["calls_by_day"].values())
        print(f"first load of {skus:,} SKUs, {quota:,} calls a day: {manifest['fetched']:,} read in {answered:,} "
              f"answered calls (minimum ceil((n+1)/P) = {least:,}) + {manifest['quota_waits']} refused, over {days} "
              f"Beijing days (ceil({least:,}/{quota:,}) = {math.ceil(least / quota)}); {seconds:.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="skip the 10,000-warehouse cases")
    args = parser.parse_args()
    big = 1000 if args.quick else 10_000
    with JikeyunSandbox(warehouses=10) as sandbox:
        print(f"sandbox round trip on a kept-alive connection: {round_trip_ms(sandbox.url):.2f} ms (median of 50)")
    print(f"calls of {METHOD}; minimum = ceil((n+1)/P); lost = unmodified records of the window not returned")
    print(f"{'case':<44}{'n':>7}{'P':>5}{'calls':>7}{'minimum':>9}{'ratio':>7}{'lost':>6}{'wall s':>8}")
    for n in (1000, big):
        case(f"full sync {n:,}", warehouses=n, window=None)
    case(f"full sync {big:,}, 20 records a second", warehouses=big, window=None, span=timedelta(seconds=big // 20))
    case("one-hour window, 50 edits", warehouses=big, window=HOUR, prepare=lambda s: spread_edits(s, 50))
    for size, page_size in ((50, 200), (50, 50), (1000, 200)):
        case(f"one-hour window, bulk second of {size:,}", warehouses=big, window=HOUR, page_size=page_size,
             prepare=functools.partial(bulk_edit, count=size, moment=HOUR[0] + timedelta(minutes=20)))
    case("empty one-hour window", warehouses=0, window=HOUR)
    for n in (1000, big):
        case(f"full sync {n:,}, server does not sort", warehouses=n, window=None, sort=False)
    case("bulk second of 1,000, server does not sort", warehouses=big, window=HOUR, sort=False,
         prepare=lambda s: bulk_edit(s, 1000, HOUR[0] + timedelta(minutes=20)))
    print("concurrent modification (the first record of the page is edited right after it is served):")
    case(f"full sync {big:,}, edit after page 0", warehouses=big, window=None, modify_after_page=0)
    case("bulk second of 1,000, edit after page 1", warehouses=big, window=HOUR, modify_after_page=1,
         prepare=lambda s: bulk_edit(s, 1000, HOUR[0] + timedelta(minutes=20)))
    case("full sync 1,000, no sort, edit after page 0", warehouses=1000, window=None, sort=False,
         modify_after_page=0)

    print(f"\ncalls of {GOODS_METHOD} (goods scheme: two passes by maxSkuId); bound = 2*ceil((n+1)/P), n = SKUs "
          "changed in the hour")
    print(f"{'case':<44}{'n':>7}{'P':>5}{'calls':>7}{'bound':>9}{'ratio':>7}{'lost':>6}{'wall s':>8}")
    skus = 2000 if args.quick else 20_000
    goods_case("empty hour", skus=skus)
    goods_case("50 goods edited (goods level)", skus=skus, goods_edits=50)
    goods_case("300 SKUs edited (SKU level)", skus=skus, sku_edits=300)
    goods_case("500 goods and 1,000 SKUs, overlapping", skus=skus, goods_edits=500, sku_edits=1000)
    goods_case("1,000 SKUs, an edit after page 0", skus=skus, sku_edits=1000, edit_during_read=True)
    goods_first_load(skus, quota=max(2, math.ceil((skus + 1) / 200) // 3))
    print("a first load of 400,000 SKUs: ceil(400,001/200) = 2,001 calls = 3 Beijing days at 1,000 calls a day")


if __name__ == "__main__":
    main()
