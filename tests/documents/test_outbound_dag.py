"""The sales outbound scheme (oms.trade.fullinfoget → SAL_OUTSTOCK) end to end with ``dag.test()`` against both
sandboxes over real HTTP, after the warehouse and goods schemes' own DAGs loaded the base data, on one timeline of
hourly windows: posted once, waiting for base data, never edited after posting, never posted twice."""

from __future__ import annotations

import math
from collections import Counter
from datetime import timedelta
from itertools import cycle, islice
from typing import Any

import pytest

from tests.support.airflow_compat import return_value_of, run_dag_test
from tests.support.goods import states, writes
from tests.support.trades import (
    CUSTOMERS,
    FORM,
    GOODS_DAG_ID,
    ORG,
    SYNC_DAG_ID,
    TRADES_METHOD,
    WAREHOUSE_DAG_ID,
    documents,
    hour,
    kingdee_calls,
    number,
)

pytestmark = pytest.mark.usefixtures("staging")
SCHEME = "sales_outbound_I0134"


def summary(dag_run) -> dict[str, Any]:
    return return_value_of(dag_run, "report") or {}


def run(dags, dag_id: str, at, **conf: Any):
    dr = run_dag_test(dags[dag_id], at, run_conf=conf or None)
    assert dr.state == "success", states(dr)
    return dr


def active_barcodes(jikeyun, kingdee) -> list[str]:
    """Barcodes of SKUs that are materials in Kingdee, audited and not forbidden."""
    ready = {m["FNumber"] for m in kingdee.records("BD_MATERIAL", org=ORG)
             if m["FDocumentStatus"] == "C" and m["FForbidStatus"] == "A"}
    return sorted(s["skuBarcode"] for s in jikeyun.goods.records.values() if s["skuBarcode"] in ready)


def active_warehouse(jikeyun, kingdee) -> dict[str, Any]:
    ready = {s["FNumber"] for s in kingdee.stocks(org=ORG) if s["FForbidStatus"] == "A"}
    return next(w for w in jikeyun.warehouses.values() if w["warehouseCode"] in ready)


def trade(jikeyun, kingdee, at, *, lines: int | list[str] = 2, status: int = 6000, shop: str = "TM001",
          **fields: Any) -> dict[str, Any]:
    """A trade over ready base data (lines: a count of ready SKUs, or the barcodes), modified at ``at``."""
    barcodes = lines if isinstance(lines, list) else list(islice(cycle(active_barcodes(jikeyun, kingdee)), lines))
    warehouse = active_warehouse(jikeyun, kingdee)
    return jikeyun.trades.add_trade(lines=[{"barcode": b, "goodsMemo": ""} for b in barcodes], status=status,
                                    modified_at=at, shopcode=shop, warehouseCode=warehouse["warehouseCode"],
                                    warehouseId=warehouse["warehouseId"], **{"isDelete": 0, **fields})


def assert_posted_as_mapped(kingdee, trade_: dict[str, Any]) -> None:
    doc = documents(kingdee)[trade_["tradeNo"]]
    assert doc["FDocumentStatus"] == "C"
    assert number(doc["FCustomerID"]) == CUSTOMERS.get(trade_["shopcode"], trade_["shopcode"])
    assert str(doc["FDate"])[:19].replace("T", " ") == trade_["consignTime"]
    lines = [(number(e["FMaterialID"]), float(e["FRealQty"]), number(e["FStockID"])) for e in doc["FEntity"]]
    assert lines == [(line["barcode"], float(line["sellCount"]), trade_["warehouseCode"])
                     for line in trade_["goodsDetail"]]


