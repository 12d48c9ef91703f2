"""The ledger under the reconcile's repair, on SQLite and on PostgreSQL (the deployment's): a repair to the source's
current state is recorded over a later source time and stays ahead of every snapshot the ledger had applied, and
what a sync applied after the reconcile read Jikeyun is left alone (``superseded``). Loads go over real HTTP to the
Kingdee sandbox."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from jikeyun_kingdee.hooks.kingdee import KingdeeHook
from jikeyun_kingdee.items import LoadChunk
from jikeyun_kingdee.ledger import Applied, SyncLedger, row_hash
from jikeyun_kingdee.pipeline import load_chunk
from jikeyun_kingdee.sandbox.kingdee import KingdeeSandbox
from jikeyun_kingdee.scheme import load_scheme
from jikeyun_kingdee.staging import ObjectStoragePath, read_ndjson, write_ndjson

from tests.support import REPO, require_service
from tests.support.kingdee import ORG, warehouse
from tests.support.reconcile import KINGDEE_PASSWORD, writes
from tests.support.sandboxes import connected_kingdee

SCHEME = load_scheme(REPO / "include" / "schemes" / "warehouse_I0134.yaml")
T3, T5, T9 = 1_790_000_003_000, 1_790_000_005_000, 1_790_000_009_000  # source times, epoch ms
POSTGRES = "postgres@127.0.0.1:5432"  # user@host:port of the local server (trust auth)


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    """A database of its own on the local PostgreSQL (trust auth), dropped afterwards."""
    try:
        import psycopg2

        admin = psycopg2.connect(f"postgresql://{POSTGRES}/postgres", connect_timeout=5)
    except Exception as exc:  # psycopg2.OperationalError: no server
        require_service("PostgreSQL", False, f"{POSTGRES}: {exc}")
    name = f"jk_ledger_{uuid.uuid4().hex[:12]}"
    admin.autocommit = True  # CREATE/DROP DATABASE refuse a transaction block
    with admin.cursor() as cursor:
        cursor.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg2://{POSTGRES}/{name}"
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def ledger(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SyncLedger]:
    """A fresh ledger: a SQLite file, or the PostgreSQL database with a scheme name of its own."""
    if request.param == "sqlite":
        ledger = SyncLedger(SCHEME.name, url=f"sqlite:///{tmp_path / 'ledger.db'}")
    else:
        ledger = SyncLedger(f"{SCHEME.name}-{uuid.uuid4().hex[:8]}", url=request.getfixturevalue("postgres_url"))
    yield ledger
    ledger.dispose()


@pytest.fixture(scope="module")
def kingdee() -> Iterator[KingdeeSandbox]:
    with pytest.MonkeyPatch.context() as env, connected_kingdee(env, KINGDEE_PASSWORD) as sandbox:
        yield sandbox


@pytest.fixture
def load(kingdee: KingdeeSandbox, ledger: SyncLedger, tmp_path: Path):
    """Load ``items`` as chunk ``n`` of run ``run-<n>`` (an empty Kingdee first); returns the statuses by key."""
    kingdee.reset()
    folder = ObjectStoragePath(f"file://{tmp_path / 'run'}")
    (folder / "filter").mkdir(parents=True, exist_ok=True)

    def _load(items: list[dict[str, Any]], n: int, **kwargs: Any) -> dict[str, str]:
        path = folder / "filter" / f"items-{n:05d}.ndjson"
        write_ndjson(path, items)
        chunk: LoadChunk = {"chunk": n, "items": str(path), "rows": len(items)}
        manifest = load_chunk(SCHEME, KingdeeHook(), ledger, folder, chunk, f"run-{n}", **kwargs)
        return {r["key"]: r["status"] for r in read_ndjson(manifest["results"])}

    return _load


def item(code: str, modified: int, state: str = "active", name: str | None = None) -> dict[str, Any]:
    return {"key": code, "modified": modified, "row": warehouse(code, name), "state": state}


def stock(kingdee: KingdeeSandbox, code: str) -> tuple[str, str]:
    [found] = [s for s in kingdee.stocks(ORG) if s["FNumber"] == code]
    return found["FName"], found["FForbidStatus"]


def test_keep_later_time_records_the_repair_one_millisecond_after_the_ledgers_time(ledger: SyncLedger) -> None:
    ledger.advance({"WH1": Applied(T5, 7, "synced"), "WH2": Applied(T5, 8, "synced")}, "sync")
    ledger.advance({"WH1": Applied(T3, 7, "repaired")}, "late-sync")  # an older time is refused
    ledger.advance({"WH1": Applied(T3, 7, "repaired"), "WH2": Applied(T9, 8, "newer")}, "reconcile",
                   keep_later_time=True)
    assert ledger.entries(["WH1", "WH2"]) == {"WH1": Applied(T5 + 1, 7, "repaired"), "WH2": Applied(T9, 8, "newer")}
    ledger.advance({"WH1": Applied(T5, 7, "synced")}, "replay")  # the snapshot the ledger had applied: refused
    assert ledger.entries(["WH1"]) == {"WH1": Applied(T5 + 1, 7, "repaired")}
    ledger.advance({"WH1": Applied(T5 + 1000, 7, "later")}, "next-sync")  # any later source time goes through
    assert ledger.entries(["WH1"]) == {"WH1": Applied(T5 + 1000, 7, "later")}


def test_applied_since_names_what_other_runs_applied_from_a_moment_on(ledger: SyncLedger) -> None:
    ledger.advance({"BEFORE": T5, "OWN": T5}, "reconcile")
    moment = datetime.now(timezone.utc)
    ledger.advance({"AFTER": T5}, "sync")
    ledger.advance({"OWN": T9}, "reconcile")
    keys = ["BEFORE", "OWN", "AFTER", "UNKNOWN"]
    assert ledger.applied_since(keys, moment, other_than="reconcile") == {"AFTER"}
    assert ledger.applied_since(keys, moment, other_than="sync") == {"OWN"}
    assert ledger.applied_since(keys, datetime.now(timezone.utc), other_than="reconcile") == set()


def test_the_repair_writes_a_back_dated_block_and_a_replay_cannot_undo_it(load, kingdee, ledger) -> None:
    assert load([item("WH1", T5, name="同步时的名字")], 0) == {"WH1": "created"}
    read_at = datetime.now(timezone.utc)
    # Jikeyun now says: blocked, at T3 (earlier than the time the ledger holds). The sync skips it ...
    assert load([item("WH1", T3, "blocked")], 1) == {"WH1": "stale"}
    assert stock(kingdee, "WH1") == ("同步时的名字", "A")
    # ... the repair writes it, and the ledger holds the repaired state a millisecond after its own time.
    assert load([item("WH1", T3, "blocked")], 2, verify=True, read_at=read_at) == {"WH1": "forbidden"}
    assert stock(kingdee, "WH1") == ("同步时的名字", "B")
    [entry] = ledger.entries(["WH1"]).values()
    assert (entry.modified, entry.row_hash) == (T5 + 1, row_hash(warehouse("WH1"), "blocked"))
    before = writes(kingdee)
    assert load([item("WH1", T5, name="同步时的名字")], 3) == {"WH1": "stale"}  # the replayed snapshot
    assert (writes(kingdee), stock(kingdee, "WH1")) == (before, ("同步时的名字", "B"))


def test_what_a_sync_applied_after_the_source_read_is_superseded(load, kingdee) -> None:
    load([item("WH1", T3), item("WH2", T3)], 0)
    read_at = datetime.now(timezone.utc)  # the reconcile reads WH1 and WH2 as of T3
    load([item("WH1", T5, name="新版本")], 1)  # then a sync applies a newer version of WH1
    before = writes(kingdee)
    statuses = load([item("WH1", T3), item("WH2", T3)], 2, verify=True, read_at=read_at)
    assert statuses == {"WH1": "superseded", "WH2": "unchanged"}
    assert writes(kingdee) == before and stock(kingdee, "WH1") == ("新版本", "A")
    # Without a read time (a compare of an older release) every later source time counts as superseded.
    assert load([item("WH1", T3)], 3, verify=True) == {"WH1": "superseded"}
