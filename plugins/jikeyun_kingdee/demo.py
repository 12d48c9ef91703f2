"""The main job on a laptop: the warehouse DAG against both sandboxes, on SQLite and local files.

``make demo`` (``python -m jikeyun_kingdee.demo``) starts the Jikeyun and Kingdee sandboxes on loopback, migrates a
fresh Airflow metadata database under ``.demo/`` (and the target pools), runs the DAG of
``include/schemes/warehouse_I0134.yaml`` twice with ``dag.test()`` — the initial full load, then one hourly window in
which warehouses were added, renamed and blocked up — then its reconcile DAG after a hand edit in Kingdee; then the
goods DAG of ``include/schemes/goods_I0134.yaml`` (Jikeyun goods → BD_MATERIAL): its initial load and one hourly
window (a goods renamed, a SKU's unit changed, a SKU blocked up); then the sales-outbound DAG of
``include/schemes/sales_outbound_I0134.yaml`` (shipped Jikeyun trades → SAL_OUTSTOCK documents) over the same hourly
window, after the warehouse and goods runs of that window: a few shipped trades are posted, one whose material was
just blocked up waits. It prints each run's summary and what now stands in the Kingdee sandbox.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from jikeyun_kingdee.sandbox.jikeyun import JikeyunSandbox
    from jikeyun_kingdee.sandbox.kingdee import KingdeeSandbox

REPO = Path(__file__).resolve().parents[2]
MODIFIED_FROM = datetime(2026, 10, 1, tzinfo=timezone.utc)
MODIFIED_TO = datetime(2026, 11, 1, tzinfo=timezone.utc)
SCHEME_FILE = "warehouse_I0134.yaml"  # the DAGs run are these schemes'
GOODS_SCHEME_FILE = "goods_I0134.yaml"
DOCUMENT_SCHEME_FILE = "sales_outbound_I0134.yaml"


def configure_airflow(home: Path, dags_folder: Path) -> None:
    """Environment of an embedded Airflow: SQLite, local staging; must run before Airflow is imported."""
    os.environ.update({
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": os.environ.get("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING"),
        "AIRFLOW__JIKEYUN_KINGDEE__STAGING_BASE": f"file://{home / 'staging'}",
    })


def connect(jikeyun: JikeyunSandbox, kingdee: KingdeeSandbox) -> None:
    """Airflow connections to the sandboxes, as ``AIRFLOW_CONN_*`` environment variables."""
    os.environ["AIRFLOW_CONN_JIKEYUN_DEFAULT"] = json.dumps({
        "conn_type": "jikeyun", "host": jikeyun.url, "login": jikeyun.appkey, "password": jikeyun.appsecret,
    })
    os.environ["AIRFLOW_CONN_KINGDEE_DEFAULT"] = json.dumps({
        "conn_type": "kingdee", "host": f"{kingdee.url}/k3cloud/", "login": kingdee.username,
        "password": kingdee.password,
        "extra": {"acct_id": kingdee.acct_id, "auth": "password"},
    })


def summary_of(dag_run: Any) -> dict[str, Any]:
    from jikeyun_kingdee.local_runs import return_value_of

    return return_value_of(dag_run, "report") or {}


def print_run(title: str, dag_run: Any) -> None:
    print(f"\n== {title}: run {dag_run.run_id} → {dag_run.state}")
    window = f"{dag_run.data_interval_start} → {dag_run.data_interval_end}"
    print(f"   data interval: {window}")
    never = datetime.max.replace(tzinfo=timezone.utc)
    for ti in sorted(dag_run.get_task_instances(), key=lambda t: (t.start_date or t.end_date or never, t.map_index)):
        name = ti.task_id if ti.map_index < 0 else f"{ti.task_id}[{ti.map_index}]"
        print(f"   {name:<14} {ti.state}")
    for key, value in summary_of(dag_run).items():
        if key != "rejected_keys" or value:
            print(f"   {key:<20} {value}")


def print_kingdee(kingdee: KingdeeSandbox, limit: int) -> None:
    stocks = sorted(kingdee.stocks(org="I0134"), key=lambda s: s["FNumber"])
    statuses: dict[str, int] = {}
    for stock in stocks:
        statuses[stock["FDocumentStatus"]] = statuses.get(stock["FDocumentStatus"], 0) + 1
    print(f"\n== Kingdee sandbox BD_STOCK of organisation I0134: {len(stocks)} warehouses, document status {statuses}")
    print(f"   {'FStockId':>8}  {'FNumber':<14} {'status':<6} FName")
    for stock in stocks[:limit]:
        print(f"   {stock['FStockId']:>8}  {stock['FNumber']:<14} {stock['FDocumentStatus']:<6} {stock['FName']}")
    if len(stocks) > limit:
        print(f"   … {len(stocks) - limit} more")
    calls = ", ".join(f"{op} {n}" for op, n in sorted(kingdee.calls.items()))
    print(f"   Kingdee calls: {calls}")


def print_materials(kingdee: KingdeeSandbox, limit: int) -> None:
    materials = sorted(kingdee.records("BD_MATERIAL", org="I0134"), key=lambda m: m["FNumber"])
    forbidden = sum(1 for m in materials if m["FForbidStatus"] == "B")
    print(f"\n== Kingdee sandbox BD_MATERIAL of organisation I0134: {len(materials)} materials, {forbidden} forbidden")
    print(f"   {'FNumber':<14} {'status':<6} {'unit':<6} FName / FSpecification")
    for material in materials[:limit]:
        status = material["FDocumentStatus"] + ("/禁用" if material["FForbidStatus"] == "B" else "")
        print(f"   {material['FNumber']:<14} {status:<6} {material['FBaseUnitId']!s:<6} "
              f"{material['FName']} / {material['FSpecification']}")
    if len(materials) > limit:
        print(f"   … {len(materials) - limit} more")


def sync_goods(bag: Any, schemes: Path, jikeyun: JikeyunSandbox, kingdee: KingdeeSandbox, first_window_end: datetime,
               show: int) -> tuple[list[Any], dict[str, Any]]:
    """The goods scheme: its initial load, then one hourly window; returns the DAG runs and the SKU blocked up in
    that window."""
    from jikeyun_kingdee.local_runs import run_dag
    from jikeyun_kingdee.scheme import load_scheme

    scheme = load_scheme(schemes / GOODS_SCHEME_FILE)
    dag = bag.get_dag(scheme.dag_id)
    goods = jikeyun.goods
    units = scheme.lookups["unit"].values
    odd = [sku for sku in goods.records.values() if sku["unitName"] not in units]
    for sku in odd:  # a unit the table lacks would reject its SKU, naming the unit: the demo keeps to the table
        goods.edit_sku(sku["skuId"], unitName="件", modified_at=MODIFIED_FROM)
    print(f"\nGoods: {len(goods.goods_nos)} goods, {len(goods.records)} SKUs; the scheme's unit table maps "
          f"{', '.join(units)} ({len(odd)} SKUs in other units given 件)")
    initial = run_dag(dag, first_window_end, run_conf={"full_resync": True})
    print_run("goods: initial load (full resync)", initial)

    def active(skus: list[dict[str, Any]]) -> bool:
        return all(not int(s["isBlockup"]) and not int(s["isDelete"]) and not int(s["skuIsBlockup"]) for s in skus)

    multi = [no for no in goods.goods_nos if len(goods.goods_skus(no)) > 1 and active(goods.goods_skus(no))]
    in_window = first_window_end + timedelta(minutes=20)
    goods.edit_goods(multi[0], goodsName=f"{goods.goods_skus(multi[0])[0]['goodsName']}（更名）", modified_at=in_window)
    sku = goods.goods_skus(multi[1])[0]
    goods.edit_sku(sku["skuId"], unitName="箱" if sku["unitName"] != "箱" else "个", modified_at=in_window)
    blocked = goods.goods_skus(multi[2])[0]
    goods.block_sku(blocked["skuId"], modified_at=in_window)
    hourly = run_dag(dag, first_window_end + timedelta(hours=1))
    print_run(f"goods: next hourly window (goods {multi[0]} renamed: {len(goods.goods_skus(multi[0]))} SKUs; "
              "1 SKU's unit changed; 1 SKU blocked up)", hourly)
    print_materials(kingdee, show)
    return [initial, hourly], blocked


def print_documents(kingdee: KingdeeSandbox, form: str, summary: dict[str, Any], limit: int) -> None:
    """The documents standing in Kingdee (number, customer, lines) and the records still waiting, with what each
    lacks (from the run's summary)."""
    documents = sorted(kingdee.records(form), key=lambda d: d["FBillNo"])
    print(f"\n== Kingdee sandbox {form}: {len(documents)} documents")
    for document in documents[:limit]:
        print(f"   {document['FBillNo']:<20} {document['FDocumentStatus']:<3} customer {document['FCustomerID']}  "
              f"date {document['FDate']}")
        for line in document.get("FEntity") or []:
            print(f"      {line['FMaterialID']!s:<16} {line['FRealQty']!s:>8} {line['FUnitID']!s:<6} "
                  f"stock {line['FStockID']}{'  (gift)' if line.get('FIsFree') else ''}")
    if len(documents) > limit:
        print(f"   … {len(documents) - limit} more")
    waiting = summary.get("waiting_records") or {}
    print(f"   waiting: {summary.get('waiting', 0)}" + "".join(f"\n      {key}: {lacks}" for key, lacks in
                                                             sorted(dict(waiting).items())[:limit]))


def post_documents(bag: Any, schemes: Path, jikeyun: JikeyunSandbox, kingdee: KingdeeSandbox, window_end: datetime,
                   blocked_sku: dict[str, Any], show: int) -> list[Any]:
    """The document scheme over the hourly window that ends at ``window_end`` (the warehouse and goods DAGs ran for
    it first: the document's waits pass at once): four shipped trades, and one whose only material was blocked up
    in that window (its material is forbidden in Kingdee: it waits)."""
    from jikeyun_kingdee.local_runs import run_dag
    from jikeyun_kingdee.scheme import load_scheme

    if not (schemes / DOCUMENT_SCHEME_FILE).is_file():
        print(f"\nNo {DOCUMENT_SCHEME_FILE} in {schemes}: no documents posted")
        return []
    scheme = load_scheme(schemes / DOCUMENT_SCHEME_FILE)
    in_window = window_end - timedelta(minutes=30)
    trades = [jikeyun.trades.add_trade(status=6000 if i % 2 else 9090, trade_type=1, isDelete=0, lines=1 + i % 3,
                                       modified_at=in_window) for i in range(4)]
    waiting = jikeyun.trades.add_trade(status=6000, trade_type=1, isDelete=0, lines=[{"skuId": blocked_sku["skuId"]}],
                                       modified_at=in_window)
    run = run_dag(bag.get_dag(scheme.dag_id), window_end)
    print_run(f"sales outbound: hourly window ({len(trades)} trades shipped, 1 more whose material "
              f"{blocked_sku['skuBarcode']} is blocked up: {waiting['tradeNo']} waits)", run)
    print_documents(kingdee, scheme.target.form_id, summary_of(run), show)
    return [run]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, default=Path(".demo"), help="embedded AIRFLOW_HOME (recreated)")
    parser.add_argument("--warehouses", type=int, default=1000)
    parser.add_argument("--goods", type=int, default=300, help="goods of the catalogue (1 to 5 SKUs each)")
    parser.add_argument("--show", type=int, default=15, help="Kingdee rows to print")
    args = parser.parse_args(argv)

    home = args.home.resolve()
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    dags_folder = REPO / "dags" if (REPO / "dags").is_dir() else Path.cwd() / "dags"
    configure_airflow(home, dags_folder)

    from airflow.utils import db

    from jikeyun_kingdee.local_runs import load_dag_bag, run_dag
    from jikeyun_kingdee.sandbox.jikeyun import JikeyunSandbox
    from jikeyun_kingdee.sandbox.kingdee import KingdeeSandbox
    from jikeyun_kingdee.scheme import default_schemes_folder, load_scheme

    print(f"Airflow home {home} (SQLite, local staging); migrating the metadata database …", flush=True)
    db.resetdb()
    from jikeyun_kingdee.pools import ensure_pools, schemes_of

    ensure_pools(schemes_of()[0])  # the target pools, as a deployment creates them after migrating
    with JikeyunSandbox(warehouses=args.warehouses, goods=args.goods, modified_from=MODIFIED_FROM,
                        modified_to=MODIFIED_TO) as jikeyun, KingdeeSandbox() as kingdee:
        connect(jikeyun, kingdee)
        print(f"Jikeyun sandbox {jikeyun.url} ({len(jikeyun.warehouses)} warehouses); Kingdee sandbox {kingdee.url}")
        bag = load_dag_bag(str(dags_folder))
        if bag.import_errors:
            print(f"DAG import errors: {bag.import_errors}", file=sys.stderr)
            return 1
        scheme = load_scheme(default_schemes_folder(dags_folder / "demo.py") / SCHEME_FILE)
        dag = bag.get_dag(scheme.dag_id)

        first_window_end = MODIFIED_TO + timedelta(hours=1)
        initial = run_dag(dag, first_window_end, run_conf={"full_resync": True})
        print_run("initial load (full resync)", initial)

        codes = sorted(code for code, w in jikeyun.warehouses.items()
                       if int(w["isBlockup"]) == 0 and not int(w.get("isDelete") or 0))
        in_window = first_window_end + timedelta(minutes=20)
        jikeyun.add_warehouse(warehouseCode="DEMO-NEW-01", warehouseName="演示新建仓", isBlockup=0, isDelete=0,
                              modified_at=in_window)
        renamed = f"{jikeyun.warehouses[codes[0]]['warehouseName']}（更名）"
        jikeyun.modify_warehouse(codes[0], warehouseName=renamed, modified_at=in_window)
        jikeyun.block_warehouse(codes[1], modified_at=in_window)
        hourly = run_dag(dag, first_window_end + timedelta(hours=1))
        print_run("next hourly window (1 added, 1 renamed, 1 blocked up)", hourly)
        kingdee.edit_stocks([codes[2]], org="I0134", FName="金蝶里手工改过的名字")  # a hand edit in Kingdee
        reconciled = run_dag(bag.get_dag(scheme.reconcile_dag_id), first_window_end + timedelta(hours=2))
        print_run("reconcile (one warehouse renamed by hand in Kingdee: found and repaired)", reconciled)
        print_kingdee(kingdee, args.show)
        schemes = default_schemes_folder(dags_folder / "demo.py")
        goods_runs, blocked = sync_goods(bag, schemes, jikeyun, kingdee, first_window_end, args.show)
        document_runs = post_documents(bag, schemes, jikeyun, kingdee, first_window_end + timedelta(hours=1), blocked,
                                       args.show)
    ok = all(run.state == "success" for run in (initial, hourly, reconciled, *goods_runs, *document_runs))
    print(f"\nDemo {'succeeded' if ok else 'FAILED'}; staged files under {home / 'staging'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
