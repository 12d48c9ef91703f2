"""Paging, windows, faults and concurrent modification: every read ends with the exact record set or a typed error."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone

import pytest

from jikeyun_kingdee.hooks.jikeyun import (
    JikeyunError,
    JikeyunFatalError,
    JikeyunQuotaExhausted,
    JikeyunRetryableError,
)
from jikeyun_kingdee.records import Warehouse, to_epoch_ms
from jikeyun_kingdee.sandbox.jikeyun import THROTTLED
from jikeyun_kingdee.source_paging import PagingError, offset_pages, read_window

from tests.support.jikeyun import ALL, METHOD, in_window, ms, plain_pages, read, warehouse_source

UTC = timezone.utc


def codes(records) -> list[str]:
    return sorted(r["warehouseCode"] for r in records)


# ------------------------------------------------------------------------------------------------ paging
@pytest.mark.parametrize(("total", "sizes", "calls"), [(100, [50, 50], 3), (101, [50, 50, 1], 3), (0, [], 1)])
def test_pages_stop_on_short_or_empty_page(connect, make_sandbox, make_hook, total, sizes, calls):
    sandbox = make_sandbox(warehouses=total)
    connect(sandbox)
    hook = make_hook()
    pages = list(offset_pages(plain_pages(hook, ALL, page_size=50), {}))
    assert [len(p) for p in pages] == sizes
    assert codes(r for p in pages for r in p) == sorted(sandbox.warehouses)
    assert hook.call_counts[METHOD] == sandbox.calls[METHOD] == calls


def test_a_source_without_a_window_is_read_by_offset_pages(connect, make_sandbox, make_hook):
    sandbox = make_sandbox(warehouses=230)
    connect(sandbox)
    hook = make_hook()
    assert codes(read(hook, page_size=50, windows=[])) == sorted(sandbox.warehouses)
    assert hook.call_counts[METHOD] == 5 and "gmtModifiedStart" not in sandbox.last_request["params"]["bizcontent"]


@pytest.mark.parametrize("page_size", [50, 200])
def test_full_sync_returns_every_warehouse_once(jikeyun_conn, sandbox, make_hook, page_size):
    hook = make_hook()
    warehouses = [Warehouse.model_validate(record) for record in read(hook, page_size=page_size)]
    assert sorted(w.warehouse_code for w in warehouses) == sorted(sandbox.warehouses)
    blocked = sum(w.is_blockup == 1 for w in warehouses)
    assert 150 < blocked < 250 and any(w.is_delete == 1 for w in warehouses)  # ~20 % blocked, a few deleted
    assert all(w.gmt_modified is not None and w.gmt_modified.tzinfo is not None for w in warehouses)
    first = warehouses[0]
    assert Warehouse.model_validate(first.model_dump(mode="json", by_alias=True)) == first
    assert to_epoch_ms(first.gmt_modified) == sandbox.warehouses[first.warehouse_code]["gmtModified"]


def test_blocked_and_deleted_can_be_left_out(jikeyun_conn, sandbox, make_hook):
    active = {c for c, r in sandbox.warehouses.items() if r["isBlockup"] == 0 and r["isDelete"] == 0}
    got = set(codes(read(make_hook(), request={})))
    assert got == active


# ------------------------------------------------------------------------------------------------ windows
@pytest.mark.parametrize("start_inclusive", [True, False])
@pytest.mark.parametrize("end_inclusive", [True, False])
def test_no_record_lost_at_either_boundary(connect, make_sandbox, make_hook, start_inclusive, end_inclusive):
    sandbox = make_sandbox(warehouses=0, start_inclusive=start_inclusive, end_inclusive=end_inclusive)
    connect(sandbox)
    start = datetime(2025, 3, 1, 16, 0, tzinfo=UTC)  # 2025-03-02 00:00:00 Beijing
    end = start + timedelta(hours=1)
    inside = {
        "AT_START": start, "START_PLUS_HALF_SECOND": start + timedelta(milliseconds=500),
        "MIDDLE": start + timedelta(minutes=30), "END_MINUS_1MS": end - timedelta(milliseconds=1),
        "END_MINUS_1S": end - timedelta(seconds=1),
    }
    outside = {"BEFORE": start - timedelta(minutes=5), "AFTER": end + timedelta(minutes=5)}
    for code, moment in {**inside, **outside}.items():
        sandbox.add_warehouse(warehouseCode=code, gmtModified=ms(moment))
    got = set(codes(read(make_hook(), (start, end))))
    assert set(inside) <= got and not set(outside) & got
    sent = sandbox.last_request["params"]["bizcontent"]
    assert '"gmtModifiedStart":"2025-03-01 23:59:59"' in sent and '"gmtModifiedEnd":"2025-03-02 01:00:00"' in sent


def test_incremental_window_sees_a_newly_blocked_warehouse(jikeyun_conn, sandbox, make_hook):
    start = datetime(2026, 2, 1, tzinfo=UTC)
    code = next(c for c, r in sandbox.warehouses.items() if r["isBlockup"] == 0)
    sandbox.block_warehouse(code, modified_at=start + timedelta(minutes=10))
    got = read(make_hook(), (start, start + timedelta(hours=1)))
    assert [(w["warehouseCode"], w["isBlockup"]) for w in got] == [(code, 1)]


def test_empty_window_makes_no_call(jikeyun_conn, make_hook):
    hook = make_hook()
    moment = datetime(2025, 5, 1, tzinfo=UTC)
    assert read(hook, (moment, moment)) == []
    assert hook.call_counts[METHOD] == 0


def test_server_ignoring_the_window_fails_fast(jikeyun_conn, make_hook):
    hook = make_hook()
    with pytest.raises(PagingError, match="ignored the time window"):
        read(hook, (datetime(2025, 5, 1, tzinfo=UTC), datetime(2025, 6, 1, tzinfo=UTC)),
             windows=[{"start_param": "startModified", "end_param": "endModified"}])
    assert hook.call_counts[METHOD] == 1


# ------------------------------------------------------------------------------------------------ faults
FAULTS = {
    "throttle next 2 calls": lambda s: s.throttle(next_calls=2),
    "HTTP 500 then 502": lambda s: s.faults.update(status=[500, 502]),
    "HTTP 429 with Retry-After": lambda s: s.faults.update(status=[429], retry_after=0.2),
    "dropped connections": lambda s: s.faults.update(drop=2),
    "non-JSON body": lambda s: s.faults.update(garbage=2),
    "latency beyond the timeout": lambda s: s.faults.update(latency=1.5, latency_count=1),
}


@pytest.mark.parametrize("fault", FAULTS, ids=list(FAULTS))
def test_fault_ends_with_the_exact_record_set(connect, make_sandbox, make_hook, capsys, fault):
    sandbox = make_sandbox(warehouses=230)
    # a short timeout only where the fault is latency: elsewhere a slow CI machine would add a retry of its own
    connect(sandbox, extra={"timeout": 0.5 if fault.startswith("latency") else 30})
    FAULTS[fault](sandbox)
    hook = make_hook()
    got = codes(read(hook))
    assert got == sorted(sandbox.warehouses)
    retries = 1 if fault.startswith(("HTTP 429", "latency")) else 2
    assert hook.retry_counts[METHOD] == retries
    # hook logs go through Airflow's structlog set-up, which prints to stdout outside a task
    retry_lines = [line for line in capsys.readouterr().out.splitlines() if f"Jikeyun {METHOD}: retry" in line]
    assert len(retry_lines) == retries
    if "Retry-After" in fault:
        assert "Retry-After 0.2s" in retry_lines[0]


def test_rate_limit_above_calls_per_second_is_retried(connect, make_sandbox, make_hook):
    sandbox = make_sandbox(warehouses=300)
    connect(sandbox)
    sandbox.throttle(calls_per_second=3)
    hook = make_hook(retry_limit=8, retry_delay=0.2, retry_delay_max=1.0)
    got = codes(read(hook, page_size=50, windows=[]))
    assert got == sorted(sandbox.warehouses)
    assert sandbox.calls[f"{METHOD}:{THROTTLED}"] == hook.retry_counts[METHOD] > 0


def test_client_rate_limiter_keeps_under_the_server_limit(connect, make_sandbox, make_hook):
    sandbox = make_sandbox(warehouses=300)
    connect(sandbox, extra={"max_calls_per_second": 8})
    sandbox.throttle(calls_per_second=16)
    hook = make_hook()
    got = codes(read(hook, page_size=50, windows=[]))
    assert got == sorted(sandbox.warehouses)
    assert hook.call_counts[METHOD] == 7 and hook.retry_counts[METHOD] == 0


def test_persistent_failure_gives_a_typed_error_after_bounded_retries(jikeyun_conn, sandbox, make_hook):
    sandbox.faults.update(status=[503] * 10)
    hook = make_hook(retry_limit=3)
    with pytest.raises(JikeyunRetryableError) as info:
        hook.call(METHOD, {"pageIndex": 0, "pageSize": 1})
    assert info.value.http_status == 503 and info.value.method == METHOD
    assert hook.call_counts[METHOD] == 3 and hook.retry_counts[METHOD] == 2


def test_persistent_throttling_gives_a_typed_error(jikeyun_conn, sandbox, make_hook):
    sandbox.throttle(next_calls=10)
    hook = make_hook(retry_limit=3)
    with pytest.raises(JikeyunRetryableError) as info:
        hook.call(METHOD, {"pageIndex": 0, "pageSize": 1})
    assert (info.value.code, info.value.sub_code) == (0, THROTTLED) and info.value.context_id
    assert hook.call_counts[METHOD] == 3


FATAL = {
    "sign error": ("0858030801", {"password": "not-the-secret-123"}, METHOD, {}),
    "unknown appkey": ("0858030802", {"login": "99999999"}, METHOD, {}),
    "API not subscribed": ("0130020310", {}, "erp.sales.get", {}),
    "bad parameters": ("0050030002", {}, METHOD, {"pageSize": 500}),
}


@pytest.mark.parametrize("case", FATAL, ids=list(FATAL))
def test_fatal_codes_are_not_retried(connect, sandbox, make_hook, case):
    sub_code, conn_overrides, method, biz = FATAL[case]
    connect(sandbox, **conn_overrides)
    hook = make_hook()
    with pytest.raises(JikeyunFatalError) as info:
        hook.call(method, {"pageIndex": 0, "pageSize": 50, **biz})
    assert info.value.sub_code == sub_code and info.value.msg and info.value.context_id
    assert hook.call_counts[method] == 1 and hook.retry_counts[method] == 0


def test_exhausted_quota_is_its_own_error_and_not_retried(jikeyun_conn, sandbox, make_hook):
    sandbox.set_quota(METHOD, 2)
    hook = make_hook()
    read_ = read_window(hook.call, warehouse_source(page_size=50), None, None)
    with pytest.raises(JikeyunQuotaExhausted) as info:
        list(read_)
    assert not isinstance(info.value, JikeyunFatalError)  # the scheme waits for the next quota period instead
    assert info.value.sub_code == "0130000609" and "额度不足" in info.value.msg
    assert hook.call_counts[METHOD] == 3 and hook.retry_counts[METHOD] == 0
    assert read_.position["at"] is not None  # where the next quota period goes on


def test_secret_never_in_logs_or_errors(connect, sandbox, make_hook, caplog, capsys):
    wrong = "wrong-secret-zzz-0000"
    errors: list[BaseException] = []
    with caplog.at_level(logging.DEBUG):
        connect(sandbox)
        sandbox.throttle(next_calls=10)
        sandbox.faults.update(status=[500], garbage=1, drop=1)
        try:
            make_hook(retry_limit=6).call(METHOD, {"pageIndex": 0, "pageSize": 1})
        except JikeyunError as exc:
            errors.append(exc)
        connect(sandbox, password=wrong)
        sandbox.throttle(next_calls=0)
        try:
            make_hook().call(METHOD, {"pageIndex": 0, "pageSize": 1})
        except JikeyunError as exc:
            errors.append(exc)
    assert len(errors) == 2
    captured = capsys.readouterr()
    texts = [caplog.text, captured.out, captured.err] + [f"{e} {e!r} {e.args} {vars(e)}" for e in errors]
    for secret in (sandbox.appsecret, wrong):
        assert not any(secret.lower() in text.lower() for text in texts)
    assert captured.out.count(": retry ") == 5  # the retries were logged, so the check looked at real log lines


# ------------------------------------------------------------------------------------ concurrent modification
WINDOW = (datetime(2025, 3, 1, tzinfo=UTC), datetime(2025, 9, 1, tzinfo=UTC))


def _modified_code(sandbox, before: dict[str, int]) -> str:
    (code,) = [c for c, r in sandbox.warehouses.items() if r["gmtModified"] != before[c]]
    return code


@pytest.mark.parametrize("page_size", [50, 200])
def test_offset_paging_loses_a_record_under_concurrent_modification(connect, make_sandbox, make_hook, page_size):
    """The problem, shown: naive offset paging misses one record that was never modified."""
    sandbox = make_sandbox()
    connect(sandbox)
    expected = in_window(sandbox, *WINDOW)
    before = {c: r["gmtModified"] for c, r in sandbox.warehouses.items()}
    sandbox.modify_during_paging(after_page=0)
    window = {"gmtModifiedStart": "2025-03-01 08:00:00", "gmtModifiedEnd": "2025-09-01 08:00:00"}
    seen = {r["warehouseCode"] for p in offset_pages(plain_pages(make_hook(), ALL, page_size), window) for r in p}
    lost = expected - seen - {_modified_code(sandbox, before)}
    assert len(lost) == 1


@pytest.mark.parametrize("sort_by_modified", [True, False], ids=["server sorts by time", "server sorts by id"])
@pytest.mark.parametrize("page_size", [50, 200])
def test_window_extraction_loses_nothing_under_concurrent_modification(
    connect, make_sandbox, make_hook, page_size, sort_by_modified
):
    sandbox = make_sandbox(sort_by_modified=sort_by_modified)
    connect(sandbox)
    expected = in_window(sandbox, *WINDOW)
    before = {c: r["gmtModified"] for c, r in sandbox.warehouses.items()}
    sandbox.modify_during_paging(after_page=0)
    hook = make_hook()
    seen = set(codes(read(hook, WINDOW, page_size)))
    modified = _modified_code(sandbox, before)
    assert expected - seen <= {modified}  # every unmodified record was read
    assert sandbox.warehouses[modified]["gmtModified"] >= ms(WINDOW[1])  # the modified one is the next run's job
    near_edges = {c for c, t in before.items() if min(abs(t - ms(WINDOW[0])), abs(t - ms(WINDOW[1]))) < 2000}
    assert seen - expected <= near_edges  # the one-second widening may add neighbours, nothing else


def test_dense_second_is_read_until_stable(connect, make_sandbox, make_hook):
    """More than a page of records in one second, one of them edited between two pages: none lost."""
    sandbox = make_sandbox(warehouses=0)
    connect(sandbox)
    second = datetime(2025, 6, 1, 4, 0, 0, tzinfo=UTC)
    for i in range(120):
        sandbox.add_warehouse(warehouseCode=f"BULK{i:03d}", gmtModified=ms(second) + i)
    sandbox.modify_during_paging(after_page=1)
    hook = make_hook()
    seen = set(codes(read(hook, (second - timedelta(hours=1), second + timedelta(hours=1)), page_size=50)))
    moved = {c for c, r in sandbox.warehouses.items() if r["gmtModified"] > ms(second) + 1000}
    assert len(moved) == 1 and set(sandbox.warehouses) - seen <= moved