@pytest.fixture(scope="module")
def world(dags, jikeyun, kingdee) -> dict[str, Any]:
    """The base data loaded by the base-data schemes' own DAGs, then the first window of trades."""
    run(dags, WAREHOUSE_DAG_ID, hour(1), full_resync=True)
    run(dags, GOODS_DAG_ID, hour(1), full_resync=True)
    at = hour(1) + timedelta(minutes=10)
    posted = [trade(jikeyun, kingdee, at, lines=n) for n in (1, 2, 3)]
    later = trade(jikeyun, kingdee, at, status=4110)  # waiting to ship
    returned = trade(jikeyun, kingdee, at, status=9090, trade_type=8)  # an after-sale return
    unknown_shop = trade(jikeyun, kingdee, at, shop="DY001")  # no customer DY001 in Kingdee
    return {"posted": posted, "later": later, "returned": returned, "unknown_shop": unknown_shop}


def test_initial_window_posts_each_shipped_trade_once_audited(dags, world, jikeyun, kingdee) -> None:
    before = kingdee_calls(kingdee)
    dr = run(dags, SYNC_DAG_ID, hour(2))
    result = summary(dr)
    for posted in world["posted"]:
        assert_posted_as_mapped(kingdee, posted)
    assert set(documents(kingdee)) == {t["tradeNo"] for t in world["posted"]}
    assert result["created"] == 3 and result["filtered_out"] == 2  # not shipped, a return
    assert result["waiting"] == {world["unknown_shop"]["tradeNo"]: "BD_Customer DY001"}
    calls = Counter(kingdee_calls(kingdee)) - Counter(before)
    # one batch: its numbers (1), units and customers (2; warehouses and materials vouched for by their schemes'
    # ledgers), one BatchSave; the target check once
    assert calls["BatchSave"] == 1 and calls["ExecuteBillQuery"] <= 1 + 2 + 2, calls
    assert result["api_calls"][TRADES_METHOD] == 1


def test_rerun_writes_nothing(dags, world, kingdee) -> None:
    before, stored = writes(kingdee), documents(kingdee)
    result = summary(run(dags, SYNC_DAG_ID, hour(2)))
    assert (writes(kingdee), documents(kingdee)) == (before, stored)
    assert result["created"] == 0 and result["unchanged"] == 3 and result["waiting_total"] == 1


def test_waiting_for_a_material_costs_nothing_until_the_goods_scheme_creates_it(dags, world, jikeyun,
                                                                             kingdee) -> None:
    goods = jikeyun.goods.add_goods(skus=[{"unitName": "瓶", "skuIsBlockup": 0}], goodsName="新上架的货品",
                                    isBlockup=0, isDelete=0, modified_at=hour(2) + timedelta(minutes=5))
    barcode = goods[0]["skuBarcode"]
    new = trade(jikeyun, kingdee, hour(2) + timedelta(minutes=10), lines=[barcode])
    result = summary(run(dags, SYNC_DAG_ID, hour(3)))
    assert result["waiting"][new["tradeNo"]] == f"BD_MATERIAL {barcode}"
    assert new["tradeNo"] not in documents(kingdee)

    # the next window: nothing new, the goods ledger does not know the material yet: no Kingdee call for it
    before = kingdee_calls(kingdee)
    result = summary(run(dags, SYNC_DAG_ID, hour(4)))
    assert new["tradeNo"] in result["waiting"]
    spent = Counter(kingdee_calls(kingdee)) - Counter(before)
    assert spent == Counter({"ExecuteBillQuery": spent["ExecuteBillQuery"]}) and spent["ExecuteBillQuery"] <= 1
    # (the trade waiting for customer DY001 is looked up again: no scheme vouches for customers)

    run(dags, GOODS_DAG_ID, hour(3))  # the goods scheme's window creates the material
    result = summary(run(dags, SYNC_DAG_ID, hour(5)))
    assert result["created"] == 1 and new["tradeNo"] not in result["waiting"]
    assert_posted_as_mapped(kingdee, jikeyun.trades.trade(new["tradeNo"]))


def test_a_trade_shipped_in_a_later_window_is_posted_then(dags, world, jikeyun, kingdee) -> None:
    shipped = jikeyun.trades.ship(world["later"]["tradeNo"], at=hour(5) + timedelta(minutes=10))
    result = summary(run(dags, SYNC_DAG_ID, hour(6)))
    assert result["created"] == 1
    assert_posted_as_mapped(kingdee, shipped)


