"""The goods scheme (erp.storage.goodslist → BD_MATERIAL) end to end with ``dag.test()`` against both sandboxes over
real HTTP, on one timeline of hourly windows: the initial load, goods-level and SKU-level windows, a rerun, the
lifecycle at both levels, a unit the table lacks, and the reconcile repairing a hand edit inside a sub-entity."""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

import pytest

from tests.support.airflow_compat import return_value_of, run_dag_test
from tests.support.goods import (
    GOODS_METHOD,
    RECONCILE_DAG_ID,
    SYNC_DAG_ID,
    assert_kingdee_equals_jikeyun,
    expected_material,
    hour,
    lifecycle,
    materials,
    states,
    writes,
)

pytestmark = pytest.mark.usefixtures("staging")
PAGE_SIZE = 200  # the scheme's


def summary(dag_run) -> dict[str, Any]:
    return return_value_of(dag_run, "report") or {}


def multi_sku_goods(jikeyun, count: int, *, skip: int = 0) -> list[str]:
    """Goods numbers of active goods with two SKUs or more, all of them active."""
    found = [no for no in jikeyun.goods.goods_nos
             if len(skus := jikeyun.goods.goods_skus(no)) > 1 and all(lifecycle(s) == "active" for s in skus)]
    return found[skip:skip + count]


def test_initial_load_creates_every_active_sku_audited(dags, jikeyun, kingdee) -> None:
    records = list(jikeyun.goods.records.values())
    calls = jikeyun.calls.get(GOODS_METHOD, 0)
    dr = run_dag_test(dags[SYNC_DAG_ID], hour(1), run_conf={"full_resync": True})
    assert dr.state == "success", states(dr)
    assert_kingdee_equals_jikeyun(jikeyun, kingdee)
    active = [r for r in records if lifecycle(r) == "active"]
    first = summary(dr)
    assert first["fetched"] == len(records)  # deleted goods too (isQueryDelete: 1)
    assert first["created"] == len(active) == len(materials(kingdee))
    assert first["retire"] == first["absent"] == len(records) - len(active) > 0  # never created
    # a full read is one pass by maxSkuId without a window: ⌈(n+1)/P⌉ calls
    assert jikeyun.calls[GOODS_METHOD] - calls == math.ceil((len(records) + 1) / PAGE_SIZE)
    assert first["api_calls"][GOODS_METHOD] == jikeyun.calls[GOODS_METHOD] - calls


def test_goods_level_and_sku_level_changes_of_one_window(dags, jikeyun, kingdee) -> None:
    goods = jikeyun.goods
    (renamed,) = multi_sku_goods(jikeyun, 1)
    (unit_goods,) = multi_sku_goods(jikeyun, 1, skip=1)
    sku_unit = next(s for s in goods.goods_skus(unit_goods) if s["unitName"] != "箱")
    at = hour(1)
    goods.edit_goods(renamed, goodsName="改名后的货品", modified_at=at + timedelta(minutes=10))  # goods level
    goods.edit_sku(sku_unit["skuId"], unitName="箱", modified_at=at + timedelta(minutes=20))  # SKU level
    added = goods.add_goods(skus=[{"unitName": "瓶", "skuIsBlockup": 0}, {"unitName": "台", "skuIsBlockup": 0}],
                            goodsName="新建货品", isBlockup=0, isDelete=0, modified_at=at + timedelta(minutes=30))
    calls = jikeyun.calls.get(GOODS_METHOD, 0)
    dr = run_dag_test(dags[SYNC_DAG_ID], hour(2))
    assert dr.state == "success", states(dr)
    assert_kingdee_equals_jikeyun(jikeyun, kingdee)
    stored = materials(kingdee)
    renamed_skus = goods.goods_skus(renamed)
    assert {stored[s["skuBarcode"]]["FName"] for s in renamed_skus} == {"改名后的货品"}  # every SKU of the goods
    assert stored[sku_unit["skuBarcode"]]["FBaseUnitId"] == stored[sku_unit["skuBarcode"]]["FStoreUnitID"] == "Xiang"
    assert stored[added[1]["skuBarcode"]] == expected_material(added[1]) and stored[added[1]["skuBarcode"]][
        "FBaseUnitId"] == "Tai"
    result = summary(dr)
    changed = len(renamed_skus) + 1 + len(added)  # the goods pass reads the renamed and the added, the SKU pass
    assert result["rows"] == changed  # the unit change and the added: merged by SKU, each written once
    assert (result["created"], result["updated"]) == (2, len(renamed_skus) + 1)
    # two passes, each within one page: 2·⌈(n+1)/P⌉ at most
    assert jikeyun.calls[GOODS_METHOD] - calls == 2 <= 2 * math.ceil((changed + 1) / PAGE_SIZE)
    assert result["fetched"] == len(renamed_skus) + len(added) + 1 + len(added)


