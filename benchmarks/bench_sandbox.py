"""Serve one sandbox in this process for the benchmark:
``python benchmarks/bench_sandbox.py jikeyun|kingdee [options]``.

The options are the sandbox's own (``python -m jikeyun_kingdee.sandbox serve <kind> --help``). Kingdee takes
``--row-latency`` (seconds per row a write touches: Save/BatchSave models, Submit/Audit/UnAudit/Delete/Forbid/
Enable records, on top of the per-call ``latency`` fault); a Kingdee sandbox without that setting of its own gets
it from this script, counted the same way. The sandbox serves until terminated.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from typing import Any

WRITES = ("Save", "BatchSave", "Submit", "Audit", "UnAudit", "Delete", "ExcuteOperation")


def rows_written(operation: str, params: dict[str, Any]) -> int:
    """Rows a Kingdee write call touches; 0 for anything else."""
    data = params.get("data") or {}
    if operation in ("Save", "BatchSave"):
        models = data.get("model")
        return len(models) if isinstance(models, list) else 1
    if operation in WRITES:
        ids, numbers = data.get("ids"), data.get("numbers")
        keys = ids.split(",") if isinstance(ids, str) and ids.strip() else ids or numbers or []
        return len(keys)
    return 0


def with_row_latency(server: Any, seconds: float) -> Any:
    """Make each write answer ``seconds`` later per row it touched (after the work, outside the sandbox's lock)."""
    from jikeyun_kingdee.sandbox.kingdee import OPERATIONS, SERVICE_RE

    handle = server.handle

    def slow_handle(request: Any) -> Any:
        reply = handle(request)
        match = SERVICE_RE.match(request.path.split("?")[0].lower())
        operation = OPERATIONS.get(match.group(2)) if match else None
        if operation in WRITES:
            try:
                rows = rows_written(operation, server._parameters(operation, request.body))
            except (ValueError, TypeError):
                rows = 0
            time.sleep(seconds * rows)
        return reply

    server.handle = slow_handle
    return server


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=("jikeyun", "kingdee"))
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    kind = next((a for a in argv if not a.startswith("-")), "")
    if kind not in ("jikeyun", "kingdee"):
        parser.parse_args(argv)  # exits with the usage
        return 2
    module = importlib.import_module(f"jikeyun_kingdee.sandbox.{kind}")
    module.add_arguments(parser)
    own_row_latency = kind == "kingdee" and "--row-latency" not in parser._option_string_actions
    if own_row_latency:
        parser.add_argument("--row-latency", type=float, default=0.0, help="seconds per row a write touches")
    args = parser.parse_args(argv)
    server = module.build_server(args)
    server.host, server.port = args.host, args.port
    if own_row_latency and args.row_latency:
        with_row_latency(server, args.row_latency)
    server.start()
    print(server.url, flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
