"""DAG integrity: the dags folder parses without errors, every DAG is well formed, broken schemes are reported."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from jikeyun_kingdee.compat import CronDataIntervalTimetable

from tests.support.airflow_compat import cron_of

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def dagbag():
    from tests.support.airflow_compat import load_dag_bag

    return load_dag_bag(str(REPO / "dags"))


def test_no_import_errors(dagbag) -> None:
    assert dagbag.import_errors == {}
    assert "jikeyun_kingdee_warehouse_I0134" in dagbag.dags


def test_every_dag_has_tags_owner_retries_and_an_interval_timetable(dagbag) -> None:
    for dag_id, dag in dagbag.dags.items():
        assert dag.tags, dag_id
        assert dag.max_active_runs == 1, dag_id
        assert isinstance(dag.timetable, CronDataIntervalTimetable), dag_id
        for task in dag.tasks:
            assert task.owner not in ("", "airflow"), (dag_id, task.task_id)
            assert task.retries >= 2, (dag_id, task.task_id)


def test_warehouse_dag_shape(dagbag) -> None:
    dag = dagbag.dags["jikeyun_kingdee_warehouse_I0134"]
    expression, timezone = cron_of(dag.timetable)
    assert expression == "0 * * * *" and "Asia/Shanghai" in timezone
    assert dag.catchup is True
    assert set(dag.task_dict) == {"check_target", "extract", "transform", "filter", "load_chunks", "load", "report"}
    upstream = {task_id: task.upstream_task_ids for task_id, task in dag.task_dict.items()}
    assert upstream["extract"] == set()
    assert upstream["transform"] == {"extract"}
    assert upstream["filter"] == {"transform"}
    assert upstream["check_target"] == {"filter"}  # once per run, after filter: it knows whether anything is written
    assert upstream["load_chunks"] == {"filter", "check_target"}
    assert upstream["load"] == {"load_chunks"}
    assert upstream["report"] == {"check_target", "extract", "transform", "filter", "load"}
    assert dag.params["full_resync"] is False


def test_broken_scheme_is_an_import_error_naming_file_and_field_and_others_still_load(tmp_path: Path) -> None:
    schemes = tmp_path / "schemes"
    schemes.mkdir()
    shutil.copy(REPO / "include" / "schemes" / "warehouse_I0134.yaml", schemes / "warehouse_I0134.yaml")
    broken = (REPO / "include" / "schemes" / "warehouse_I0134.yaml").read_text(encoding="utf-8")
    broken = broken.replace("name: warehouse_I0134", "name: warehouse_broken").replace(
        "form_id: BD_STOCK", "form_id: ''"
    )
    (schemes / "warehouse_broken.yaml").write_text(broken, encoding="utf-8")
    script = (
        "import json; from jikeyun_kingdee.local_runs import load_dag_bag;"
        f"bag = load_dag_bag({str(REPO / 'dags')!r});"
        "print(json.dumps({'dags': sorted(bag.dags), 'errors': bag.import_errors}))"
    )
    import json
    import os

    env = {**os.environ, "JIKEYUN_KINGDEE_SCHEMES": str(schemes)}
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["dags"] == ["jikeyun_kingdee_warehouse_I0134", "jikeyun_kingdee_warehouse_I0134_reconcile"]
    (message,) = result["errors"].values()
    assert "warehouse_broken.yaml" in message and "target.form_id" in message


def test_parsing_touches_no_network_or_database(tmp_path: Path) -> None:
    """Parse the DAG file with sockets disabled: any connect attempt raises."""
    script = (
        "import socket\n"
        "def refuse(*a, **k): raise RuntimeError('network access at parse time')\n"
        "socket.socket.connect = refuse\n"
        "import runpy\n"
        f"ns = runpy.run_path({str(REPO / 'dags' / 'jikeyun_kingdee_schemes.py')!r})\n"
        "print(sorted(k for k in ns if k.startswith('jikeyun_kingdee_')))\n"
    )
    import os

    env = {**os.environ, "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{tmp_path}/absent/never.db"}
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "jikeyun_kingdee_warehouse_I0134" in out.stdout
    assert not (tmp_path / "absent").exists()


def test_goods_dag_shape(dagbag) -> None:
    """The goods scheme ships as a sync DAG and a reconcile DAG, hourly in Asia/Shanghai like the warehouses."""
    dag = dagbag.dags["jikeyun_kingdee_goods_I0134"]
    expression, timezone = cron_of(dag.timetable)
    assert expression == "0 * * * *" and "Asia/Shanghai" in timezone
    assert set(dag.task_dict) == set(dagbag.dags["jikeyun_kingdee_warehouse_I0134"].task_dict)
    assert "jikeyun_kingdee_goods_I0134_reconcile" in dagbag.dags
