"""The main job on a laptop: the warehouse DAG against both sandboxes, on SQLite and local files.

``make demo`` (``python -m jikeyun_kingdee.demo``) starts the Jikeyun and Kingdee sandboxes on loopback, migrates a
fresh Airflow metadata database under ``.demo/`` (and the target pools), runs the DAG of
``include/schemes/warehouse_I0134.yaml`` twice with ``dag.test()`` — the initial full load, then one hourly window in
which warehouses were added, renamed and blocked up — then its reconcile DAG after a hand edit in Kingdee; then the
goods DAG of ``include/schemes/goods_I0134.yaml`` (Jikeyun goods → BD_MATERIAL): its initial load and one hourly
window (a goods renamed, a SKU's unit changed, a SKU blocked up); then the sales outbound DAG of
``include/schemes/sales_outbound_I0134.yaml`` (shipped trades → SAL_OUTSTOCK) over the same hour, after the base-data
runs it waits for: three shipped trades posted, one waiting for a customer Kingdee lacks, one not shipped yet. It
prints each run's summary and what now stands in the Kingdee sandbox.
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
OUTBOUND_SCHEME_FILE = "sales_outbound_I0134.yaml"


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
               show: int) -> list[Any]:
    """The goods scheme: its initial load, then one hourly window; returns the DAG runs."""
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
    goods.block_sku(goods.goods_skus(multi[2])[0]["skuId"], modified_at=in_window)
    hourly = run_dag(dag, first_window_end + timedelta(hours=1))
    print_run(f"goods: next hourly window (goods {multi[0]} renamed: {len(goods.goods_skus(multi[0]))} SKUs; "
              "1 SKU's unit changed; 1 SKU blocked up)", hourly)
    print_materials(kingdee, show)
    return [initial, hourly]


def sync_documents(bag: Any, schemes: Path, jikeyun: JikeyunSandbox, kingdee: KingdeeSandbox, window_end: datetime,
                   show: int) -> list[Any]:
    """The sales outbound scheme over the hour ending at ``window_end`` (the base-data runs of that hour are done):
    trades over active warehouses and materials; returns the DAG run."""
    from jikeyun_kingdee.local_runs import run_dag
    from jikeyun_kingdee.scheme import load_scheme

    scheme = load_scheme(schemes / OUTBOUND_SCHEME_FILE)
    stocks = {s["FNumber"] for s in kingdee.stocks(org="I0134") if s["FForbidStatus"] == "A"}
    warehouse = next(w for w in jikeyun.warehouses.values() if w["warehouseCode"] in stocks)
    materials = sorted(m["FNumber"] for m in kingdee.records("BD_MATERIAL", org="I0134")
                       if m["FDocumentStatus"] == "C" and m["FForbidStatus"] == "A")
    at = window_end - timedelta(minutes=15)

    def trade(shop: str, lines: list[str], status: int = 6000) -> dict[str, Any]:
        return jikeyun.trades.add_trade(lines=[{"barcode": b, "goodsMemo": ""} for b in lines], status=status,
                                        modified_at=at, shopcode=shop, isDelete=0,
                                        warehouseCode=warehouse["warehouseCode"], warehouseId=warehouse["warehouseId"])

    trades = [trade("TM001", materials[:2]), trade("JD001", materials[2:5]), trade("PF001", materials[5:6]),
              trade("DY001", materials[6:7]), trade("TM001", materials[7:8], status=4110)]
    print(f"\nSales outbound: {len(trades)} trades in the hour (3 shipped, 1 shipped from shop DY001 whose customer "
          "Kingdee lacks, 1 not shipped yet)")
    run = run_dag(bag.get_dag(scheme.dag_id), window_end)
    print_run("sales outbound: the hourly window, after the base-data runs of the same hour", run)
    documents = kingdee.records("SAL_OUTSTOCK", org="I0134")
    print(f"\nKingdee SAL_OUTSTOCK of I0134: {len(documents)} documents")
    for doc in documents[:show]:
        lines = ", ".join(f"{_number(e['FMaterialID'])}×{e['FRealQty']}" for e in doc["FEntity"])
        print(f"   {doc['FBillNo']:<18} {doc['FDocumentStatus']}  customer {_number(doc['FCustomerID']):<8} {lines}")
    for key, lacks in (summary_of(run).get("waiting") or {}).items():
        print(f"   waiting: {key} lacks {lacks}")
    return [run]


def _number(reference: Any) -> Any:
    """The number of a stored reference (``{"FNumber": x}``) or the value itself."""
    return reference.get("FNumber") if isinstance(reference, dict) else reference


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
        goods_runs = sync_goods(bag, default_schemes_folder(dags_folder / "demo.py"), jikeyun, kingdee,
                                first_window_end, args.show)
        document_runs = sync_documents(bag, default_schemes_folder(dags_folder / "demo.py"), jikeyun, kingdee,
                                       first_window_end + timedelta(hours=1), args.show)
    ok = all(run.state == "success" for run in (initial, hourly, reconciled, *goods_runs, *document_runs))
    print(f"\nDemo {'succeeded' if ok else 'FAILED'}; staged files under {home / 'staging'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
