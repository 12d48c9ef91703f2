"""The order of a document scheme's run: its writes wait, deferred, for the base-data DAGs' runs of the same window
(whatever their outcome) and go on after ``base_data.wait_minutes`` (``dag.test()`` on both Airflow lines).

The scheme folder (tmp) holds a base-data scheme and two tiny document schemes made from the warehouse scheme: the
order does not depend on what a document writes, only on ``target.kind`` and ``base_data``.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import yaml

from jikeyun_kingdee.compat import BaseTrigger, TriggerEvent
from jikeyun_kingdee.sandbox.jikeyun import JikeyunSandbox

from tests.support.airflow_compat import load_dag_bag, return_value_of, run_dag_test
from tests.support.dag_timeline import JIKEYUN_SECRET, MODIFIED_FROM, MODIFIED_TO, hour
from tests.support.sandboxes import connected_jikeyun

REPO = Path(__file__).resolve().parents[2]
DAGS_FILE = REPO / "dags" / "jikeyun_kingdee_schemes.py"
BASE, DOCUMENT, DOCUMENT_NO_WAIT = "order_base_I0134", "order_document_I0134", "order_document_nowait_I0134"


def dag_id(name: str) -> str:
    return f"jikeyun_kingdee_{name}"


def warehouse_scheme(name: str) -> dict[str, Any]:
    scheme = yaml.safe_load((REPO / "include" / "schemes" / "warehouse_I0134.yaml").read_text(encoding="utf-8"))
    # no deadline: Airflow 3.3's dag.test() cannot run a DAG whose Deadline Alert is live
    return {**scheme, "name": name, "alerting": {"deadline_minutes": None}}


def document_scheme(name: str, waits_for: list[str], wait_minutes: int, **changes: Any) -> dict[str, Any]:
    scheme = warehouse_scheme(name)
    del scheme["lifecycle"]  # a document is never forbidden
    scheme["target"] = {**scheme["target"], "kind": "document"}
    return {**scheme, "base_data": {"schemes": waits_for, "wait_minutes": wait_minutes},
            "reconcile": {"repair": False}, **changes}


def write_schemes(folder: Path, *schemes: dict[str, Any]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for scheme in schemes:
        (folder / f"{scheme['name']}.yaml").write_text(yaml.safe_dump(scheme, allow_unicode=True), encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def dags(airflow_db, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The folder's DAGs; the DAG file reads that folder meanwhile (Airflow 3's dag.test() parses it again)."""
    from jikeyun_kingdee.dag_factory import build_dags
    from jikeyun_kingdee.pools import ensure_pools
    from jikeyun_kingdee.scheme import load_scheme, scheme_files

    folder = write_schemes(tmp_path_factory.mktemp("schemes"), warehouse_scheme(BASE),
                           document_scheme(DOCUMENT, [BASE], wait_minutes=1),
                           document_scheme(DOCUMENT_NO_WAIT, [BASE], wait_minutes=0))
    ensure_pools([load_scheme(path) for path in scheme_files(folder)])
    built = build_dags(folder, dags_file=str(DAGS_FILE))
    assert "jikeyun_kingdee_broken_schemes" not in built
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("JIKEYUN_KINGDEE_SCHEMES", str(folder))
        yield built


@pytest.fixture
def jikeyun(monkeypatch: pytest.MonkeyPatch) -> Iterator[JikeyunSandbox]:
    with connected_jikeyun(monkeypatch, JIKEYUN_SECRET, warehouses=3, seed=5,
                           modified_from=MODIFIED_FROM, modified_to=MODIFIED_TO) as sandbox:
        yield sandbox


pytestmark = pytest.mark.usefixtures("staging", "kingdee")


def states(dag_run) -> dict[str, str]:
    return {f"{ti.task_id}[{ti.map_index}]" if ti.map_index >= 0 else ti.task_id: str(ti.state)
            for ti in dag_run.get_task_instances()}


