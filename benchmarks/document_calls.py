"""API calls of the sales outbound scheme (``sales_outbound_I0134``: oms.trade.fullinfoget → SAL_OUTSTOCK), the
steps of a run without Airflow (extract → transform → filter → load, each with its own hooks, one ledger), against
both sandboxes over real HTTP, case by case, against the minimum:

1. one hourly window of N shipped trades (plus as many not shipped), the base data loaded by the warehouse and goods
   schemes' own steps (their ledgers vouch for warehouses and materials);
2. the same window again (a rerun): nothing written;
3. a 30-day backfill over those windows (7-day slices): nothing written;
4. a next window with trades waiting for a material the goods scheme has not created: no Kingdee call.

Minimum: Jikeyun ⌈(n+1)/P⌉ calls per window slice (n trades modified in it, P = 200). Kingdee, per load chunk (a
mapped load task: its own login) of d new documents: ⌈d/L⌉ number look-ups (L = lookup_limit), one query per
referenced form whose numbers no base-data ledger vouches for (units and customers: 2), ⌈d/B⌉ BatchSave
(B = rows_per_batch); once per run the target check (a login and 2 queries); nothing for what the ledger knows;
nothing for a document waiting for base data no ledger has seen arrive.

``python benchmarks/document_calls.py [--trades 2000]``
"""

from __future__ import annotations

import os

os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING")

import argparse
import json
import math
import tempfile
import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, cast

os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="jk-bench-airflow-"))

from jikeyun_kingdee import pipeline
from jikeyun_kingdee.documents import BaseData, load_documents
from jikeyun_kingdee.hooks.jikeyun import JikeyunHook
from jikeyun_kingdee.hooks.kingdee import KingdeeHook
from jikeyun_kingdee.items import LoadItem
from jikeyun_kingdee.ledger import SyncLedger
from jikeyun_kingdee.sandbox.jikeyun import JikeyunSandbox
from jikeyun_kingdee.sandbox.kingdee import KingdeeSandbox
from jikeyun_kingdee.scheme import Scheme, load_scheme
from jikeyun_kingdee.staging import ObjectStoragePath

SCHEMES = Path(__file__).resolve().parents[1] / "include" / "schemes"
UTC = timezone.utc
MODIFIED_FROM, MODIFIED_TO = datetime(2026, 10, 1, tzinfo=UTC), datetime(2026, 11, 1, tzinfo=UTC)
HOUR = MODIFIED_TO + timedelta(hours=30)  # the window of case 1: [HOUR - 1 h, HOUR)
TRADES = "oms.trade.fullinfoget"


class Run:
    """The steps of one scheme's run over both sandboxes, counting what each sandbox answered."""

    def __init__(self, jikeyun: JikeyunSandbox, kingdee: KingdeeSandbox, staging: Path) -> None:
        self.jikeyun, self.kingdee, self.staging = jikeyun, kingdee, staging
        self.schemes = {s.name: s for s in map(load_scheme, sorted(SCHEMES.glob("*.yaml")))}

    def __call__(self, name: str, start: datetime | None, end: datetime | None) -> dict[str, Any]:
        scheme = self.schemes[name]
        folder = ObjectStoragePath(f"file://{self.staging}/{name}/{(end or MODIFIED_TO).isoformat()}/{time.time()}")
        jk, kd = Counter(self.jikeyun.calls), Counter(self.kingdee.calls)
        extracted = pipeline.extract(scheme, JikeyunHook(), folder, start, end)
        transformed = pipeline.transform(scheme, folder, extracted)
        with SyncLedger(name) as ledger:
            waiting = [cast(LoadItem, w.item) for w in ledger.waiting().values()]
            filtered = pipeline.filter_rows(scheme, folder, transformed, waiting)
            documents = scheme.target.kind == "document"
            if pipeline.has_pending_writes(ledger, filtered["chunks"], documents=documents):
                pipeline.check_target(scheme, KingdeeHook())
            outcomes: Counter[str] = Counter()
            for chunk in filtered["chunks"]:
                if documents:
                    loaded = load_documents(scheme, KingdeeHook(), ledger, folder, chunk, "bench", self.base(scheme),
                                            end or datetime.now(UTC))
                else:
                    loaded = pipeline.load_chunk(scheme, KingdeeHook(), ledger, folder, chunk, "bench")
                outcomes.update(loaded["counts"])
        jikeyun = Counter(self.jikeyun.calls) - jk
        kingdee = Counter(self.kingdee.calls) - kd
        kingdee = Counter({k: v for k, v in kingdee.items() if not k.startswith("fault")})
        return {"jikeyun": dict(jikeyun), "kingdee": dict(kingdee), "outcomes": dict(outcomes),
                "filter": filtered["counts"]}

    def base(self, scheme: Scheme) -> dict[str, BaseData]:
        assert scheme.base_data is not None
        writers = {self.schemes[n].target.form_id: n for n in scheme.base_data.schemes}
        return {form: BaseData(form, scheme.target.organisation if form in scheme.base_data.organisation_forms
                               else None, SyncLedger(writers[form]) if form in writers else None)
                for form in scheme.target.field_map.referenced_forms}


