"""``pipeline.load_chunk`` over real HTTP: chunk items in, results and manifest out, the ledger's id and hash."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from jikeyun_kingdee.items import LoadChunk
from jikeyun_kingdee.ledger import Applied, SyncLedger, row_hash
from jikeyun_kingdee.pipeline import load_chunk, summarise
from jikeyun_kingdee.scheme import load_scheme
from jikeyun_kingdee.staging import ObjectStoragePath, read_ndjson, write_ndjson

from tests.support import REPO
from tests.support.kingdee import ORG, warehouse

SCHEME = load_scheme(REPO / "include" / "schemes" / "warehouse_I0134.yaml")
T0 = 1_790_000_000_000  # a source modification time, epoch ms


def item(code: str, modified: int = T0, state: str = "active", **fields: Any) -> dict[str, Any]:
    """One line of a chunk's items file, as filter stages it."""
    return {"key": code, "modified": modified, "row": warehouse(code, **fields), "state": state}


@pytest.fixture
def ledger(tmp_path: Path):
    ledger = SyncLedger(SCHEME.name, url=f"sqlite:///{tmp_path / 'ledger.db'}")
    yield ledger
    ledger.dispose()


@pytest.fixture
def load(tmp_path: Path, connect, ledger):
    """Stage ``items`` as chunk ``n`` and load it with a fresh hook; returns (manifest, results, hook)."""
    folder = ObjectStoragePath(f"file://{tmp_path / 'run'}")
    staged = folder / "filter"
    staged.mkdir(parents=True, exist_ok=True)

    def _load(items: list[dict[str, Any]], n: int = 0, *, scheme=SCHEME, **kwargs: Any):
        path = staged / f"items-{n:05d}.ndjson"
        write_ndjson(path, items)
        hook = connect()
        chunk: LoadChunk = {"chunk": n, "items": str(path), "rows": len(items)}
        manifest = load_chunk(scheme, hook, ledger, folder, chunk, f"run-{n}", **kwargs)
        return manifest, list(read_ndjson(manifest["results"])), hook

    return _load


def statuses(results: list[dict[str, Any]]) -> dict[str, str]:
    return {r["key"]: r["status"] for r in results}


def test_results_manifest_and_the_ledger(load, sandbox, ledger) -> None:
    manifest, results, _hook = load([item("WH1"), item("WH2"), item("WH3", state="blocked")])
    assert results[0] == {"key": "WH1", "status": "created", "id": sandbox.stocks()[0]["FStockId"],
                          "modified": T0, "field": None, "message": None}
    assert statuses(results) == {"WH1": "created", "WH2": "created", "WH3": "absent"}
    assert manifest["counts"] == {"created": 2, "absent": 1} and manifest["chunk"] == 0
    assert manifest["results"].endswith("/load/chunk-00000.ndjson")
    assert dict(manifest["calls"].items()) == {"ValidateUser": 1, "ExecuteBillQuery": 1, "BatchSave": 1}
    assert manifest["retries"] == 0 and manifest["seconds"] > 0
    entries = ledger.entries(["WH1", "WH2", "WH3"])
    assert entries["WH1"] == Applied(T0, results[0]["id"], row_hash(warehouse("WH1"), "active"), "active")
    assert entries["WH3"].kingdee_id is None and ledger.count() == 2


def test_a_row_written_so_before_costs_no_call(load, sandbox) -> None:
    items = [item(f"WH{i}") for i in range(5)] + [item("GONE", state="deleted")]
    load(items)
    manifest, results, hook = load(items, 1)
    assert set(statuses(results).values()) == {"unchanged"} and results[0]["id"] == sandbox.stocks()[0]["FStockId"]
    assert dict(hook.call_counts) == {} and manifest["calls"] == {}  # not even a login


