"""Issue 20 with ``dag.test()`` over real HTTP: the reconcile repairs Kingdee to Jikeyun's *current* state even when a
change carries a ``gmtModified`` earlier than the window that synced the record (clock skew, a back-dated import).

The module's world: 300 warehouses synced; five of them (A … E) edited and synced by the window ending at hour 2;
then in Jikeyun A blocked up, B renamed and C deleted, all with a time in the window ending at hour 1 — earlier than
what the ledger holds. One sandbox pair, staging folder and ledger serve every test of the module.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from jikeyun_kingdee.ledger import SyncLedger
from jikeyun_kingdee.sandbox.jikeyun import JikeyunSandbox
from jikeyun_kingdee.sandbox.jikeyun_common import epoch_ms
from jikeyun_kingdee.sandbox.kingdee import KingdeeSandbox
from jikeyun_kingdee.staging import read_ndjson

from tests.support import drift
from tests.support.airflow_compat import return_value_of, run_dag_test
from tests.support.alerting import WebhookReceiver
from tests.support.reconcile import (
    JIKEYUN_SECRET,
    KINGDEE_PASSWORD,
    MODIFIED_FROM,
    MODIFIED_TO,
    RECONCILE_DAG_ID,
    SYNC_DAG_ID,
    WAREHOUSES,
    WECOM_KEY,
    assert_kingdee_equals_jikeyun,
    hour,
    lifecycle,
    rerun_loads,
    states,
    writes,
)
from tests.support.sandboxes import connected_jikeyun, connected_kingdee, local_staging

EDITED = hour(1) + timedelta(minutes=20)  # A … E edited: synced by the window ending at hour 2
BACK_DATED = hour(0) + timedelta(minutes=30)  # then changed with a time in the window ending at hour 1


@pytest.fixture(scope="module")
def env() -> Iterator[pytest.MonkeyPatch]:
    with pytest.MonkeyPatch.context() as patch:
        yield patch


@pytest.fixture(scope="module")
def jikeyun(env: pytest.MonkeyPatch) -> Iterator[JikeyunSandbox]:
    with connected_jikeyun(env, JIKEYUN_SECRET, warehouses=WAREHOUSES, seed=23, modified_from=MODIFIED_FROM,
                           modified_to=MODIFIED_TO) as sandbox:
        yield sandbox


@pytest.fixture(scope="module")
def kingdee(env: pytest.MonkeyPatch) -> Iterator[KingdeeSandbox]:
    with connected_kingdee(env, KINGDEE_PASSWORD) as sandbox:
        yield sandbox


@pytest.fixture(scope="module")
def webhook(env: pytest.MonkeyPatch) -> Iterator[WebhookReceiver]:
    """The scheme's WeCom robot (``alert_wecom``) is this receiver."""
    with WebhookReceiver() as receiver:
        env.setenv("AIRFLOW_CONN_ALERT_WECOM", json.dumps(
            {"conn_type": "http", "host": receiver.url, "password": WECOM_KEY}))
        yield receiver


