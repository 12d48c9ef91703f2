"""read_target, compare and repair over real HTTP against the Kingdee sandbox (no Airflow run): the target is read in
pages of the scheme's lookup_limit, hand edits are found and repaired through ``load_chunk(verify=True)``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from jikeyun_kingdee.compat import ObjectStoragePath
from jikeyun_kingdee.hooks.kingdee import KingdeeHook
from jikeyun_kingdee.ledger import SyncLedger
from jikeyun_kingdee.pipeline import load_chunk
from jikeyun_kingdee.reconcile_steps import compare, read_target, repair
from jikeyun_kingdee.scheme import load_scheme
from jikeyun_kingdee.staging import read_ndjson, write_ndjson

from tests.support import REPO, drift
from tests.support.reconcile import writes

SCHEME = load_scheme(REPO / "include" / "schemes" / "warehouse_I0134.yaml")
T0 = 1_790_000_000_000


def item(code: str, name: str | None = None, state: str = "active", modified: int = T0) -> dict[str, Any]:
    row = {"FName": name or f"仓库{code}", "FNumber": code, "FStockProperty": "1", "FCreateOrgId": {"FNumber": "I0134"},
           "FUseOrgId": {"FNumber": "I0134"}, "FAllowMinusQty": True}
    return {"key": code, "modified": modified, "row": row, "state": state}


@pytest.fixture
def ledger(tmp_path: Path):
    ledger = SyncLedger(SCHEME.name, url=f"sqlite:///{tmp_path / 'ledger.db'}")
    yield ledger
    ledger.dispose()


def stage_source(folder: ObjectStoragePath, items: list[dict[str, Any]]) -> dict[str, Any]:
    """What read_source stages: the load items, and every transformed record (here the same records)."""
    (folder / "filter").mkdir(parents=True, exist_ok=True)
    (folder / "transform").mkdir(parents=True, exist_ok=True)
    write_ndjson(folder / "filter" / "items-00000.ndjson", items)
    write_ndjson(folder / "transform" / "part-00000.ndjson", items)
    write_ndjson(folder / "transform" / "rejects.ndjson", [])
    return {"items": [str(folder / "filter" / "items-00000.ndjson")],
            "parts": [str(folder / "transform" / "part-00000.ndjson")],
            "rejects": str(folder / "transform" / "rejects.ndjson")}


def test_read_target_reads_only_the_organisation_in_pages_of_the_lookup_limit(kingdee, tmp_path: Path) -> None:
    kingdee.add_stocks([{"FNumber": f"WH{i:03d}", "FName": f"仓库{i}", "FCreateOrgId": "I0134", "FUseOrgId": "I0134"}
                        for i in range(120)], status="C")
    kingdee.add_stocks([{"FNumber": "OTHER-ORG", "FName": "别的组织", "FCreateOrgId": "100", "FUseOrgId": "100"}])
    scheme = SCHEME.model_copy(update={"target": SCHEME.target.model_copy(update={"lookup_limit": 50})})
    folder = ObjectStoragePath(f"file://{tmp_path}/run")
    manifest = read_target(scheme, KingdeeHook(), folder)
    assert manifest["records"] == 120 and manifest["calls"]["ExecuteBillQuery"] == 3  # 50 + 50 + 20
    rows = [row for page in manifest["pages"] for row in read_ndjson(page)]
    assert sorted(r["FNumber"] for r in rows) == [f"WH{i:03d}" for i in range(120)]
    assert set(rows[0]) == {"FStockId", "FNumber", "FDocumentStatus", "FForbidStatus", "FName", "FStockProperty",
                            "FCreateOrgId.FNumber", "FUseOrgId.FNumber", "FAllowMinusQty"}


def test_hand_edits_are_found_repaired_through_the_load_path_and_read_back(kingdee, ledger, tmp_path: Path) -> None:
    synced = [item(f"WH{i:02d}") for i in range(30)]
    folder = ObjectStoragePath(f"file://{tmp_path}/sync")
    source = stage_source(folder, [*synced, item("BLK01", state="blocked")])
    load_chunk(SCHEME, KingdeeHook(), ledger, folder, {"chunk": 0, "items": source["items"][0], "rows": 31}, "sync")
    assert len(kingdee.stocks(org="I0134")) == 30  # the blocked one was never created

    drift.rename(kingdee, "WH01", "手工改名")
    drift.delete(kingdee, "WH02")
    drift.unaudit(kingdee, "WH03")
    drift.forbid(kingdee, "WH04")
    hand = drift.add_by_hand(kingdee, "HAND-01", "手工建的")
    # WH05 was blocked in Jikeyun later (a newer source time) and that window was never synced
    source_now = [
        *synced[:5],
        item("WH05", state="blocked", modified=T0 + 60000),
        *synced[6:],
        item("BLK01", state="blocked"),
    ]
    run = ObjectStoragePath(f"file://{tmp_path}/reconcile")
    source = stage_source(run, source_now)
    compared = compare(SCHEME, run, source, read_target(SCHEME, KingdeeHook(), run), rows_per_chunk=2)
    assert compared["found"]["counts"] == {"missing": 1, "differs": 1, "status": 3, "kingdee_only": 1}
    assert [c["rows"] for c in compared["repair_chunks"]] == [2, 2, 1]

    before = writes(kingdee)
    hook = KingdeeHook()
    repaired = repair(SCHEME, hook, ledger, run, compared, "reconcile")
    assert repaired["results"] == {"created": 1, "updated": 2, "enabled": 1, "forbidden": 1}
    assert repaired["left"]["drift"] == 0 and list(read_ndjson(repaired["left_file"])) == []
    stocks = {s["FNumber"]: s for s in kingdee.stocks(org="I0134")}
    assert stocks["WH01"]["FName"] == "仓库WH01" and stocks["WH02"]["FDocumentStatus"] == "C"
    assert stocks["WH03"]["FDocumentStatus"] == "C" and stocks["WH04"]["FForbidStatus"] == "A"
    assert stocks["WH05"]["FForbidStatus"] == "B" and stocks["HAND-01"] == hand
    assert writes(kingdee) != before and ledger.applied(["WH05"]) == {"WH05": T0 + 60_000}

    # Compared again: nothing; an older snapshot of WH05 (still active) is stale for the sync's load.
    again = ObjectStoragePath(f"file://{tmp_path}/again")
    assert (
        compare(
            SCHEME, again, stage_source(again, source_now), read_target(SCHEME, KingdeeHook(), again), rows_per_chunk=2
        )["found"]["drift"]
        == 0
    )
    before = writes(kingdee)
    old = load_chunk(
        SCHEME,
        KingdeeHook(),
        ledger,
        folder,
        {"chunk": 1, "items": str(folder / "filter" / "items-00000.ndjson"), "rows": 31},
        "old-sync-rerun",
    )
    assert {r["key"]: r["status"] for r in read_ndjson(old["results"])}["WH05"] == "stale"
    assert writes(kingdee) == before and stocks == {s["FNumber"]: s for s in kingdee.stocks(org="I0134")}