def test_a_record_deleted_by_hand_is_created_again_when_its_source_changes(load, sandbox) -> None:
    load([item("WH1"), item("WH2")])
    sandbox.delete_stocks(["WH1"])
    _, results, hook = load([item("WH1"), item("WH2")], 1)
    assert statuses(results) == {"WH1": "unchanged", "WH2": "unchanged"} and not hook.call_counts  # ledger trusted
    _, results, _ = load([item("WH1", modified=T0 + 1000, name="新名"), item("WH2")], 2)
    assert statuses(results) == {"WH1": "created", "WH2": "unchanged"}
    assert {s["FNumber"]: (s["FName"], s["FDocumentStatus"]) for s in sandbox.stocks(ORG)} == {
        "WH1": ("新名", "C"), "WH2": ("仓库WH2", "C")}


def test_a_record_renamed_by_hand_is_fixed_when_its_source_changes(load, sandbox) -> None:
    load([item("WH1")])
    sandbox.edit_stocks(["WH1"], FName="手工改名")
    _, results, hook = load([item("WH1", modified=T0 + 1000, FAllowMinusQty=False)], 1)  # another field changed
    assert statuses(results) == {"WH1": "updated"}
    stored = sandbox.stocks()[0]
    assert (stored["FName"], stored["FAllowMinusQty"], stored["FDocumentStatus"]) == ("仓库WH1", False, "C")
    assert {k: v for k, v in hook.call_counts.items() if k != "ValidateUser"} == {
        "ExecuteBillQuery": 1, "UnAudit": 1, "BatchSave": 1, "Submit": 1, "Audit": 1}


def test_verify_looks_up_what_the_ledger_calls_unchanged(load, sandbox) -> None:
    load([item("WH1"), item("WH2")])
    sandbox.edit_stocks(["WH1"], FName="手工改名")
    _, results, hook = load([item("WH1"), item("WH2")], 1, verify=True)
    assert statuses(results) == {"WH1": "updated", "WH2": "unchanged"}
    assert sandbox.stocks()[0]["FName"] == "仓库WH1" and hook.call_counts["ExecuteBillQuery"] == 1


def test_an_older_snapshot_is_stale_and_never_undoes_a_newer_state(load, sandbox) -> None:
    load([item("WH1", modified=T0)])
    load([item("WH1", modified=T0 + 5000, state="blocked")], 1)
    assert sandbox.stocks()[0]["FForbidStatus"] == "B"
    manifest, results, hook = load([item("WH1", modified=T0 + 1000, name="旧快照")], 2)
    assert results[0]["status"] == "stale" and "later source time" in results[0]["message"]
    assert manifest["counts"] == {"stale": 1} and not hook.call_counts
    assert (sandbox.stocks()[0]["FForbidStatus"], sandbox.stocks()[0]["FName"]) == ("B", "仓库WH1")


def test_lifecycle_counts_enabled_with_changed_fields_as_updated_too(load, sandbox) -> None:
    load([item("WH1"), item("WH2"), item("WH3")])
    manifest, results, _ = load([item("WH1", T0 + 1, "blocked"), item("WH2", T0 + 1, "deleted"), item("WH3")], 1)
    assert statuses(results) == {"WH1": "forbidden", "WH2": "forbidden", "WH3": "unchanged"}
    assert manifest["counts"] == {"forbidden": 2, "unchanged": 1} and manifest["calls"]["ExcuteOperation"] == 1
    manifest, results, _ = load([item("WH1", T0 + 2), item("WH2", T0 + 2, name="恢复并改名")], 2)
    assert statuses(results) == {"WH1": "enabled", "WH2": "enabled"}
    assert [r["message"] for r in results] == ["enabled; fields unchanged", "enabled; fields updated"]
    assert manifest["counts"] == {"enabled": 2, "updated": 1}
    assert {s["FForbidStatus"] for s in sandbox.stocks()} == {"A"}


def test_rejected_rows_are_not_recorded_and_are_tried_again(load, sandbox, ledger) -> None:
    sandbox.fail_rows(["WH2"], message="仓库名称包含非法字符")
    manifest, results, _ = load([item("WH1"), item("WH2")])
    assert statuses(results)["WH2"] == "rejected" and results[1]["field"] == "FNumber"
    assert manifest["counts"] == {"created": 1, "rejected": 1} and "WH2" not in ledger.entries(["WH2"])
    _, results, _ = load([item("WH1"), item("WH2")], 1)
    assert statuses(results) == {"WH1": "unchanged", "WH2": "created"}


