"""The warehouse DAG in a real deployment, driven over the REST API as an operator would.

The tests run in order and build on each other: a triggered full load, a backfill of three hourly windows, the
rerun of one load task of the full load, the deadline alert of a slow run started at the beginning (so that its
minute of waiting overlaps the other tests), and no secret in anything the deployment wrote.
"""

from __future__ import annotations

from typing import Any

import pendulum
import pytest

from jikeyun_kingdee.staging import read_ndjson

from tests.support.alerting import Posted, WebhookReceiver
from tests.support.dag_timeline import DAG_ID
from tests.support.deployment import (
    DEADLINE_DAG_ID,
    JIKEYUN_SECRET,
    KINGDEE_APP_SECRET,
    KINGDEE_PASSWORD,
    SLOW_SECONDS,
    WAREHOUSES,
    WECOM_KEY,
    Deployment,
)

pytestmark = [pytest.mark.deployment, pytest.mark.usefixtures("deadline_run")]

BEIJING = "Asia/Shanghai"
# Logical dates (window starts) of the backfilled hours; the sandbox's generated data was modified long before.
WINDOWS = [pendulum.datetime(2026, 11, 2, 9, tz=BEIJING).add(hours=k) for k in range(3)]
WRITE_OPERATIONS = ("Save", "BatchSave", "Submit", "Audit", "UnAudit", "Delete", "ExcuteOperation")


def active_names(warehouses: list[dict[str, Any]]) -> dict[str, str]:
    """What Kingdee should hold: every warehouse neither blocked up nor deleted, name by code."""
    return {w["warehouseCode"]: w["warehouseName"] for w in warehouses
            if int(w["isBlockup"]) == 0 and int(w.get("isDelete") or 0) == 0}


def stock_names(deployment: Deployment) -> dict[str, str]:
    return {stock["FNumber"]: stock["FName"] for stock in deployment.control("kingdee", "stocks", {"org": "I0134"})}


def writes(deployment: Deployment) -> dict[str, int]:
    calls = deployment.control("kingdee", "calls")
    return {operation: calls.get(operation, 0) for operation in WRITE_OPERATIONS}


def previous(deployment: Deployment, key: str) -> Any:
    if key not in deployment.state:
        pytest.fail(f"needs {key!r} from an earlier test of this module, which did not pass")
    return deployment.state[key]


@pytest.fixture(scope="module")
def deadline_run(deployment: Deployment) -> dict[str, Any]:
    """A run of the deadline scheme whose only Jikeyun call waits SLOW_SECONDS: unfinished a minute after queued."""
    deployment.control("jikeyun-slow", "faults", {"latency": SLOW_SECONDS, "latency_count": None})
    deployment.unpause(DEADLINE_DAG_ID)
    return deployment.trigger(DEADLINE_DAG_ID)


def test_triggered_run_loads_every_active_warehouse(deployment: Deployment) -> None:
    deployment.unpause(DAG_ID)
    run = deployment.trigger(DAG_ID, conf={"full_resync": True})
    deployment.wait_for_run(DAG_ID, run["dag_run_id"])

    expected = active_names(deployment.control("jikeyun", "warehouses"))
    stocks = deployment.control("kingdee", "stocks", {"org": "I0134"})
    assert {s["FNumber"]: s["FName"] for s in stocks} == expected
    assert {s["FDocumentStatus"] for s in stocks} == {"C"}  # submitted and audited
    summary = deployment.xcom(DAG_ID, run["dag_run_id"], "report")
    assert (summary["fetched"], summary["created"], summary["rejected"]) == (WAREHOUSES, len(expected), 0)
    assert summary["load_chunks"] == 3
    # the schemes start at the next full hour: the scheduler made no run of its own
    assert [r["run_type"] for r in deployment.api("GET", f"dags/{DAG_ID}/dagRuns")["dag_runs"]] == ["manual"]
    deployment.state["full_run"] = run["dag_run_id"]


