"""The compare step over staged files: the SQLite join, the staged findings and the staged repair chunks."""

from __future__ import annotations

from pathlib import Path

import pytest

from jikeyun_kingdee.compat import ObjectStoragePath
from jikeyun_kingdee.reconcile_steps import compare
from jikeyun_kingdee.scheme import load_scheme
from jikeyun_kingdee.staging import read_ndjson, write_ndjson

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def scheme():
    return load_scheme(REPO / "include" / "schemes" / "warehouse_I0134.yaml")


def row(code: str, name: str) -> dict:
    return {"FName": name, "FNumber": code, "FStockProperty": "1", "FCreateOrgId": {"FNumber": "I0134"},
            "FUseOrgId": {"FNumber": "I0134"}, "FAllowMinusQty": True}


def stock(stock_id: int, code: str, name: str, status: str = "C", forbid: str = "A") -> dict:
    return {"FStockId": stock_id, "FNumber": code, "FDocumentStatus": status, "FForbidStatus": forbid, "FName": name,
            "FStockProperty": "1", "FCreateOrgId.FNumber": "I0134", "FUseOrgId.FNumber": "I0134",
            "FAllowMinusQty": True}


def stage(folder: ObjectStoragePath, name: str, records: list[dict]) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    write_ndjson(folder / name, records)
    return str(folder / name)


def test_compare_classifies_by_number_and_stages_findings_and_repair_chunks(scheme, tmp_path: Path) -> None:
    folder = ObjectStoragePath(f"file://{tmp_path}/run")
    equal = [(f"EQ{i:03d}", f"仓库{i}") for i in range(50)]
    items = [{"key": code, "modified": 1000 + i, "row": row(code, name), "state": "active"}
             for i, (code, name) in enumerate(equal)]
    items += [
        {"key": "RENAMED", "modified": 5, "row": row("RENAMED", "新名"), "state": "active"},
        {"key": "GONE", "modified": 5, "row": row("GONE", "被删"), "state": "active"},
        {"key": "UNAUDITED", "modified": 5, "row": row("UNAUDITED", "未审核"), "state": "active"},
        {"key": "FORBIDDEN", "modified": 5, "row": row("FORBIDDEN", "被禁用"), "state": "active"},
        {"key": "BLOCKED", "modified": 5, "row": row("BLOCKED", "已停用"), "state": "blocked"},
        {"key": "BLOCKED-ABSENT", "modified": 5, "row": row("BLOCKED-ABSENT", "从未同步"), "state": "deleted"},
        {"key": "NEVER-SYNCED", "modified": 5, "row": row("NEVER-SYNCED", "新窗口"), "state": "active"},
    ]
    # every transformed record, also those the condition drops (OUT-OF-SCOPE) and one transform reject (REJECTED)
    parts = [{"key": i["key"], "modified": i["modified"], "row": i["row"], "source": {}} for i in items]
    parts.append({"key": "OUT-OF-SCOPE", "modified": 1, "row": row("OUT-OF-SCOPE", "范围外"), "source": {}})
    stocks = [stock(100 + i, code, name) for i, (code, name) in enumerate(equal)]
    stocks += [stock(201, "RENAMED", "旧名"), stock(202, "UNAUDITED", "未审核", status="D"),
               stock(203, "FORBIDDEN", "被禁用", forbid="B"), stock(204, "BLOCKED", "已停用"),
               stock(205, "HAND-MADE", "手工建的"), stock(206, "OUT-OF-SCOPE", "范围外"),
               stock(207, "REJECTED", "源数据有误")]
    source = {
        "items": [
            stage(folder / "filter", "items-00000.ndjson", items[:30]),
            stage(folder / "filter", "items-00001.ndjson", items[30:]),
        ],
        "parts": [stage(folder / "transform", "part-00000.ndjson", parts)],
        "rejects": stage(
            folder / "transform", "rejects.ndjson", [{"key": "REJECTED", "step": "transform", "reason": "x"}]
        ),
    }
    target = {
        "pages": [
            stage(folder / "target", "page-00000.ndjson", stocks[:20]),
            stage(folder / "target", "page-00001.ndjson", stocks[20:]),
        ]
    }

    manifest = compare(scheme, folder, source, target, rows_per_chunk=4)

    found = manifest["found"]
    assert found["counts"] == {"missing": 2, "differs": 1, "status": 3, "kingdee_only": 1}
    assert found["drift"] == 6
    assert found["keys"] == {
        "missing": ["GONE", "NEVER-SYNCED"],
        "differs": ["RENAMED"],
        "status": ["BLOCKED", "FORBIDDEN", "UNAUDITED"],
        "kingdee_only": ["HAND-MADE"],
    }
    assert manifest["out_of_scope"] == 2  # OUT-OF-SCOPE and REJECTED: Jikeyun has them, the scheme does not sync them
    staged = {f["key"]: f for f in read_ndjson(manifest["drift_file"])}
    assert staged["RENAMED"]["reasons"] == ["FName: Kingdee '旧名', Jikeyun '新名'"] and staged["RENAMED"]["id"] == 201
    assert staged["HAND-MADE"]["drift"] == "kingdee_only" and len(staged) == 7

    # the drift is staged as load chunks in the sync's item format, the Kingdee-only record is not among them
    chunks = manifest["repair_chunks"]
    assert [(c["chunk"], c["rows"]) for c in chunks] == [(0, 4), (1, 2)]
    repair_items = [i for c in chunks for i in read_ndjson(c["items"])]
    assert {i["key"] for i in repair_items} == {"GONE", "NEVER-SYNCED", "RENAMED", "BLOCKED", "FORBIDDEN", "UNAUDITED"}
    by_key = {i["key"]: i for i in items}
    assert all(i == by_key[i["key"]] for i in repair_items)


def test_compare_of_two_equal_sides_finds_nothing_and_stages_no_chunk(scheme, tmp_path: Path) -> None:
    folder = ObjectStoragePath(f"file://{tmp_path}/run")
    items = [
        {"key": "A1", "modified": 1, "row": row("A1", "甲"), "state": "active"},
        {"key": "B1", "modified": 1, "row": row("B1", "乙"), "state": "blocked"},
    ]
    source = {
        "items": [stage(folder / "filter", "items-00000.ndjson", items)],
        "parts": [stage(folder / "transform", "part-00000.ndjson", items)],
        "rejects": stage(folder / "transform", "rejects.ndjson", []),
    }
    target = {
        "pages": [
            stage(
                folder / "target",
                "page-00000.ndjson",
                [stock(1, "A1", "甲"), stock(2, "B1", "乙旧名", status="D", forbid="B")],
            )
        ]
    }
    manifest = compare(scheme, folder, source, target, rows_per_chunk=100)
    assert manifest["found"] == {
        "counts": {"missing": 0, "differs": 0, "status": 0, "kingdee_only": 0},
        "drift": 0,
        "keys": {},
    }
    assert manifest["repair_chunks"] == [] and list(read_ndjson(manifest["drift_file"])) == []