def test_changed_or_cancelled_after_posting_is_named_never_edited(dags, world, jikeyun, kingdee) -> None:
    edited, cancelled = world["posted"][1], world["posted"][2]
    stored, before = documents(kingdee), writes(kingdee)
    line = edited["goodsDetail"][1]
    jikeyun.trades.edit_line(edited["tradeNo"], line["subTradeId"], sellCount=line["sellCount"] + 5,
                             modified_at=hour(6) + timedelta(minutes=10))
    jikeyun.trades.edit_trade(cancelled["tradeNo"], tradeStatus=5010, modified_at=hour(6) + timedelta(minutes=20))
    result = summary(run(dags, SYNC_DAG_ID, hour(7)))
    changed = result["changed_after_posting"]
    assert "FEntity: line 2" in changed[edited["tradeNo"]]
    assert "no longer passes" in changed[cancelled["tradeNo"]]
    assert (documents(kingdee), writes(kingdee)) == (stored, before)  # as posted


def test_a_write_whose_answer_is_lost_posts_the_document_once(dags, world, jikeyun, kingdee) -> None:
    new = trade(jikeyun, kingdee, hour(7) + timedelta(minutes=10), lines=2)
    kingdee.fault_after_write(status=500)  # Kingdee commits, the answer is an HTTP 500
    result = summary(run(dags, SYNC_DAG_ID, hour(8)))
    assert kingdee.calls["fault:after-write"] >= 1
    assert result["created"] == 1
    assert Counter(d["FBillNo"] for d in kingdee.records(FORM, org=ORG))[new["tradeNo"]] == 1
    assert summary(run(dags, SYNC_DAG_ID, hour(8)))["created"] == 0  # and the rerun posts nothing


def test_a_send_that_committed_before_a_crash_is_adopted_not_posted_again(dags, world, jikeyun, kingdee) -> None:
    from jikeyun_kingdee.hooks.kingdee import KingdeeHook
    from jikeyun_kingdee.ledger import SENDING, Applied, SyncLedger
    from jikeyun_kingdee.scheme import load_scheme
    from jikeyun_kingdee.transform import transform_record

    from tests.support import REPO

    scheme = load_scheme(REPO / "include" / "schemes" / f"{SCHEME}.yaml")
    new = trade(jikeyun, kingdee, hour(8) + timedelta(minutes=10), lines=1)
    item = transform_record(scheme, jikeyun.trades.trade(new["tradeNo"]))
    # what a load that died after Kingdee committed leaves: the ledger's mark, the document in Kingdee
    with SyncLedger(SCHEME) as ledger:
        ledger.advance({new["tradeNo"]: Applied(item["modified"], None, SENDING, "active")}, "crashed-run")
    [saved] = KingdeeHook().batch_save(FORM, [item["row"]], auto_submit_and_audit=True,
                                       **scheme.target.save_options)
    assert saved.ok
    result = summary(run(dags, SYNC_DAG_ID, hour(9)))
    assert result["created"] == 1 and result["exists"] == 0
    assert Counter(d["FBillNo"] for d in kingdee.records(FORM, org=ORG))[new["tradeNo"]] == 1


def test_a_number_posted_by_someone_else_exists_and_is_left_alone(dags, world, jikeyun, kingdee) -> None:
    new = world["elsewhere"] = trade(jikeyun, kingdee, hour(9) + timedelta(minutes=10), lines=1)
    other = dict(documents(kingdee)[world["posted"][0]["tradeNo"]])
    kingdee.add_records(FORM, [{**{k: v for k, v in other.items() if k not in ("FID", "FEntity")},
                                "FBillNo": new["tradeNo"], "FEntity": []}], status="C")
    before = writes(kingdee)
    result = summary(run(dags, SYNC_DAG_ID, hour(10)))
    assert result["exists"] == 1 and result["created"] == 0 and writes(kingdee) == before


