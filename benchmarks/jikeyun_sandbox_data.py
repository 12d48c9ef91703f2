"""How fast the Jikeyun sandbox makes and serves its goods and trades: generation time of the catalogue and the
trades, and the median time of one ``erp.storage.goodslist`` / ``oms.trade.fullinfoget`` page over HTTP against the
minimum, the sandbox's own round trip (``ping`` on a kept-alive connection). A Python calibration loop is printed
first, so figures from a loaded machine can be read against it.

Run: ``.venv/bin/python benchmarks/jikeyun_sandbox_data.py [--quick]`` (quick: 10,000 SKUs and 2,000 trades
instead of 100,000 and 20,000)
"""

from __future__ import annotations

import os
import tempfile

os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="jk-bench-airflow-"))  # the hook module imports Airflow

import argparse
import statistics
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pendulum
import requests

from jikeyun_kingdee.hooks.jikeyun import compact_json, sign
from jikeyun_kingdee.sandbox._http import round_trip_ms
from jikeyun_kingdee.sandbox.jikeyun import BEIJING, JikeyunSandbox, generate_warehouses
from jikeyun_kingdee.sandbox.jikeyun_goods import GOODS_METHOD, generate_catalogue
from jikeyun_kingdee.sandbox.jikeyun_trades import TRADES_METHOD, generate_trades

#: every generated time (goods and trades) lies in these two months
TRADES_FROM, TRADES_TO = datetime(2025, 1, 1, tzinfo=BEIJING), datetime(2025, 3, 1, tzinfo=BEIJING)


def seconds(work: Callable[[], Any]) -> tuple[float, Any]:
    began = time.perf_counter()
    result = work()
    return time.perf_counter() - began, result


def call(session: requests.Session, sandbox: JikeyunSandbox, method: str, biz: dict[str, Any]) -> dict[str, Any]:
    """One signed call on a kept-alive connection (as the hook makes them); the answer's ``result.data``."""
    params = {"method": method, "appkey": sandbox.appkey, "version": "v1.0", "contenttype": "json",
              "timestamp": pendulum.now(BEIJING).format("YYYY-MM-DD HH:mm:ss"), "bizcontent": compact_json(biz)}
    envelope = session.post(sandbox.url, data={**params, "sign": sign(params, sandbox.appsecret)}, timeout=60).json()
    assert envelope["code"] == 200, envelope
    data: dict[str, Any] = envelope["result"]["data"]
    return data


def median_ms(session: requests.Session, sandbox: JikeyunSandbox, method: str, biz: dict[str, Any],
              n: int = 15) -> float:
    times = []
    for _ in range(n):
        began = time.perf_counter()
        call(session, sandbox, method, biz)
        times.append((time.perf_counter() - began) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    skus, trades = (10_000, 2_000) if args.quick else (100_000, 20_000)

    calibration, _ = seconds(lambda: [sum(range(1000)) for _ in range(10_000)])
    print(f"calibration: 10,000 × sum(range(1000)) in {calibration:.2f} s (an idle modern machine: about 0.1 s)")
    took, catalogue = seconds(lambda: generate_catalogue(skus=skus, seed=7))
    print(f"generate_catalogue(skus={skus:,}): {took:.2f} s, {took / skus * 1e6:.1f} µs a SKU, "
          f"{len({r['goodsNo'] for r in catalogue}):,} goods")
    warehouses = generate_warehouses(200)
    took, _ = seconds(lambda: generate_trades(trades, skus=catalogue, warehouses=warehouses, modified_from=TRADES_FROM,
                                              modified_to=TRADES_TO))
    print(f"generate_trades({trades:,}): {took:.2f} s, {took / trades * 1e6:.0f} µs a trade")

    with JikeyunSandbox(warehouses=200, skus=skus, trades=trades, modified_from=TRADES_FROM,
                        modified_to=TRADES_TO, daily_quota={}) as sandbox, requests.Session() as session:
        floor = round_trip_ms(sandbox.url)
        print(f"minimum: the sandbox's round trip on a kept-alive connection, {floor:.2f} ms (median of 50)")
        print(f"{'one page, median of 15 signed calls on a kept-alive connection':<66}{'ms':>8}")
        goods_pages: dict[str, dict[str, Any]] = {
            "goods, maxSkuId cursor mid-catalogue, 200 rows": {
                "pageIndex": 0, "pageSize": 200, "maxSkuId": sorted(sandbox.goods.records)[skus // 2]},
            "goods, SKU window of one month, 200 rows (scans until 200 match)": {
                "pageIndex": 0, "pageSize": 200, "startDateModifiedSku": "2025-01-15 00:00:00",
                "endDateModifiedSku": "2025-02-15 00:00:00"},
            "goods, both windows of one day (scans every SKU, few rows)": {
                "pageIndex": 0, "pageSize": 200, "startDateModifiedSku": "2025-02-01 00:00:00",
                "endDateModifiedSku": "2025-02-02 00:00:00", "startDateModifiedGoods": "2025-01-01 00:00:00",
                "endDateModifiedGoods": "2025-03-01 00:00:00"},
        }
        for label, biz in goods_pages.items():
            print(f"{label:<66}{median_ms(session, sandbox, GOODS_METHOD, biz):>8.1f}")
        week = {"startModified": "2025-02-01 00:00:00", "endModified": "2025-02-08 00:00:00"}
        fields = "tradeNo,tradeStatus,shopcode,warehouseCode,consignTime,gmtModified,goodsDetail.goodsNo," \
                 "goodsDetail.barcode,goodsDetail.sellCount,goodsDetail.shareFavourableAfterFee,scrollId"
        first = call(session, sandbox, TRADES_METHOD, {**week, "fields": fields, "pageSize": 200, "scrollId": ""})
        trade_pages: dict[str, dict[str, Any]] = {
            "trades, a week by offset, 200 trades with 8 fields and 4 line fields": {
                **week, "fields": fields, "pageSize": 200, "pageIndex": 0},
            "trades, the next scroll page of that week (a snapshot)": {
                "fields": fields, "pageSize": 200, "scrollId": first["scrollId"]},
        }
        for label, biz in trade_pages.items():
            print(f"{label:<66}{median_ms(session, sandbox, TRADES_METHOD, biz):>8.1f}")


if __name__ == "__main__":
    main()