def add_warehouse_in_window(jikeyun: JikeyunSandbox, window_end: datetime, code: str) -> None:
    jikeyun.add_warehouse(warehouseCode=code, warehouseName=f"仓库 {code}", isBlockup=0, isDelete=0,
                          modified_at=window_end - timedelta(minutes=30))


def test_the_load_waits_for_the_base_data_run_of_the_same_window_whatever_its_outcome(
        dags, jikeyun, kingdee, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
        capfd: pytest.CaptureFixture[str]) -> None:
    wait = f"wait_for_{BASE}"

    # the base-data run of the window finished well
    base = run_dag_test(dags[dag_id(BASE)], hour(201))
    assert base.state == "success", states(base)
    add_warehouse_in_window(jikeyun, hour(201), "ORDER-A")
    started = datetime.now(timezone.utc)
    document = run_dag_test(dags[dag_id(DOCUMENT)], hour(201))
    assert document.state == "success", states(document)
    assert datetime.now(timezone.utc) - started < timedelta(seconds=50)  # not the minute of wait_minutes
    assert states(document)[wait] == "success"
    assert states(document)["check_target"] == "success" and states(document)["load[0]"] == "success"
    assert "ORDER-A" in {s["FNumber"] for s in kingdee.stocks(org="I0134")}

    # the base-data run of the next window failed (a wrong secret): finished all the same, the wait succeeds
    good = json.loads(os.environ["AIRFLOW_CONN_JIKEYUN_DEFAULT"])
    monkeypatch.setenv("AIRFLOW_CONN_JIKEYUN_DEFAULT", json.dumps({**good, "password": "not-the-secret"}))
    base = run_dag_test(dags[dag_id(BASE)], hour(202))
    assert base.state == "failed", states(base)
    monkeypatch.setenv("AIRFLOW_CONN_JIKEYUN_DEFAULT", json.dumps(good))
    document = run_dag_test(dags[dag_id(DOCUMENT)], hour(202))
    assert document.state == "success", states(document)
    assert states(document)[wait] == "success"
    # the sensor runs as Airflow's own: no "execute cannot be called outside TaskInstance" (Airflow 2's warning
    # for an execute that calls its base class's)
    assert "outside TaskInstance" not in caplog.text + "".join(capfd.readouterr())


def test_a_run_without_a_logical_date_does_not_wait() -> None:
    from jikeyun_kingdee.compat import AirflowSkipException
    from jikeyun_kingdee.order import BaseDataRunSensor

    sensor = BaseDataRunSensor(task_id="wait_for_x", base_data_scheme="x", wait=timedelta(minutes=1))
    with pytest.raises(AirflowSkipException, match="without a logical date"):
        sensor.pre_execute({"logical_date": None})
    sensor.pre_execute({"logical_date": datetime(2026, 11, 1, tzinfo=timezone.utc)})  # a run with one: no skip


def test_without_a_base_data_run_the_wait_times_out_skipped_and_the_load_goes_on(dags, jikeyun, kingdee) -> None:
    add_warehouse_in_window(jikeyun, hour(203), "ORDER-B")
    started = datetime.now(timezone.utc)
    document = run_dag_test(dags[dag_id(DOCUMENT_NO_WAIT)], hour(203))  # no run of the base-data DAG at hour 203
    assert datetime.now(timezone.utc) - started < timedelta(seconds=50)
    assert document.state == "success", states(document)
    got = states(document)
    assert got[f"wait_for_{BASE}"] == "skipped"
    assert got["extract"] == got["check_target"] == got["load[0]"] == got["report"] == "success", got
    assert "ORDER-B" in {s["FNumber"] for s in kingdee.stocks(org="I0134")}
    assert (return_value_of(document, "report") or {})["created"] == 1


