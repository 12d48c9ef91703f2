"""Staged NDJSON files between the tasks of a run, on any ``ObjectStoragePath`` (local folder, ``s3://``, ...).

Layout: ``<base>/<dag_id>/<window>/<run_id>/<step>/<part>.ndjson``. Each step writes only below its own folder and
clears it first, so a rerun of a task replaces exactly its own files. XCom carries only the manifests (paths, counts).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any

from jikeyun_kingdee.compat import ObjectStoragePath, conf

UNSAFE = re.compile(r"[^A-Za-z0-9_.+-]+")


def staging_base() -> ObjectStoragePath:
    """Configured by ``[jikeyun_kingdee] staging_base`` (``AIRFLOW__JIKEYUN_KINGDEE__STAGING_BASE``), e.g.
    ``s3://aws_default@bucket/jikeyun-kingdee``; default ``$AIRFLOW_HOME/jikeyun_kingdee/staging``."""
    base = conf.get("jikeyun_kingdee", "staging_base", fallback="") or ""
    if not base:
        home = os.environ.get("AIRFLOW_HOME") or conf.get("core", "airflow_home", fallback="~/airflow")
        base = "file://" + os.path.join(os.path.abspath(os.path.expanduser(home)), "jikeyun_kingdee", "staging")
    return ObjectStoragePath(base)


def window_label(start: datetime | None, end: datetime | None) -> str:
    if start is None or end is None:
        return "full"
    return f"{start:%Y%m%dT%H%M%S%z}--{end:%Y%m%dT%H%M%S%z}".replace("+0000", "Z")


def run_folder(base: ObjectStoragePath, dag_id: str, run_id: str, start: datetime | None, end: datetime | None) -> ObjectStoragePath:
    return base / dag_id / window_label(start, end) / UNSAFE.sub("_", run_id)


def fresh_folder(folder: ObjectStoragePath) -> ObjectStoragePath:
    """Empty ``folder`` (a previous attempt's files) and create it."""
    if folder.exists():
        folder.rmdir(recursive=True)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def write_ndjson(path: ObjectStoragePath, records: Iterable[dict[str, Any]]) -> int:
    """Write one JSON object a line (UTF-8); return how many."""
    count = 0
    with path.open("w", encoding="utf-8") as out:
        for record in records:
            out.write(json.dumps(record, ensure_ascii=False, separators=(",", ":"), default=str))
            out.write("\n")
            count += 1
    return count


def read_ndjson(path: ObjectStoragePath | str) -> Iterator[dict[str, Any]]:
    path = ObjectStoragePath(path) if isinstance(path, str) else path
    with path.open("r", encoding="utf-8") as lines:
        for line in iter(lines.readline, ""):  # Airflow 2's file wrapper is not iterable
            if line.strip():
                yield json.loads(line)
