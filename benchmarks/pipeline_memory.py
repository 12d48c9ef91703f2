"""Peak memory (RSS) of the transform and filter steps against the number of warehouses in a run.

    .venv/bin/python benchmarks/pipeline_memory.py [--sizes 1000 10000 100000] \
        [--scheme include/schemes/warehouse_I0134.yaml]

For each size a fresh process stages the extract pages (generated warehouses: about 20 % blocked up, 2 % deleted,
5 % a second, later version of another warehouse), then each step runs in a process of its own, so its peak RSS
(``ru_maxrss``) is its own: the figure printed is that peak, and the part of it above the process's size after the
imports. Figures go to stdout; nothing is asserted (the issue's goal: the peak at 100,000 at most the peak at 1,000
plus 30 MB).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

STAGE = r"""
import json, random, sys
from jikeyun_kingdee.staging import ObjectStoragePath, fresh_folder, write_ndjson
folder, size = ObjectStoragePath(sys.argv[1]), int(sys.argv[2])
rng = random.Random(7)
out = fresh_folder(folder / "extract")
pages = []
def warehouse(n, modified):
    return {"warehouseId": str(10_000_000 + n), "warehouseCode": f"WH{n:07d}", "warehouseName": f"仓库 {n} 号",
            "isBlockup": 1 if rng.random() < 0.2 else 0, "isDelete": 1 if rng.random() < 0.02 else 0,
            "warehouseTypeCode": "1", "address": f"上海市浦东新区 {n} 号", "tel": "021-5555 0000",
            "gmtCreate": 1_600_000_000_000, "gmtModified": modified}
originals = int(size / 1.05)
records = (warehouse(n, 1_700_000_000_000 + n * 1000) if n < originals
           else warehouse(rng.randrange(originals), 1_800_000_000_000 + n) for n in range(size))
page = []
for record in records:
    page.append(record)
    if len(page) == 1000:
        path = out / f"page-{len(pages):05d}.ndjson"; write_ndjson(path, page); pages.append(str(path)); page = []
if page:
    path = out / f"page-{len(pages):05d}.ndjson"; write_ndjson(path, page); pages.append(str(path))
print("RESULT " + json.dumps({"pages": pages}))
"""

STEP = r"""
import json, resource, sys, time
from jikeyun_kingdee import pipeline
from jikeyun_kingdee.scheme import load_scheme
from jikeyun_kingdee.staging import ObjectStoragePath
scheme = load_scheme(sys.argv[1])
folder, step, manifest = ObjectStoragePath(sys.argv[2]), sys.argv[3], json.loads(sys.argv[4])
imported = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
started = time.perf_counter()
result = getattr(pipeline, step)(scheme, folder, manifest)
seconds = time.perf_counter() - started
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print("RESULT " + json.dumps({"manifest": result, "imported_kb": imported, "peak_kb": peak, "seconds": seconds}))
"""


def run(script: str, *args: str) -> dict:
    out = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, check=False)
    if out.returncode:
        raise SystemExit(out.stderr[-3000:])
    result: dict = json.loads(next(line for line in out.stdout.splitlines() if line.startswith("RESULT "))[7:])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10_000, 100_000])
    parser.add_argument("--scheme", default=str(REPO / "include" / "schemes" / "warehouse_I0134.yaml"))
    options = parser.parse_args()
    print(f"{'warehouses':>10} {'step':>11} {'peak RSS MB':>12} {'above imports MB':>17} {'seconds':>8}  counts")
    peaks: dict[str, dict[int, float]] = {"transform": {}, "filter_rows": {}}
    for size in options.sizes:
        with tempfile.TemporaryDirectory(prefix="jk-memory-") as scratch:
            folder = f"file://{scratch}/run"
            manifest = run(STAGE, folder, str(size))
            for step in ("transform", "filter_rows"):
                result = run(STEP, options.scheme, folder, step, json.dumps(manifest))
                manifest = result["manifest"]
                peak, above = result["peak_kb"] / 1024, (result["peak_kb"] - result["imported_kb"]) / 1024
                peaks[step][size] = peak
                counts = manifest.get("counts") or {
                    "items": manifest.get("items"),
                    "rejected": manifest.get("rejected"),
                }
                print(
                    f"{size:>10} {step:>11} {peak:>12.1f} {above:>17.1f} {result['seconds']:>8.2f}  "
                    f"{json.dumps(counts)}"
                )
    smallest, largest = min(options.sizes), max(options.sizes)
    for step, by_size in peaks.items():
        growth = by_size[largest] - by_size[smallest]
        print(f"{step}: peak at {largest:,} = peak at {smallest:,} + {growth:.1f} MB (goal: at most + 30 MB)")


if __name__ == "__main__":
    main()