def test_the_waits_are_deferrable_sensors_right_before_the_first_write(dags) -> None:
    from jikeyun_kingdee.order import BaseDataRunSensor

    base, document = dags[dag_id(BASE)], dags[dag_id(DOCUMENT)]
    assert not any(isinstance(task, BaseDataRunSensor) for task in base.tasks)  # base data waits for nothing
    assert str(base.task_dict["check_target"].trigger_rule) in ("all_success", "TriggerRule.ALL_SUCCESS")

    wait = document.task_dict[f"wait_for_{BASE}"]
    assert isinstance(wait, BaseDataRunSensor)
    assert wait.deferrable is True and wait.soft_fail is True  # no worker slot; skipped, not failed, at the end
    assert wait.external_dag_id == dag_id(BASE) and wait.external_task_ids is None  # the whole run
    assert set(wait.allowed_states) == {"success", "failed"}  # finished, whatever the outcome
    assert wait.wait == timedelta(minutes=1)
    assert wait.upstream_task_ids == set()  # starts with the run: extract, transform and filter go on meanwhile
    assert wait.downstream_task_ids == {"check_target"}
    check = document.task_dict["check_target"]
    assert check.upstream_task_ids == {"filter", wait.task_id}
    assert str(check.trigger_rule).lower().endswith("none_failed")  # runs when the wait was skipped


def test_the_deadline_trigger_ends_a_wait_that_never_ends_and_passes_an_event_through() -> None:
    from jikeyun_kingdee.order import UntilTrigger

    never = UntilTrigger(("tests.dags.test_order.NeverTrigger", {}), datetime.now(timezone.utc))
    classpath, kwargs = never.serialize()
    assert classpath == "jikeyun_kingdee.order.UntilTrigger"
    again = UntilTrigger(**kwargs)  # as the triggerer builds it from the stored kwargs
    event = asyncio.run(_first_event(again))
    assert event.payload["status"] == "timeout"

    soon = UntilTrigger(("tests.dags.test_order.NeverTrigger", {"after": 0.01}),
                        datetime.now(timezone.utc) + timedelta(minutes=10))
    assert asyncio.run(_first_event(soon)).payload == {"status": "success"}


async def _first_event(trigger: Any) -> Any:
    async for event in trigger.run():
        return event
    return None


class NeverTrigger(BaseTrigger):
    """Fires ``success`` after ``after`` seconds, or never."""

    def __init__(self, after: float | None = None) -> None:
        super().__init__()
        self.after = after

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return "tests.dags.test_order.NeverTrigger", {"after": self.after}

    async def run(self) -> Any:
        if self.after is None:
            await asyncio.Event().wait()
        await asyncio.sleep(self.after or 0)
        yield TriggerEvent({"status": "success"})


@pytest.mark.parametrize(("waits_for", "error"), [
    (["goods_elsewhere"], "'goods_elsewhere' is not a valid scheme of"),
    ([BASE], f"'{BASE}' runs on schedule '30 2 * * *'"),
    ([DOCUMENT], f"'{DOCUMENT}' is not a base-data scheme"),
    ([BASE, BASE], f"'{BASE}' is named twice"),
])
def test_a_document_naming_a_base_data_scheme_it_cannot_wait_for_is_an_import_error(
        airflow_db, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, waits_for: list[str], error: str) -> None:
    folder = write_schemes(tmp_path / "schemes", {**warehouse_scheme(BASE), "schedule": "30 2 * * *"},
                           document_scheme(DOCUMENT, [], wait_minutes=1),
                           document_scheme("order_broken_I0134", waits_for, wait_minutes=1))
    monkeypatch.setenv("JIKEYUN_KINGDEE_SCHEMES", str(folder))
    bag = load_dag_bag(str(REPO / "dags"))
    (message,) = bag.import_errors.values()
    assert "order_broken_I0134.yaml: base_data.schemes: " in message and error in message, message
    assert {dag_id(BASE), dag_id(DOCUMENT)} <= set(bag.dags)  # the others still load
    assert dag_id("order_broken_I0134") not in bag.dags
