"""Staged NDJSON files between the tasks of a run, on any ``ObjectStoragePath`` (local folder, ``s3://``, ...).

Layout: ``<base>/<dag_id>/<window>/<run_id>/<step>/<part>.ndjson``. Each step writes only below its own folder and
clears it first, so a rerun of a task replaces exactly its own files. XCom carries only the manifests (paths, counts).

:class:`LatestByKey` is a task's local scratch (a SQLite file in the temp folder), not staging: it keeps the latest
item per key without holding the items in memory.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from itertools import islice
from types import TracebackType
from typing import Any

from jikeyun_kingdee.compat import ObjectStoragePath as ObjectStoragePath
from jikeyun_kingdee.compat import conf

UNSAFE = re.compile(r"[^A-Za-z0-9_.+-]+")
LINES_PER_WRITE = 500
BYTES_PER_READ = 1 << 20


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


def run_folder(
    base: ObjectStoragePath, dag_id: str, run_id: str, start: datetime | None, end: datetime | None
) -> ObjectStoragePath:
    return base / dag_id / window_label(start, end) / UNSAFE.sub("_", run_id)


def fresh_folder(folder: ObjectStoragePath) -> ObjectStoragePath:
    """Empty ``folder`` (a previous attempt's files) and create it."""
    if folder.exists():
        folder.rmdir(recursive=True)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str)


def encode(record: Mapping[str, Any]) -> str:
    """One record as one NDJSON line's text (without the newline)."""
    return _ENCODER.encode(record)


@contextmanager
def ndjson_writer(path: ObjectStoragePath) -> Iterator[Callable[[Mapping[str, Any]], None]]:
    """Write records to ``path`` one at a time, as they come: ``with ndjson_writer(path) as write: write(record)``."""
    with path.open("w", encoding="utf-8") as out:
        yield lambda record: out.write(encode(record) + "\n")


def write_ndjson(path: ObjectStoragePath, records: Iterable[Mapping[str, Any]]) -> int:
    """Write one JSON object a line (UTF-8); return how many."""
    return write_lines(path, (encode(record) for record in records))


def write_lines(path: ObjectStoragePath, lines: Iterable[str]) -> int:
    """Write NDJSON lines that are already encoded (:func:`encode`); return how many.

    Lines go out in blocks of :data:`LINES_PER_WRITE`: every call on an ``ObjectStoragePath`` file passes Airflow's
    lineage tracking, which costs more than encoding a line.
    """
    count = 0
    remaining = iter(lines)
    with path.open("w", encoding="utf-8") as out:
        while block := list(islice(remaining, LINES_PER_WRITE)):
            out.write("\n".join(block) + "\n")
            count += len(block)
    return count


def write_parts(
    folder: ObjectStoragePath, prefix: str, records: Iterable[Mapping[str, Any]], per_file: int
) -> list[tuple[str, int]]:
    """``records`` as NDJSON files ``<prefix>-00000.ndjson``, ``-00001``, … of at most ``per_file`` records each,
    read lazily; returns ``(path, records)`` per file."""
    remaining, parts = iter(records), list[tuple[str, int]]()
    while block := list(islice(remaining, per_file)):
        path = folder / f"{prefix}-{len(parts):05d}.ndjson"
        parts.append((str(path), write_ndjson(path, block)))
    return parts


def read_parts(paths: Iterable[str]) -> Iterator[dict[str, Any]]:
    """The records of several NDJSON files, in order."""
    for path in paths:
        yield from read_ndjson(path)


def read_ndjson(path: ObjectStoragePath | str) -> Iterator[dict[str, Any]]:
    """The records of an NDJSON file, read in blocks of about :data:`BYTES_PER_READ` (Airflow 2's file wrapper is
    not iterable, and a call per line would pass the lineage tracking each time)."""
    path = ObjectStoragePath(path) if isinstance(path, str) else path
    with path.open("r", encoding="utf-8") as lines:
        while block := lines.readlines(BYTES_PER_READ):
            for line in block:
                if line.strip():
                    yield json.loads(line)


class LatestByKey:
    """The latest item per key (greatest ``modified``; ties: the one put last), on local disk, not in memory.

    A SQLite file in a fresh temp folder (``tempfile``), removed on :meth:`close`. Items are JSON texts; an item may be
    ``None`` (the key is known, its latest version is not wanted). Read back in the order keys were first put.
    """

    def __init__(self) -> None:
        self._scratch = tempfile.TemporaryDirectory(prefix="jikeyun-kingdee-")
        self._db = sqlite3.connect(os.path.join(self._scratch.name, "latest.db"))
        self._db.executescript(
            "PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF;"
            "CREATE TABLE latest (key TEXT PRIMARY KEY, modified INTEGER NOT NULL, label TEXT, item TEXT);"
        )

    def put(self, entries: Iterable[tuple[str, int, str | None, str | None]]) -> int:
        """Put ``(key, modified, label, item)`` entries, read lazily; return how many were put."""
        count = 0

        def counted() -> Iterator[tuple[str, int, str | None, str | None]]:
            nonlocal count
            for entry in entries:
                count += 1
                yield entry

        with self._db:
            self._db.executemany(
                "INSERT INTO latest (key, modified, label, item) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (key) DO UPDATE SET modified = excluded.modified, label = excluded.label, "
                "item = excluded.item WHERE excluded.modified >= latest.modified",
                counted(),
            )
        return count

    def counts(self) -> dict[str | None, int]:
        """Keys per label of their latest item."""
        return dict(self._db.execute("SELECT label, count(*) FROM latest GROUP BY label").fetchall())

    def items(self) -> Iterator[str]:
        """The latest items that are not ``None``, in first-put order of their keys."""
        for (item,) in self._db.execute("SELECT item FROM latest WHERE item IS NOT NULL ORDER BY rowid"):
            yield item

    def close(self) -> None:
        self._db.close()
        self._scratch.cleanup()

    def __enter__(self) -> LatestByKey:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()
