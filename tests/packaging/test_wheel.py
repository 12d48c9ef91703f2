"""``pip install .`` from the Docker build context (the files .dockerignore lets through) builds a complete wheel."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from email.parser import Parser

import pytest

from tests.support import REPO


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> zipfile.ZipFile:
    context = tmp_path_factory.mktemp("context")
    allowed = [
        line[1:].strip("/") for line in (REPO / ".dockerignore").read_text().splitlines() if line.startswith("!")
    ]
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
    for name in allowed:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, context / name, ignore=ignore)
        elif source.exists():  # README.md is optional for the build
            shutil.copy(source, context / name)
    dist = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--wheel-dir", str(dist), str(context)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (built,) = dist.glob("airflow_jikeyun_kingdee-*.whl")
    return zipfile.ZipFile(built)


def _dist_info(wheel: zipfile.ZipFile, name: str) -> str:
    (path,) = [p for p in wheel.namelist() if p.endswith(f".dist-info/{name}")]
    return wheel.read(path).decode()


def test_wheel_holds_the_package_from_plugins(wheel):
    names = set(wheel.namelist())
    assert {
        "jikeyun_kingdee/__init__.py",
        "jikeyun_kingdee/provider_info.py",
        "jikeyun_kingdee/sandbox/__main__.py",
    } <= names
    assert not any(name.startswith("plugins/") for name in names)


def test_wheel_declares_the_provider_entry_point(wheel):
    entry_points = _dist_info(wheel, "entry_points.txt")
    assert "[apache_airflow_provider]" in entry_points
    assert "provider_info = jikeyun_kingdee:get_provider_info" in entry_points


def test_wheel_requires_airflow_2_11_to_3_3_and_its_libraries(wheel):
    from packaging.requirements import Requirement

    metadata = Parser().parsestr(_dist_info(wheel, "METADATA"))
    requires_dist = metadata.get_all("Requires-Dist")
    assert requires_dist is not None
    requires = {r.split(";")[0].replace(" ", "") for r in requires_dist}
    (airflow,) = [Requirement(r) for r in requires if Requirement(r).name == "apache-airflow"]
    admitted = {
        v for v in ("2.9.3", "2.10.0", "2.11.2", "3.0.6", "3.1.0", "3.3.2", "3.4.0") if airflow.specifier.contains(v)
    }
    # 3.1 and 3.2 stay admitted so that pip never moves an installed Airflow; compat refuses them at import
    assert admitted == {"2.11.2", "3.1.0", "3.3.2"}
    assert {"apache-airflow-providers-http", "pydantic", "pendulum"} <= {
        r.split("<")[0].split(">")[0] for r in requires
    }
    extras = metadata.get_all("Provides-Extra")
    assert extras is not None
    assert "test" in extras
