"""The daily quota of erp.storage.goodslist (1,000 calls a Beijing day): a read that meets the quota answer keeps
what it read and its position, waits (deferred, no worker slot, no retry burnt) until the quota resets at Beijing
midnight, and goes on from where it stopped. The tests travel the sandbox's clock; nothing sleeps."""

from __future__ import annotations

import math
from datetime import date, datetime, timedelta

import pendulum
import pytest

from jikeyun_kingdee.scheme import QuotaReset

from tests.support.airflow_compat import return_value_of, run_dag_test
from tests.support.goods import (
    GOODS_METHOD,
    RECONCILE_DAG_ID,
    REPO,
    SYNC_DAG_ID,
    assert_kingdee_equals_jikeyun,
    hour,
    states,
)

pytestmark = pytest.mark.usefixtures("staging")
PAGE_SIZE = 200
BEIJING = "Asia/Shanghai"


def beijing(day: date, hour_of_day: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return pendulum.datetime(day.year, day.month, day.day, hour_of_day, minute, second, tz=BEIJING)


@pytest.mark.parametrize(("moment", "reset"), [
    (beijing(date(2026, 11, 2), 10), beijing(date(2026, 11, 3))),
    (beijing(date(2026, 11, 2), 23, 59, 59), beijing(date(2026, 11, 3))),
    (beijing(date(2026, 11, 3)), beijing(date(2026, 11, 4))),  # strictly after: the quota of that day is spent
    (pendulum.datetime(2026, 11, 2, 15, 59, 59, tz="UTC"), beijing(date(2026, 11, 3))),  # UTC 16:00 is midnight
])
def test_the_quota_resets_at_the_next_beijing_midnight(moment: datetime, reset: datetime) -> None:
    assert QuotaReset().next_after(moment) == reset


def test_the_reset_is_settable() -> None:
    later = QuotaReset.model_validate({"at": "00:05", "timezone": "UTC"})  # as a scheme file gives it
    assert later.next_after(pendulum.datetime(2026, 11, 2, 0, 4, tz="UTC")) == pendulum.datetime(2026, 11, 2, 0, 5,
                                                                                                  tz="UTC")
    with pytest.raises(ValueError, match="unknown timezone"):
        QuotaReset.model_validate({"timezone": "Mars/Olympus"})


def test_the_quota_answer_carries_the_servers_clock_and_is_not_retried(jikeyun) -> None:
    from jikeyun_kingdee.hooks.jikeyun import JikeyunHook, JikeyunQuotaExhausted

    refused_at = beijing(date(2026, 11, 4), 23, 30)
    jikeyun.travel(refused_at)
    jikeyun.set_daily_quota(GOODS_METHOD, 0)
    calls = jikeyun.calls.get(GOODS_METHOD, 0)
    with pytest.raises(JikeyunQuotaExhausted) as refused:
        JikeyunHook().call(GOODS_METHOD, {"pageIndex": 0, "pageSize": 1})
    assert jikeyun.calls[GOODS_METHOD] - calls == 1  # one call, no retry
    assert refused.value.server_time is not None
    assert abs((refused.value.server_time - refused_at).total_seconds()) < 5  # the Date header: the server's clock
    assert QuotaReset().next_after(refused.value.server_time) == beijing(date(2026, 11, 5))
    jikeyun.set_daily_quota(GOODS_METHOD, 1000)


def test_extract_stops_at_the_quota_keeping_its_pages_and_goes_on_the_next_day(jikeyun, staging) -> None:
    """Both window passes of one hour, the quota spent inside the second: the resumed read reads no page again
    and stages exactly what an uninterrupted read would have."""
    from jikeyun_kingdee.hooks.jikeyun import JikeyunHook
    from jikeyun_kingdee.pipeline import CHECKPOINT, SourceQuotaExhausted, extract
    from jikeyun_kingdee.scheme import load_scheme
    from jikeyun_kingdee.staging import read_parts, run_folder, staging_base

    scheme = load_scheme(REPO / "include" / "schemes" / "goods_I0134.yaml")
    goods = jikeyun.goods
    window = (hour(30), hour(31))
    goods.bulk_edit_goods(modified_at=window[0] + timedelta(minutes=10), count=60, goodsMemo="批量改")
    sku_ids = goods.bulk_edit_skus(modified_at=window[0] + timedelta(minutes=20), count=len(goods.records),
                                   memo="批量改")
    by_goods = {s["skuId"] for no in goods.goods_nos[:60] for s in goods.goods_skus(no)}
    pass_sizes = [len(by_goods), len(sku_ids)]
    uninterrupted = sum(math.ceil((n + 1) / PAGE_SIZE) for n in pass_sizes)
    assert pass_sizes[0] < PAGE_SIZE < pass_sizes[1]  # the goods pass takes one call, the SKU pass more
    assert uninterrupted <= 2 * math.ceil((len(by_goods | set(sku_ids)) + 1) / PAGE_SIZE)

    day = date(2026, 11, 5)
    jikeyun.travel(beijing(day, 21))
    jikeyun.set_daily_quota(GOODS_METHOD, 2)  # the goods pass (1 call) and the first page of the SKU pass
    folder = run_folder(staging_base(), scheme.dag_id, "quota-test", *window)
    before = jikeyun.calls.get(GOODS_METHOD, 0)
    with pytest.raises(SourceQuotaExhausted) as stopped:
        extract(scheme, JikeyunHook(), folder, *window)
    assert stopped.value.resets_at == beijing(day + timedelta(days=1))  # the server's next Beijing midnight
    assert (folder / "extract" / CHECKPOINT).exists() and stopped.value.fetched == len(by_goods) + PAGE_SIZE
    calls = jikeyun.calls[GOODS_METHOD]

    jikeyun.travel(beijing(day + timedelta(days=1), 0, 0, 1))  # the quota is back
    manifest = extract(scheme, JikeyunHook(), folder, *window, resume=True)
    assert jikeyun.calls[GOODS_METHOD] - calls == uninterrupted - 2  # the rest of the SKU pass, no page twice
    assert jikeyun.calls[GOODS_METHOD] - before == uninterrupted + 1  # and the refused call
    read = [record["skuId"] for record in read_parts(manifest["pages"])]
    assert sorted(read) == sorted([*by_goods, *sku_ids]) and len(read) == sum(pass_sizes)
    assert manifest["quota_waits"] == 1 and not (folder / "extract" / CHECKPOINT).exists()
    assert sum(sum(c.values()) for c in manifest["calls_by_day"].values()) == uninterrupted
    assert manifest["calls"][GOODS_METHOD] == uninterrupted + 1
    jikeyun.set_daily_quota(GOODS_METHOD, 1000)


def test_the_dag_waits_for_the_quota_deferred_and_resumes_where_it_stopped(dags, jikeyun, kingdee) -> None:
    skus = len(jikeyun.goods.records)
    full_read = math.ceil((skus + 1) / PAGE_SIZE)
    assert full_read >= 2
    day = date(2026, 11, 8)
    jikeyun.travel(beijing(day, 10))
    jikeyun.set_daily_quota(GOODS_METHOD, 1)
    # as if the task waited until the quota came back: the clock jumps to the next day right after it is refused
    jikeyun.travel_after_refusal(beijing(day + timedelta(days=1), 0, 0, 1))
    calls = jikeyun.calls.get(GOODS_METHOD, 0)
    dr = run_dag_test(dags[SYNC_DAG_ID], hour(1), run_conf={"full_resync": True})
    assert dr.state == "success", states(dr)
    assert_kingdee_equals_jikeyun(jikeyun, kingdee)
    assert jikeyun.calls[GOODS_METHOD] - calls == full_read + 1  # nothing read twice; one refused call
    assert dr.get_task_instance("extract").try_number <= 1  # waiting burnt no task retry
    summary = return_value_of(dr, "report")
    assert summary["quota_waits"] == 1 and summary["fetched"] == skus
    assert sum(summary["source_calls_by_day"][d][GOODS_METHOD] for d in summary["source_calls_by_day"]) == full_read
    assert summary["api_calls"][GOODS_METHOD] == full_read + 1
    assert jikeyun.day_calls[(day, GOODS_METHOD)] == 1
    assert jikeyun.day_calls[(day + timedelta(days=1), GOODS_METHOD)] == full_read - 1


def test_the_reconcile_read_waits_for_the_quota_too(dags, jikeyun, kingdee) -> None:
    from jikeyun_kingdee.staging import read_ndjson

    full_read = math.ceil((len(jikeyun.goods.records) + 1) / PAGE_SIZE)
    day = date(2026, 11, 10)
    jikeyun.travel(beijing(day, 3))
    jikeyun.set_daily_quota(GOODS_METHOD, 1)
    jikeyun.travel_after_refusal(beijing(day + timedelta(days=1), 0, 0, 1))
    calls = jikeyun.calls[GOODS_METHOD]
    dr = run_dag_test(dags[RECONCILE_DAG_ID], hour(20))
    assert dr.state == "success", states(dr)
    source_read = return_value_of(dr, "read_source")
    assert source_read["quota_waits"] == 1 and source_read["fetched"] == len(jikeyun.goods.records)
    assert jikeyun.calls[GOODS_METHOD] - calls == full_read + 1
    assert dr.get_task_instance("read_source").try_number <= 1
    assert not list(read_ndjson(return_value_of(dr, "compare")["drift_file"]))  # the sync left nothing to repair
