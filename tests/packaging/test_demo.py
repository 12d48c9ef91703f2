"""The README's main job, ``make demo`` (``python -m jikeyun_kingdee.demo``), works on the Airflow line of this venv.

Run as a user runs it: a separate process with none of the test session's Airflow settings, its own embedded
Airflow home (SQLite, local staging) and both sandboxes; the initial full load, the next hourly window and the
reconcile must all succeed. `make test` runs it on every supported line (3.3 and 2.11).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from airflow import __version__ as AIRFLOW_VERSION


def test_the_demo_runs_its_full_load_hourly_window_and_reconcile(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "JIKEYUN_KINGDEE"))}
    done = subprocess.run(
        [sys.executable, "-m", "jikeyun_kingdee.demo", "--home", str(tmp_path / "demo"),
         "--warehouses", "300", "--show", "400"],
        capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path, check=False,
    )
    out = done.stdout
    assert done.returncode == 0, f"demo failed on Airflow {AIRFLOW_VERSION}:\n{out[-3000:]}\n{done.stderr[-3000:]}"
    for run in ("initial load (full resync)", "next hourly window", "reconcile"):
        assert any(line.startswith(f"== {run}") and line.endswith("→ success") for line in out.splitlines()), run
    assert "演示新建仓" in out  # the warehouse added in the hourly window stands in Kingdee
    # after the base-data runs, the sales outbound DAG over the same hour: shipped trades posted, one waiting
    assert any(line.startswith("== sales outbound: the hourly window") and line.endswith("→ success")
               for line in out.splitlines())
    assert "Kingdee SAL_OUTSTOCK of I0134: 3 documents" in out
    assert re.search(r"waiting: \S+ lacks BD_Customer DY001", out), out[-3000:]
    assert f"Demo succeeded; staged files under {tmp_path / 'demo' / 'staging'}" in out