def shipped_trades(jikeyun: JikeyunSandbox, count: int, at: datetime, *, barcodes: list[str],
                   warehouse: dict[str, Any]) -> list[dict[str, Any]]:
    """``count`` shipped trades of 1 to 3 lines over ``barcodes``, modified in the minute before ``at``."""
    trades = []
    for i in range(count):
        lines = [{"barcode": barcodes[(i * 7 + j) % len(barcodes)], "goodsMemo": ""} for j in range(1 + i % 3)]
        trades.append(jikeyun.trades.add_trade(
            lines=lines, status=6000 if i % 2 else 9090, modified_at=at - timedelta(seconds=1 + i % 50),
            shopcode=("TM001", "JD001", "PF001")[i % 3], warehouseCode=warehouse["warehouseCode"],
            warehouseId=warehouse["warehouseId"], isDelete=0))
    return trades


def line(case: str, result: dict[str, Any], jikeyun_min: int, kingdee_min: int) -> str:
    jk, kd = sum(result["jikeyun"].values()), sum(result["kingdee"].values())
    return (f"{case:<52} Jikeyun {jk:>4} (min {jikeyun_min:>4})  Kingdee {kd:>4} (min {kingdee_min:>4})  "
            f"{json.dumps(result['kingdee'], sort_keys=True)}  {json.dumps(result['outcomes'], sort_keys=True)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trades", type=int, default=2000, help="shipped trades in the window of case 1")
    args = parser.parse_args()
    n = args.trades
    staging = Path(tempfile.mkdtemp(prefix="jk-bench-documents-"))
    os.environ["AIRFLOW_CONN_JIKEYUN_KINGDEE_LEDGER"] = json.dumps(
        {"conn_type": "sqlite", "host": str(staging / "ledger.db")})
    with JikeyunSandbox(warehouses=20, goods=200, seed=47, modified_from=MODIFIED_FROM,
                        modified_to=MODIFIED_TO) as jikeyun, KingdeeSandbox() as kingdee:
        os.environ["AIRFLOW_CONN_JIKEYUN_DEFAULT"] = json.dumps({
            "conn_type": "jikeyun", "host": jikeyun.url, "login": jikeyun.appkey, "password": jikeyun.appsecret,
            "extra": {"max_calls_per_second": 1000}})
        os.environ["AIRFLOW_CONN_KINGDEE_DEFAULT"] = json.dumps({
            "conn_type": "kingdee", "host": f"{kingdee.url}/k3cloud/", "login": "webapi",
            "password": kingdee.password, "extra": {"acct_id": kingdee.acct_id, "auth": "password"}})
        units = {"个", "件", "瓶", "箱", "千克", "台"}
        for sku in list(jikeyun.goods.records.values()):
            if sku["unitName"] not in units:
                jikeyun.goods.edit_sku(sku["skuId"], unitName="件", modified_at=MODIFIED_FROM + timedelta(hours=1))
        run = Run(jikeyun, kingdee, staging)
        run("warehouse_I0134", None, None)
        run("goods_I0134", None, None)
        ready = {m["FNumber"] for m in kingdee.records("BD_MATERIAL", org="I0134")
                 if m["FDocumentStatus"] == "C" and m["FForbidStatus"] == "A"}
        barcodes = sorted(s["skuBarcode"] for s in jikeyun.goods.records.values() if s["skuBarcode"] in ready)
        stocks = {s["FNumber"] for s in kingdee.stocks(org="I0134") if s["FForbidStatus"] == "A"}
        warehouse = next(w for w in jikeyun.warehouses.values() if w["warehouseCode"] in stocks)
        shipped_trades(jikeyun, n, HOUR, barcodes=barcodes, warehouse=warehouse)
        for i in range(n):  # as many not shipped: read, filtered out, never written
            jikeyun.trades.add_trade(status=4110, modified_at=HOUR - timedelta(seconds=1 + i % 50))
        target = run.schemes["sales_outbound_I0134"].target
        window = (HOUR - timedelta(hours=1), HOUR)
        read = math.ceil((2 * n + 1) / 200)
        print(f"sales outbound: {n} shipped + {n} not shipped trades in one hour; P = 200, "
              f"B = {target.rows_per_batch} documents a BatchSave, L = {target.lookup_limit} numbers a look-up")
        first = run("sales_outbound_I0134", *window)
        chunks = first["filter"]["chunks"]  # load tasks: each logs in, looks its numbers up, asks units, customers
        per_chunk = math.ceil(n / chunks)
        kd_min = 1 + 2 + chunks * (1 + math.ceil(per_chunk / target.lookup_limit) + 2
                                   + math.ceil(per_chunk / target.rows_per_batch))
        print(line(f"1 one window, base data present ({chunks} load chunks)", first, read, kd_min))
        print(line("2 the same window again (rerun)", run("sales_outbound_I0134", *window), read, 0))
        backfill = (HOUR - timedelta(days=30), HOUR)
        slices = math.ceil(30 / 7)
        print(line(f"3 a 30-day backfill ({slices} slices of 7 days)", run("sales_outbound_I0134", *backfill),
                   slices - 1 + read, 0))
        goods = jikeyun.goods.add_goods(skus=[{"unitName": "瓶", "skuIsBlockup": 0}], goodsName="尚未同步的货品",
                                        isBlockup=0, isDelete=0, modified_at=HOUR)
        later = HOUR + timedelta(hours=1)
        shipped_trades(jikeyun, 20, later, barcodes=[goods[0]["skuBarcode"]], warehouse=warehouse)
        waiting = run("sales_outbound_I0134", HOUR, later)
        # logins of the check and the load, the check, numbers, units, customers, the material no ledger vouches for
        print(line("4a next window: 20 trades lack a new material", waiting, 1, 2 + 2 + 1 + 2 + 1))
        print(line("4b the window after: still lacking, no Kingdee call",
                   run("sales_outbound_I0134", later, later + timedelta(hours=1)), 1, 0))
        run("goods_I0134", HOUR, later)
        print(line("4c after the goods scheme created it: posted",
                   run("sales_outbound_I0134", later + timedelta(hours=1), later + timedelta(hours=2)), 1,
                   1 + 1 + 2 + 1))  # login, numbers, units and customers, one BatchSave
        posted = Counter(d["FBillNo"] for d in kingdee.records("SAL_OUTSTOCK", org="I0134"))
        print(f"documents in Kingdee: {len(posted)}, posted twice: {sum(1 for c in posted.values() if c > 1)}")


if __name__ == "__main__":
    main()