@pytest.fixture(scope="module")
def world(dags, jikeyun, kingdee, env, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The synced 300 and the back-dated changes (see the module's docstring); returns the codes (``A`` … ``E``),
    the names the edit synced (``names``) and the sync runs (``runs``)."""
    local_staging(tmp_path_factory.mktemp("reconcile-current"), env)
    sync = dags[SYNC_DAG_ID]
    full = run_dag_test(sync, hour(0), run_conf={"full_resync": True})
    assert full.state == "success", states(full)
    active = sorted(code for code, w in jikeyun.warehouses.items() if lifecycle(w) == "active")
    codes = dict(zip("ABCDE", active[:5], strict=True))
    names = {code: f"{jikeyun.warehouses[code]['warehouseName']}（二版）" for code in codes.values()}
    for code, name in names.items():
        jikeyun.modify_warehouse(code, modified_at=EDITED, warehouseName=name)
    edited = run_dag_test(sync, hour(2))
    assert edited.state == "success" and return_value_of(edited, "report")["updated"] == 5, states(edited)
    assert {code: stock(kingdee, code)[0] for code in names} == names
    jikeyun.block_warehouse(codes["A"], modified_at=BACK_DATED)
    jikeyun.modify_warehouse(codes["B"], modified_at=BACK_DATED, warehouseName="回溯时间改的名字")
    jikeyun.modify_warehouse(codes["C"], modified_at=BACK_DATED, isDelete=1)
    return {**codes, "names": names, "runs": {"full": full, "edited": edited}}


def stock(kingdee: KingdeeSandbox, code: str) -> tuple[str, str]:
    """Name and forbid status of a Kingdee warehouse."""
    [found] = [s for s in kingdee.stocks(org="I0134") if s["FNumber"] == code]
    return found["FName"], found["FForbidStatus"]


def test_one_reconcile_repairs_back_dated_changes_and_nothing_undoes_it(dags, world, jikeyun, kingdee,
                                                                       webhook) -> None:
    sync, reconcile = dags[SYNC_DAG_ID], dags[RECONCILE_DAG_ID]
    a, b, c = world["A"], world["B"], world["C"]

    # The sync of the window holding the back-dated times skips all three as stale: Kingdee still differs.
    back_dated = run_dag_test(sync, hour(1))
    assert back_dated.state == "success", states(back_dated)
    assert return_value_of(back_dated, "report")["stale_skipped"] == 3
    assert (stock(kingdee, a)[1], stock(kingdee, b)[0], stock(kingdee, c)[1]) == ("A", world["names"][b], "A")

    # One reconcile: found, written to Jikeyun's current state, read back equal.
    posted = len(webhook.posted)
    first = run_dag_test(reconcile, hour(10))
    assert first.state == "success", states(first)
    summary = return_value_of(first, "report")
    assert summary["found_keys"] == {"status": sorted([a, c]), "differs": [b]}
    assert summary["repair_results"] == {"forbidden": 2, "updated": 1}  # nothing skipped: all three were written
    assert (summary["drift"], summary["repaired"], summary["left"], summary["superseded"]) == (3, 3, 0, 0)
    repaired = return_value_of(first, "repair")
    assert list(read_ndjson(repaired["left_file"])) == [] and list(read_ndjson(repaired["superseded_file"])) == []
    assert (stock(kingdee, a)[1], stock(kingdee, b), stock(kingdee, c)[1]) == ("B", ("回溯时间改的名字", "A"), "B")
    assert_kingdee_equals_jikeyun(jikeyun, kingdee, besides=[])
    assert "3 repaired, 0 left" in webhook.posted[posted].body["markdown"]["content"]
    # The ledger holds the repaired state a millisecond after the time it held, not the back-dated one.
    with SyncLedger("warehouse_I0134") as ledger:
        assert ledger.applied([a, b, c]) == dict.fromkeys([a, b, c], epoch_ms(EDITED) + 1)

    # A second reconcile finds nothing and writes nothing.
    before = writes(kingdee)
    second = run_dag_test(reconcile, hour(11))
    assert second.state == "success" and states(second)["repair"] == "skipped", states(second)
    assert return_value_of(second, "report")["drift"] == 0 and writes(kingdee) == before

    # Replays of every older snapshot — the full sync, the window that synced the edit, the back-dated window —
    # are stale and write nothing; neither does the next window.
    for run in (world["runs"]["full"], world["runs"]["edited"], back_dated):
        assert {key: status for key, status in rerun_loads(run).items() if key in (a, b, c)} == dict.fromkeys(
            [a, b, c], "stale"), run.run_id
    assert run_dag_test(sync, hour(3)).state == "success"
    assert writes(kingdee) == before
    assert_kingdee_equals_jikeyun(jikeyun, kingdee, besides=[])


def test_a_drift_the_repair_cannot_fix_is_left_named_alerted_and_fails_the_run(dags, world, jikeyun, kingdee,
                                                                               webhook) -> None:
    reconcile, d = dags[RECONCILE_DAG_ID], world["D"]
    jikeyun.block_warehouse(d, modified_at=BACK_DATED + timedelta(minutes=5))
    kingdee.fail_rows([d], message="沙箱脚本：禁用失败", stage="forbid")  # the next Forbid of D fails

    posted = len(webhook.posted)
    failed = run_dag_test(reconcile, hour(20))
    assert failed.state == "failed" and states(failed)["report"] == "failed", states(failed)
    repaired = return_value_of(failed, "repair")
    assert repaired["results"].get("rejected") == 1
    assert repaired["left"]["keys"] == {"status": [d]} and repaired["left"]["drift"] == 1
    assert [f["key"] for f in read_ndjson(repaired["left_file"])] == [d]
    assert stock(kingdee, d)[1] == "A"
    [alert] = webhook.posted[posted:]
    text = alert.body["markdown"]["content"]
    assert "1 left" in text and f"**Left: Status wrong:** {d}" in text

    # The next reconcile fixes it (the Forbid no longer fails).
    fixed = run_dag_test(reconcile, hour(21))
    assert fixed.state == "success", states(fixed)
    assert stock(kingdee, d)[1] == "B" and return_value_of(fixed, "report")["left"] == 0


def test_what_a_sync_applied_after_the_reconcile_read_jikeyun_is_reported_not_overwritten(
        dags, world, jikeyun, kingdee, tmp_path: Path) -> None:
    """The reconcile's steps one by one, with a sync window between its read and its repair (the pool keeps a load
    and the repair apart, not a load and the reads)."""
    from jikeyun_kingdee import reconcile_steps
    from jikeyun_kingdee.compat import ObjectStoragePath
    from jikeyun_kingdee.hooks.jikeyun import JikeyunHook
    from jikeyun_kingdee.hooks.kingdee import KingdeeHook
    from jikeyun_kingdee.reconcile import describe, summarise
    from jikeyun_kingdee.scheme import load_scheme

    from tests.support import REPO

    scheme = load_scheme(REPO / "include" / "schemes" / "warehouse_I0134.yaml")
    e = world["E"]
    drift.rename(kingdee, e, "手工改名")
    folder = ObjectStoragePath(f"file://{tmp_path}/reconcile")
    source = reconcile_steps.read_source(scheme, JikeyunHook(), folder)
    target = reconcile_steps.read_target(scheme, KingdeeHook(), folder)
    compared = reconcile_steps.compare(scheme, folder, source, target, rows_per_chunk=100)
    assert e in compared["found"]["keys"]["differs"]

    jikeyun.modify_warehouse(e, modified_at=hour(3) + timedelta(minutes=10), warehouseName="第三版")
    window = run_dag_test(dags[SYNC_DAG_ID], hour(4))  # after the read, before the repair
    assert window.state == "success" and stock(kingdee, e)[0] == "第三版", states(window)

    with SyncLedger(scheme.name) as ledger:
        repaired = reconcile_steps.repair(scheme, KingdeeHook(), ledger, folder, compared, "manual__superseded")
    assert repaired["results"].get("superseded") == 1 and stock(kingdee, e)[0] == "第三版"  # not overwritten
    # read back, E differs from this run's (older) snapshot: reported as superseded, not left
    assert repaired["superseded"]["keys"] == {"differs": [e]} and repaired["left"]["drift"] == 0
    assert [f["key"] for f in read_ndjson(repaired["superseded_file"])] == [e]
    summary = summarise(source, target, compared, repaired, repair=True)
    assert (summary["superseded"], summary["superseded_keys"], summary["left"]) == (1, [e], 0)
    assert f"1 superseded by a later sync ({e}; compared again next time)" in describe(summary)