def test_rerun_of_the_window_writes_nothing(dags, jikeyun, kingdee) -> None:
    before, stored = writes(kingdee), materials(kingdee)
    dr = run_dag_test(dags[SYNC_DAG_ID], hour(2))
    assert dr.state == "success", states(dr)
    assert (writes(kingdee), materials(kingdee)) == (before, stored)
    result = summary(dr)
    assert result["created"] == result["updated"] == result["forbidden"] == 0 and result["unchanged"] == result["rows"]


def test_blocked_and_deleted_at_either_level_are_forbidden_then_enabled_again(dags, jikeyun, kingdee) -> None:
    goods = jikeyun.goods
    blocked_goods, deleted_goods, sku_goods = multi_sku_goods(jikeyun, 3, skip=2)
    blocked_sku = goods.goods_skus(sku_goods)[0]
    at = hour(2)
    goods.block_goods(blocked_goods, modified_at=at + timedelta(minutes=5))
    goods.delete_goods(deleted_goods, modified_at=at + timedelta(minutes=6))
    goods.block_sku(blocked_sku["skuId"], modified_at=at + timedelta(minutes=7))
    dr = run_dag_test(dags[SYNC_DAG_ID], hour(3))
    assert dr.state == "success", states(dr)
    assert_kingdee_equals_jikeyun(jikeyun, kingdee)
    stored = materials(kingdee)
    forbidden = [s["skuBarcode"] for no in (blocked_goods, deleted_goods) for s in goods.goods_skus(no)]
    forbidden.append(blocked_sku["skuBarcode"])
    assert {stored[b]["FForbidStatus"] for b in forbidden} == {"B"}
    sibling = goods.goods_skus(sku_goods)[1]  # a SKU blocked up alone leaves its siblings active
    assert stored[sibling["skuBarcode"]]["FForbidStatus"] == "A"
    assert summary(dr)["forbidden"] == len(forbidden)

    # Active again an hour later (and the goods renamed at the same time): enabled, and updated where it changed.
    goods.edit_goods(blocked_goods, isBlockup=0, goodsName="解禁后改名", modified_at=hour(3) + timedelta(minutes=5))
    goods.block_sku(blocked_sku["skuId"], blocked=False, modified_at=hour(3) + timedelta(minutes=6))
    dr = run_dag_test(dags[SYNC_DAG_ID], hour(4))
    assert dr.state == "success", states(dr)
    assert_kingdee_equals_jikeyun(jikeyun, kingdee)
    enabled = len(goods.goods_skus(blocked_goods)) + 1
    result = summary(dr)
    assert (result["enabled"], result["updated"]) == (enabled, len(goods.goods_skus(blocked_goods)))
    assert {materials(kingdee)[s["skuBarcode"]]["FName"] for s in goods.goods_skus(blocked_goods)} == {"解禁后改名"}


def test_a_write_whose_answer_is_lost_is_not_sent_again_blindly(dags, jikeyun, kingdee) -> None:
    from collections import Counter

    goods = jikeyun.goods
    (renamed,) = multi_sku_goods(jikeyun, 1, skip=5)
    added = goods.add_goods(skus=[{"unitName": "个", "skuIsBlockup": 0}, {"unitName": "千克", "skuIsBlockup": 0}],
                            goodsName="答复丢失的新货品", isBlockup=0, isDelete=0,
                            modified_at=hour(5) + timedelta(minutes=10))
    goods.edit_goods(renamed, goodsName="答复丢失时改名", modified_at=hour(5) + timedelta(minutes=11))
    kingdee.fault_after_write(status=500)  # the create is applied, its answer is an HTTP 500
    saved = sum(rows for operation, rows in kingdee.rows_per_call if operation.lower() == "batchsave")
    dr = run_dag_test(dags[SYNC_DAG_ID], hour(6))
    assert dr.state == "success", states(dr)
    assert kingdee.calls["fault:after-write"] == 1
    assert_kingdee_equals_jikeyun(jikeyun, kingdee)
    numbers = Counter(r["FNumber"] for r in kingdee.records("BD_MATERIAL", org="I0134"))
    assert max(numbers.values()) == 1  # no SKU twice
    creates = sum(rows for operation, rows in kingdee.rows_per_call if operation.lower() == "batchsave") - saved
    # the two new SKUs were saved once; the renamed SKUs once more each, as updates (never the new ones again)
    assert creates == len(added) + len(goods.goods_skus(renamed))
    result = summary(dr)
    assert (result["created"], result["updated"]) == (len(added), len(goods.goods_skus(renamed)))


