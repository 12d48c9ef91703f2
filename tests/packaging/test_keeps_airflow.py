"""Installing the package beside an Airflow never moves that Airflow to another line.

Users add the package to the Airflow they already run. This asks pip, in the venv of the running test (an Airflow of
a supported line already installed), what a plain ``pip install <this repository>`` would install — a dry run with
pip's JSON report, resolving against the package index as a user's pip would, without the constraints files — and
checks that Airflow is not among it. The same is asked with the Airflow pinned to the installed release. Needs the
package index (PyPI or its mirror), as any install does: without it the test fails, it is never skipped.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from airflow import __version__ as AIRFLOW_VERSION

REPOSITORY = Path(__file__).resolve().parents[2]


def _would_install(*requirements: str) -> dict[str, str]:
    """``{name: version}`` of what ``pip install`` of these requirements would install here (dry run)."""
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "--quiet", "--report", "-", "--no-input",
         *requirements],
        capture_output=True, text=True, timeout=600, check=False,
    )
    assert done.returncode == 0, f"pip could not resolve {requirements}:\n{done.stderr[-3000:]}"
    report = json.loads(done.stdout)
    return {i["metadata"]["name"].lower(): i["metadata"]["version"] for i in report["install"]}


@pytest.mark.parametrize("pinned", [False, True], ids=["plain", "airflow pinned"])
def test_installing_the_package_keeps_the_installed_airflow(pinned):
    requirements = [str(REPOSITORY), *([f"apache-airflow=={AIRFLOW_VERSION}"] if pinned else [])]
    would_install = _would_install(*requirements)
    assert "airflow-jikeyun-kingdee" in would_install  # the resolver did look at the package
    moved = {name: version for name, version in would_install.items() if name.startswith("apache-airflow")
             and not name.startswith("apache-airflow-providers")}
    assert moved == {}, f"installing the package would move Airflow {AIRFLOW_VERSION} to {moved}"


@pytest.mark.parametrize("version", ["3.1.8", "3.2.2", "3.4.0"])
def test_an_unsupported_line_is_refused_at_import_naming_the_supported_ones(version):
    """The requirements admit 3.1 and 3.2 (so pip never moves them); the package then refuses them plainly."""
    done = subprocess.run(
        [sys.executable, "-c", f"import airflow; airflow.__version__ = {version!r}; import jikeyun_kingdee.compat"],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert done.returncode != 0
    assert f"jikeyun_kingdee supports Airflow 2.11 and 3.3; this is Airflow {version}" in done.stderr


def test_a_supported_line_imports():
    done = subprocess.run([sys.executable, "-c", "import jikeyun_kingdee.compat"], capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