def test_an_old_ledger_table_gets_the_new_columns_and_keeps_its_times(tmp_path: Path) -> None:
    path = tmp_path / "old-ledger.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE jikeyun_kingdee_sync_ledger (scheme VARCHAR(200) NOT NULL, record_key VARCHAR(200) "
                   "NOT NULL, source_modified BIGINT NOT NULL, run_id VARCHAR(250) NOT NULL, applied_at DATETIME "
                   "DEFAULT CURRENT_TIMESTAMP NOT NULL, PRIMARY KEY (scheme, record_key))")
        db.execute("INSERT INTO jikeyun_kingdee_sync_ledger (scheme, record_key, source_modified, run_id) "
                   "VALUES ('warehouse_I0134', 'WH1', 123, 'old-run')")
    ledger = SyncLedger("warehouse_I0134", url=f"sqlite:///{path}")
    try:
        assert ledger.entries(["WH1"]) == {"WH1": Applied(123, None, None)}  # no hash: looked up on its next load
        ledger.advance({"WH1": Applied(124, 7, "abc"), "WH2": 99}, "new-run")
        assert ledger.entries(["WH1", "WH2"]) == {"WH1": Applied(124, 7, "abc"), "WH2": Applied(99, None, None)}
        assert ledger.applied(["WH1"]) == {"WH1": 124} and ledger.count() == 1
        SyncLedger("warehouse_I0134", url=f"sqlite:///{path}").dispose()  # opening it again changes nothing
    finally:
        ledger.dispose()


def test_summary_counts_the_lifecycle(load, tmp_path: Path) -> None:
    first, _, _ = load([item("WH1"), item("WH2"), item("WH3"), item("NO", state="blocked")])
    second, _, _ = load([item("WH1", T0 + 1, "blocked"), item("WH2", T0 + 1, name="改")], 1)
    third, _, _ = load([item("WH1", T0 + 2, name="又改")], 2)
    rejects = ObjectStoragePath(f"file://{tmp_path / 'rejects.ndjson'}")
    write_ndjson(rejects, [])
    summary = summarise({"fetched": 5, "calls": {}}, {"rejected": 0, "rejects": str(rejects)},
                        {"counts": {"in": 7, "filtered_out": 0, "duplicates": 0, "rows": 7, "retire": 1, "chunks": 3}},
                        [first, second, third])
    assert (summary["created"], summary["forbidden"], summary["enabled"], summary["absent"]) == (3, 1, 1, 1)
    assert summary["updated"] == 2  # WH2 renamed, and WH1 enabled with a new name
    assert summary["api_calls"]["ExcuteOperation"] == 2 and summary["rejected"] == 0


def test_target_approval_and_the_older_submit_and_audit() -> None:
    from pydantic import ValidationError

    from jikeyun_kingdee.scheme import TargetSpec

    base = {"form_id": "BD_STOCK", "organisation": ORG, "pk_field": "FStockId",
            "fields": {"FNumber": "{warehouseCode}"}}
    assert (SCHEME.target.approval, SCHEME.target.lookup_limit) == ("auto", 2000)
    assert TargetSpec.model_validate(base).approval == "explicit"
    assert TargetSpec.model_validate(base | {"submit_and_audit": True}).approval == "explicit"
    assert TargetSpec.model_validate(base | {"submit_and_audit": False}).approval == "none"
    assert TargetSpec.model_validate(base | {"submit_and_audit": True, "approval": "auto"}).submit_and_audit
    with pytest.raises(ValidationError, match="contradicts"):
        TargetSpec.model_validate(base | {"submit_and_audit": False, "approval": "auto"})
    with pytest.raises(ValidationError, match="approval"):
        TargetSpec.model_validate(base | {"approval": "sometimes"})
    with pytest.raises(ValidationError, match="lookup_limit"):
        TargetSpec.model_validate(base | {"lookup_limit": 0})
