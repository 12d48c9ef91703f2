"""Command line for the sandboxes: ``serve`` one in the foreground, or send a ``control`` command to a running one.

Each sandbox module provides ``add_arguments(parser)`` and ``build_server(args) -> SandboxServer``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import sys
import urllib.error
import urllib.request

KINDS = ("jikeyun", "kingdee")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="python -m jikeyun_kingdee.sandbox", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run a sandbox in the foreground")
    kinds = serve.add_subparsers(dest="kind", required=True)
    # Only `serve` needs the sandbox modules (and so Airflow): `control` stays a quick HTTP client.
    for kind in KINDS if argv[:1] != ["control"] else ():
        module = importlib.import_module(f"jikeyun_kingdee.sandbox.{kind}")
        sub = kinds.add_parser(kind, help=(module.__doc__ or kind).strip().splitlines()[0])
        sub.add_argument("--host", default="127.0.0.1")
        sub.add_argument("--port", type=int, default=0)
        module.add_arguments(sub)
        sub.set_defaults(module=module)
    control = commands.add_parser("control", help="send a scripting command to a running sandbox")
    control.add_argument("url", help="sandbox base URL, e.g. http://127.0.0.1:8801")
    control.add_argument("action", help="faults | reset-faults | calls | reset-calls | a sandbox-specific command")
    control.add_argument("payload", nargs="?", default="{}", help="JSON object")
    args = parser.parse_args(argv)

    if args.command == "control":
        request = urllib.request.Request(
            f"{args.url.rstrip('/')}/_sandbox/{args.action}",
            data=json.dumps(json.loads(args.payload)).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:
                print(answer.read().decode())
        except urllib.error.HTTPError as error:
            print(f"{args.action}: {error.code} {error.read().decode(errors='replace')}", file=sys.stderr)
            return 1
        except OSError as error:
            print(f"cannot reach the sandbox at {args.url}: {error}", file=sys.stderr)
            return 1
        return 0

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    server = args.module.build_server(args)
    server.host, server.port = args.host, args.port
    server.start()
    print(f"{args.kind} sandbox listening on {server.url}", flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