def test_reconcile_repairs_a_hand_edit_inside_a_sub_entity(dags, jikeyun, kingdee) -> None:
    from jikeyun_kingdee.staging import read_ndjson

    active = sorted(s["skuBarcode"] for s in jikeyun.goods.records.values()
                    if lifecycle(s) == "active" and s["unitName"] != "千克")
    drifted = active[0]
    assert kingdee.edit_records("BD_MATERIAL", [drifted], org="I0134", FBaseUnitId="kg") == 1
    dr = run_dag_test(dags[RECONCILE_DAG_ID], hour(10))
    assert dr.state == "success", states(dr)
    compared = return_value_of(dr, "compare")
    assert {f["key"]: f["drift"] for f in read_ndjson(compared["drift_file"])} == {drifted: "differs"}
    assert_kingdee_equals_jikeyun(jikeyun, kingdee)
    assert materials(kingdee)[drifted]["FBaseUnitId"] != "kg"
    before = writes(kingdee)
    dr = run_dag_test(dags[RECONCILE_DAG_ID], hour(11))  # nothing left to find
    assert dr.state == "success", states(dr)
    assert not list(read_ndjson(return_value_of(dr, "compare")["drift_file"])) and writes(kingdee) == before


def test_a_unit_the_table_lacks_rejects_that_sku_naming_the_unit(dags, jikeyun, kingdee) -> None:
    from jikeyun_kingdee.staging import read_ndjson

    goods = jikeyun.goods
    (no,) = multi_sku_goods(jikeyun, 1, skip=6)
    odd, other = goods.goods_skus(no)[:2]
    stored = materials(kingdee)[odd["skuBarcode"]]
    goods.edit_sku(odd["skuId"], unitName="双", modified_at=hour(11) + timedelta(minutes=5))
    goods.edit_sku(other["skuId"], skuName="新规格", modified_at=hour(11) + timedelta(minutes=6))
    dr = run_dag_test(dags[SYNC_DAG_ID], hour(12))
    assert dr.state == "failed" and states(dr)["report"] == "failed", states(dr)
    transformed = return_value_of(dr, "transform")
    (reject,) = read_ndjson(transformed["rejects"])
    assert reject["key"] == odd["skuBarcode"] and "'双'" in reject["reason"] and "unit" in reject["reason"]
    assert materials(kingdee)[odd["skuBarcode"]] == stored  # no guess sent
    assert materials(kingdee)[other["skuBarcode"]]["FSpecification"] == "新规格"  # the others are written


def test_no_secret_in_staged_files_ledger_logs_or_xcom(dags, jikeyun, kingdee, staging, caplog, capfd) -> None:
    import os
    from pathlib import Path

    import sqlalchemy as sa
    from airflow.settings import engine

    from tests.support.goods import JIKEYUN_SECRET, KINGDEE_PASSWORD

    caplog.set_level("DEBUG")
    jikeyun.faults.update(status=[500])  # an error path logged too
    dr = run_dag_test(dags[SYNC_DAG_ID], hour(13), run_conf={"full_resync": True})
    assert dr.state in ("success", "failed"), states(dr)  # the SKU of unit 双 is still rejected
    captured = capfd.readouterr()
    places = {"stdout": captured.out, "stderr": captured.err, "log records": caplog.text}
    home = Path(os.environ["AIRFLOW_HOME"])
    for path in [*home.rglob("*.log"), *staging.rglob("*"), staging.parent / "ledger.db"]:
        if path.is_file():
            places[str(path)] = path.read_bytes().decode("utf-8", errors="replace")
    assert engine is not None
    with engine.connect() as conn:
        for table in ("xcom", "task_instance", "dag_run"):
            places[f"table {table}"] = "\n".join(repr(row) for row in conn.execute(sa.text(f"SELECT * FROM {table}")))
    assert any("api_call system=jikeyun" in text for text in places.values())  # the scan sees the call logs
    assert any("/extract/" in place for place in places) and any("/load/" in place for place in places)
    leaks = {place for place, text in places.items() for secret in (JIKEYUN_SECRET, KINGDEE_PASSWORD)
             if secret.lower() in text.lower()}
    assert leaks == set()