def test_backfill_over_three_windows_loads_each_window(deployment: Deployment) -> None:
    full_run = previous(deployment, "full_run")
    chunks = deployment.xcom(DAG_ID, full_run, "filter", key="chunks")
    chunk_keys = [
        [item["key"] for item in read_ndjson(chunk["items"]) if item["state"] == "active"] for chunk in chunks
    ]
    before = stock_names(deployment)
    # In each window: a warehouse of load chunk 1 renamed, one added, one of chunk 0 blocked up.
    renamed, blocked = chunk_keys[1][:3], chunk_keys[0][:3]
    for k, start in enumerate(WINDOWS):
        deployment.control(
            "jikeyun",
            "modify-warehouse",
            {
                "code": renamed[k],
                "warehouseName": f"第{k + 1}窗口改名仓",
                "modified_at": start.add(minutes=10).isoformat(),
            },
        )
        deployment.control(
            "jikeyun",
            "add-warehouse",
            {
                "warehouseCode": f"WIN{k + 1}-NEW",
                "warehouseName": f"第{k + 1}窗口新仓",
                "isBlockup": 0,
                "isDelete": 0,
                "modified_at": start.add(minutes=20).isoformat(),
            },
        )
        deployment.control(
            "jikeyun", "block-warehouse", {"code": blocked[k], "modified_at": start.add(minutes=30).isoformat()}
        )

    backfill = deployment.api(
        "POST",
        "backfills",
        json={
            "dag_id": DAG_ID,
            "from_date": WINDOWS[0].isoformat(),
            "to_date": WINDOWS[-1].isoformat(),
            "max_active_runs": 1,
        },
    )
    deployment.wait_until(
        lambda: deployment.api("GET", f"backfills/{backfill['id']}")["completed_at"],
        f"backfill {backfill['id']} to complete",
        timeout=240,
        interval=2,
    )

    runs = deployment.api("GET", f"dags/{DAG_ID}/dagRuns", params={"run_type": "backfill", "order_by": "logical_date"})
    runs = runs["dag_runs"]
    assert [pendulum.parse(r["data_interval_start"]) for r in runs] == WINDOWS
    assert [pendulum.parse(r["data_interval_end"]) for r in runs] == [w.add(hours=1) for w in WINDOWS]
    for k, run in enumerate(runs):
        deployment.wait_for_run(DAG_ID, run["dag_run_id"])
        summary = deployment.xcom(DAG_ID, run["dag_run_id"], "report")
        # exactly the window's three changes: one renamed, one new, one blocked (staged to be forbidden, not written)
        assert (summary["fetched"], summary["filtered_out"], summary["created"], summary["updated"]) == (3, 0, 1, 1), k
        assert summary["retire"] == 1, k

    after = stock_names(deployment)
    for k in range(3):
        assert after[renamed[k]] == f"第{k + 1}窗口改名仓"
        assert after[f"WIN{k + 1}-NEW"] == f"第{k + 1}窗口新仓"
        assert after[blocked[k]] == before[blocked[k]]  # blocked up in Jikeyun: left as it was in Kingdee
    assert len(after) == len(before) + 3
    deployment.state["renamed"] = renamed


def test_clearing_one_load_task_changes_nothing(deployment: Deployment) -> None:
    full_run, renamed = previous(deployment, "full_run"), previous(deployment, "renamed")
    stocks, written = deployment.control("kingdee", "stocks", {"org": "I0134"}), writes(deployment)
    path = f"dags/{DAG_ID}/dagRuns/{full_run}/taskInstances/load/1"
    first_try = deployment.api("GET", path)["try_number"]

    deployment.api(
        "POST",
        f"dags/{DAG_ID}/clearTaskInstances",
        json={
            "dry_run": False,
            "dag_run_id": full_run,
            "task_ids": [["load", 1]],
            "only_failed": False,
            "reset_dag_runs": True,
            "include_downstream": False,
            "include_upstream": False,
        },
    )
    rerun = deployment.wait_until(
        lambda: (
            (ti := deployment.api("GET", path))["try_number"] > first_try
            and ti["state"] in ("success", "failed")
            and ti
        ),
        "the cleared load[1] to run again",
        timeout=150,
    )
    assert rerun  # wait_until returns only a truthy probe result: the task instance
    assert rerun["state"] == "success", deployment.task_logs(DAG_ID, full_run)
    deployment.wait_for_run(DAG_ID, full_run)

    # The rerun re-read its staged snapshot of the full load: the three warehouses renamed since then are skipped
    # as stale (the ledger holds later times), every other row is already as in Kingdee.
    manifest = deployment.xcom(DAG_ID, full_run, "load", map_index=1)
    rows = sum(1 for _ in read_ndjson(manifest["results"]))
    assert manifest["counts"] == {"stale": 3, "unchanged": rows - 3}
    stale = [r["key"] for r in read_ndjson(manifest["results"]) if r["status"] == "stale"]
    assert sorted(stale) == sorted(renamed)
    assert deployment.control("kingdee", "stocks", {"org": "I0134"}) == stocks
    assert writes(deployment) == written


def test_deadline_alert_is_sent_by_the_triggerer(
    deployment: Deployment, webhook: WebhookReceiver, deadline_run: dict[str, Any]
) -> None:
    run_id = deadline_run["dag_run_id"]

    def deadline_alerts() -> list[Posted]:
        return [p for p in webhook.posted if "Deadline missed" in p.body["markdown"]["content"]]

    alerts = deployment.wait_until(deadline_alerts, "the deadline_missed alert on the WeCom receiver", timeout=180)
    assert len(alerts) == 1
    alert = alerts[0]
    assert alert.path == "/cgi-bin/webhook/send" and alert.query == {"key": WECOM_KEY}
    content = alert.body["markdown"]["content"]
    assert DEADLINE_DAG_ID in content and run_id in content
    # The run was only slow, not broken: it still succeeds, and nothing else was alerted.
    deployment.wait_for_run(DEADLINE_DAG_ID, run_id, timeout=SLOW_SECONDS + 120)
    assert [p for p in webhook.posted if p not in alerts] == []
    assert "deadline_missed" in (deployment.home / "logs-processes" / "triggerer.log").read_text(errors="replace")


def test_no_secret_in_any_log_or_staged_file(deployment: Deployment) -> None:
    secrets = (JIKEYUN_SECRET, KINGDEE_PASSWORD, KINGDEE_APP_SECRET, WECOM_KEY)
    files = [
        path
        for folder in ("logs", "logs-processes", "staging")
        for path in (deployment.home / folder).rglob("*")
        if path.is_file()
    ]
    assert any(path.name.startswith("attempt=") for path in files), "no task log was written"
    leaks = [
        f"{path.relative_to(deployment.home)}: {secret[:6]}…"
        for path in files
        for secret in secrets
        if secret in path.read_text(encoding="utf-8", errors="replace")
    ]
    assert leaks == []
