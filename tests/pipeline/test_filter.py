"""The transform and filter steps on staged files: de-duplication over the whole run (latest wins, across parts and
chunks), lifecycle states, chunk sizes and their bound, rejects, and the empty window."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from jikeyun_kingdee import pipeline
from jikeyun_kingdee.items import FilterManifest, TransformManifest
from jikeyun_kingdee.pools import target_pool
from jikeyun_kingdee.scheme import Lifecycle, Scheme, load_scheme
from jikeyun_kingdee.staging import (
    ObjectStoragePath,
    fresh_folder,
    read_ndjson,
    write_ndjson,
)

SCHEME = load_scheme(Path(__file__).resolve().parents[2] / "include" / "schemes" / "warehouse_I0134.yaml")


def warehouse(code: str, modified: int, *, name: str | None = None, blocked: int = 0, deleted: int = 0
              ) -> dict[str, Any]:
    return {"warehouseCode": code, "warehouseName": name or f"仓库 {code}", "isBlockup": blocked, "isDelete": deleted,
            "gmtModified": modified}


def scheme_with(**changes: Any) -> Scheme:
    return SCHEME.model_copy(update=changes)


def run_steps(tmp_path: Path, scheme: Scheme, records: list[dict[str, Any]]
              ) -> tuple[TransformManifest, FilterManifest, list[dict]]:
    """Stage ``records`` as extract would (pages of 1,000), then transform and filter them."""
    folder = ObjectStoragePath(f"file://{tmp_path}/run")
    pages = fresh_folder(folder / "extract")
    paths = []
    for number in range(0, len(records), 1000):
        path = pages / f"page-{number // 1000:05d}.ndjson"
        write_ndjson(path, records[number:number + 1000])
        paths.append(str(path))
    transformed = pipeline.transform(scheme, folder, {"pages": paths})
    filtered = pipeline.filter_rows(scheme, folder, transformed)
    return transformed, filtered, [item for chunk in filtered["chunks"] for item in read_ndjson(chunk["items"])]


def test_latest_version_wins_across_parts_and_chunks(tmp_path: Path) -> None:
    records = [warehouse(f"WH{n:05d}", 1_000 + n) for n in range(2500)]  # three transform parts
    records[10] = warehouse("DUP", 5, name="oldest")       # part 0
    records[1500] = warehouse("DUP", 9, name="tie, first")  # part 1
    records[2400] = warehouse("DUP", 9, name="tie, last")   # part 2: same time, read last → wins
    records[2450] = warehouse("DUP", 7, name="older, read later")
    records[20] = warehouse("WH00030", 99_999, name="newest of WH00030")  # a later version read before the older one
    _, filtered, items = run_steps(tmp_path, scheme_with(rows_per_chunk=100), records)

    keys = [item["key"] for item in items]
    assert len(keys) == len(set(keys)) == 2500 - 4  # one per key over all chunks
    by_key = {item["key"]: item for item in items}
    assert by_key["DUP"]["row"]["FName"] == "tie, last" and by_key["DUP"]["modified"] == 9
    assert by_key["WH00030"]["row"]["FName"] == "newest of WH00030"
    assert keys[:3] == ["WH00000", "WH00001", "WH00002"] and keys.index("DUP") == 10  # first-read order
    assert filtered["counts"] == {"in": 2500, "filtered_out": 0, "duplicates": 4, "rows": 2496, "retire": 0,
                                  "chunks": 25}
    assert [chunk["rows"] for chunk in filtered["chunks"]] == [100] * 24 + [96]
    assert set(items[0]) == {"key", "modified", "row", "state"}


def test_the_latest_version_decides_the_state(tmp_path: Path) -> None:
    """A warehouse active first and blocked later in the same run: its blocked version is what counts."""
    records = [warehouse("A", 1), warehouse("A", 2, blocked=1), warehouse("B", 2, blocked=1), warehouse("B", 3)]
    _, filtered, items = run_steps(tmp_path / "forbid", SCHEME, records)
    assert {item["key"]: item["state"] for item in items} == {"A": "blocked", "B": "active"}
    assert filtered["counts"]["retire"] == 1

    ignore = scheme_with(lifecycle=Lifecycle(on_blocked="ignore", on_deleted="ignore"))
    _, filtered, items = run_steps(tmp_path / "ignore", ignore, records)
    assert [(item["key"], item["state"]) for item in items] == [("B", "active")]  # not A's older active version
    assert (filtered["counts"]["filtered_out"], filtered["counts"]["duplicates"]) == (1, 2)


@pytest.mark.parametrize(
    ("lifecycle", "expected_states", "filtered_out"),
    [
        (Lifecycle(on_blocked="forbid", on_deleted="forbid"),
         {"ACT": "active", "BLK": "blocked", "DEL": "deleted", "BOTH": "deleted"}, 0),
        (Lifecycle(on_blocked="forbid", on_deleted="ignore"), {"ACT": "active", "BLK": "blocked"}, 2),
        (Lifecycle(on_blocked="ignore", on_deleted="forbid"),
         {"ACT": "active", "DEL": "deleted", "BOTH": "deleted"}, 1),
        (Lifecycle(on_blocked="ignore", on_deleted="ignore"), {"ACT": "active"}, 3),
        (None, {"ACT": "active"}, 3),  # no lifecycle: the condition (isBlockup == 0 and isDelete == 0) alone
    ],
)
def test_lifecycle_forbid_and_ignore(tmp_path: Path, lifecycle, expected_states, filtered_out: int) -> None:
    records = [warehouse("ACT", 1), warehouse("BLK", 2, blocked=1), warehouse("DEL", 3, deleted=1),
               warehouse("BOTH", 4, blocked=1, deleted=1)]
    _, filtered, items = run_steps(tmp_path, scheme_with(lifecycle=lifecycle), records)
    assert {item["key"]: item["state"] for item in items} == expected_states
    counts = filtered["counts"]
    assert (counts["filtered_out"], counts["rows"], counts["retire"]) == (filtered_out, 4 - filtered_out,
                                                                          len(expected_states) - 1)


@pytest.mark.parametrize(
    ("rows_per_chunk", "max_load_chunks", "sizes"),
    [(300, 64, [300, 300, 300, 100]), (100, 4, [250, 250, 250, 250]), (100, 3, [334, 334, 332]),
     (2000, 64, [1000]), (1, 16, [63] * 15 + [55])],
)
def test_chunks_hold_rows_per_chunk_and_stay_within_max_load_chunks(
    tmp_path: Path, rows_per_chunk: int, max_load_chunks: int, sizes: list[int]
) -> None:
    records = [warehouse(f"WH{n:04d}", n) for n in range(1000)]
    scheme = scheme_with(rows_per_chunk=rows_per_chunk, max_load_chunks=max_load_chunks)
    _, filtered, items = run_steps(tmp_path, scheme, records)
    assert [chunk["rows"] for chunk in filtered["chunks"]] == sizes
    assert [chunk["chunk"] for chunk in filtered["chunks"]] == list(range(len(sizes)))
    assert [sum(1 for _ in read_ndjson(chunk["items"])) for chunk in filtered["chunks"]] == sizes
    assert [item["key"] for item in items] == [r["warehouseCode"] for r in records]


def test_without_deduplication_every_version_is_staged(tmp_path: Path) -> None:
    scheme = scheme_with(source=SCHEME.source.model_copy(update={"deduplicate": False}))
    _, filtered, items = run_steps(tmp_path, scheme, [warehouse("A", 2), warehouse("A", 1), warehouse("B", 1)])
    assert [(item["key"], item["modified"]) for item in items] == [("A", 2), ("A", 1), ("B", 1)]
    assert filtered["counts"]["duplicates"] == 0


def test_rejects_are_streamed_to_their_file_naming_the_id_or_the_position(tmp_path: Path) -> None:
    records = [warehouse(f"WH{n:04d}", n) for n in range(1500)]
    for n in range(0, 1500, 3):
        records[n] = {"warehouseId": f"ID{n}", "warehouseName": "no code", "gmtModified": n}  # no business key
    records[1] = warehouse("NONAME", 1, name=" ")
    transformed, filtered, items = run_steps(tmp_path, SCHEME, records)
    rejects = list(read_ndjson(transformed["rejects"]))
    assert transformed["rejected"] == len(rejects) == 501
    assert rejects[0] == {"key": "record #0", "step": "transform", "reason": "warehouseCode: Field required"}
    assert rejects[1]["key"] == "NONAME" and "FName: required but empty" in rejects[1]["reason"]
    assert not any(reject["key"].startswith("ID") for reject in rejects)  # no fallback to another source field
    assert transformed["items"] == filtered["counts"]["in"] == len(items) == 999


def test_an_empty_window_stages_no_chunk(tmp_path: Path) -> None:
    transformed, filtered, items = run_steps(tmp_path, SCHEME, [])
    assert (transformed["items"], transformed["rejected"], transformed["parts"]) == (0, 0, [])
    assert filtered["chunks"] == [] and items == []
    assert filtered["counts"] == {"in": 0, "filtered_out": 0, "duplicates": 0, "rows": 0, "retire": 0, "chunks": 0}
    assert list((ObjectStoragePath(f"file://{tmp_path}/run") / "filter").iterdir()) == []


def test_a_rerun_of_filter_replaces_its_own_files(tmp_path: Path) -> None:
    scheme = scheme_with(rows_per_chunk=10)
    run_steps(tmp_path, scheme, [warehouse(f"WH{n}", n) for n in range(50)])
    _, filtered, _ = run_steps(tmp_path, scheme, [warehouse(f"WH{n}", n) for n in range(15)])
    folder = ObjectStoragePath(f"file://{tmp_path}/run") / "filter"
    assert sorted(path.name for path in folder.iterdir()) == ["chunk-00000.ndjson", "chunk-00001.ndjson"]
    assert filtered["counts"]["chunks"] == 2


def test_target_pool_names_form_and_organisation() -> None:
    assert target_pool(SCHEME) == "jikeyun_kingdee_bd_stock_i0134"
    other = scheme_with(target=SCHEME.target.model_copy(update={"organisation": "Org 100.2"}))
    assert target_pool(other) == "jikeyun_kingdee_bd_stock_org_100_2"