def test_a_trade_with_200_lines_is_one_document(dags, world, jikeyun, kingdee) -> None:
    big = trade(jikeyun, kingdee, hour(10) + timedelta(minutes=10), lines=200)
    result = summary(run(dags, SYNC_DAG_ID, hour(11)))
    assert result["created"] == 1
    assert len(documents(kingdee)[big["tradeNo"]]["FEntity"]) == 200
    assert_posted_as_mapped(kingdee, big)


def test_a_scroll_that_expires_mid_read_reads_its_slice_again(dags, world, jikeyun, kingdee) -> None:
    at = hour(11) + timedelta(minutes=10)
    shipped = [trade(jikeyun, kingdee, at, lines=1) for _ in range(3)]
    for _ in range(250):  # not shipped: read, filtered out, never written
        jikeyun.trades.add_trade(status=4110, modified_at=at)
    jikeyun.trades.modify_during_paging(after_page=0, action="expire")
    calls = jikeyun.calls.get(TRADES_METHOD, 0)
    result = summary(run(dags, SYNC_DAG_ID, hour(12)))
    assert result["fetched"] >= 253 and result["duplicates_dropped"] == result["fetched"] - 253
    assert result["created"] == 3 and {t["tradeNo"] for t in shipped} <= set(documents(kingdee))
    # the slice was read again after the expiry: ⌈(n+1)/P⌉ pages, and once more from the start
    assert jikeyun.calls[TRADES_METHOD] - calls <= 2 * math.ceil((253 + 1) / 200) + 1


def test_a_document_waiting_longer_than_max_wait_hours_is_overdue(dags, world, kingdee) -> None:
    waiting = world["unknown_shop"]["tradeNo"]
    result = summary(run(dags, SYNC_DAG_ID, hour(13)))
    assert waiting in result["waiting"] and result["overdue"] == {}  # waiting since hour 2: not 24 hours yet
    result = summary(run(dags, SYNC_DAG_ID, hour(2 + 25)))  # a window a day later (travel, no sleep)
    assert list(result["overdue"]) == [waiting]
    # the customer arrives: the next run posts it, and it waits no more
    kingdee.seed("BD_Customer", [{"FNumber": "DY001", "FName": "依然抖音小店", "FCreateOrgId": ORG,
                                  "FUseOrgId": ORG}])
    result = summary(run(dags, SYNC_DAG_ID, hour(2 + 26)))
    assert result["created"] == 1 and result["waiting"] == {} and result["overdue"] == {}
    assert_posted_as_mapped(kingdee, world["unknown_shop"])


def test_the_reconcile_reports_what_differs_and_never_writes(dags, world, kingdee) -> None:
    """Kingdee equals Jikeyun for every posted trade but those the timeline made differ on purpose: the one changed
    after posting, the one someone else posted (without lines) and the one cancelled after posting; the reconcile
    names them, fails the run (its alert), and writes nothing."""
    from tests.support.trades import RECONCILE_DAG_ID

    before = writes(kingdee)
    dr = run_dag_test(dags[RECONCILE_DAG_ID], hour(2 + 27))
    assert dr.state == "failed" and states(dr)["repair"] == "skipped", states(dr)
    found = return_value_of(dr, "compare")["found"]
    assert found["keys"] == {"differs": sorted([world["posted"][1]["tradeNo"], world["elsewhere"]["tradeNo"]]),
                             "status": [world["posted"][2]["tradeNo"]]}  # cancelled after posting
    assert writes(kingdee) == before


def test_no_secret_in_staged_files_ledger_or_xcom(dags, world, staging) -> None:
    from tests.support.trades import JIKEYUN_SECRET, KINGDEE_PASSWORD

    for path in staging.rglob("*"):
        if path.is_file():
            text = path.read_text(errors="replace")
            assert JIKEYUN_SECRET not in text and KINGDEE_PASSWORD not in text, path
    ledger = (staging.parent / "ledger.db").read_bytes()
    assert JIKEYUN_SECRET.encode() not in ledger and KINGDEE_PASSWORD.encode() not in ledger
