"""The Airflow pools that keep the writers of one Kingdee target apart, and the command that creates them.

Every sync ``load`` task runs in the pool of its target (:func:`target_pool`, one per form
and organisation) and takes one slot; the reconcile's ``repair`` task takes all :data:`TARGET_POOL_SLOTS` slots, so
it runs only when no load of that target runs, and no load starts while it runs.

A pool is deployment state, like a connection: the DAG file must not create it (no database at parse time), and
on Airflow 3 a task cannot either (tasks have no metadata-database access). A task in a pool that does not exist
is never scheduled (the scheduler logs "Tasks using non-existent pool … will not be scheduled"; the scheme's
deadline alert then fires), so create the pools where the metadata database is migrated::

    python -m jikeyun_kingdee.pools --apply          # every scheme of $JIKEYUN_KINGDEE_SCHEMES / include/schemes
    python -m jikeyun_kingdee.pools > pools.json && airflow pools import pools.json   # the same, by the CLI
    airflow pools set jikeyun_kingdee_bd_stock_i0134 4 "Kingdee BD_STOCK of I0134"   # or one by hand

Run it again after adding a scheme; it is idempotent and puts back the slot count if someone changed it (a pool
with fewer slots than the repair asks for would never run the repair, one with more would let loads overlap it).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from jikeyun_kingdee.scheme import Scheme, SchemeError, default_schemes_folder, load_scheme, scheme_files

TARGET_POOL_SLOTS = 4  # also the sync's parallel load tasks per run (max_active_tis_per_dagrun of ``load``)


def target_pool(scheme: Scheme) -> str:
    """The Airflow pool of the scheme's target: ``jikeyun_kingdee_<form>_<organisation>``, lower case, characters
    other than letters, digits and ``_`` replaced by ``_``. Every load into that form and organisation runs in it."""
    target = scheme.target
    return re.sub(r"[^a-z0-9_]", "_", f"jikeyun_kingdee_{target.form_id}_{target.organisation}".lower())


def target_pools(schemes: Iterable[Scheme]) -> dict[str, dict[str, Any]]:
    """The pools of ``schemes`` in the ``airflow pools import`` format: name → slots, description."""
    pools: dict[str, dict[str, Any]] = {}
    for scheme in schemes:
        target = scheme.target
        entry = pools.setdefault(target_pool(scheme), {
            "slots": TARGET_POOL_SLOTS, "include_deferred": False,
            "description": f"Kingdee {target.form_id} of organisation {target.organisation}: sync loads take 1 "
                           f"slot, the reconcile repair all {TARGET_POOL_SLOTS}. Schemes:",
        })
        entry["description"] += f" {scheme.name}"
    return pools


def ensure_pools(schemes: Iterable[Scheme]) -> dict[str, dict[str, Any]]:
    """Create or correct the pools of ``schemes`` in the metadata database (where it is reachable: the
    migration step of a deployment, a scheduler host, tests — not from a task on Airflow 3)."""
    from airflow.models.pool import Pool

    pools = target_pools(schemes)
    for name, pool in pools.items():
        Pool.create_or_update_pool(name=name, slots=pool["slots"], description=pool["description"],
                                   include_deferred=pool["include_deferred"])
    return pools


def default_folder() -> Path:
    """``$JIKEYUN_KINGDEE_SCHEMES``, else ``include/schemes`` next to the configured DAGs folder."""
    from jikeyun_kingdee.compat import conf

    dags_folder = Path(conf.get("core", "dags_folder"))
    return default_schemes_folder(dags_folder / "jikeyun_kingdee_schemes.py")


def schemes_of(folder: Path | None = None) -> tuple[list[Scheme], list[str]]:
    """The valid schemes of ``folder`` (default :func:`default_folder`) and the errors of the others."""
    schemes, errors = [], []
    for path in scheme_files(folder or default_folder()):
        try:
            schemes.append(load_scheme(path))
        except SchemeError as exc:
            errors.append(str(exc))
    return schemes, errors


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jikeyun_kingdee.pools", description=__doc__.splitlines()[0])
    parser.add_argument("--schemes", type=Path, default=None, help="scheme folder (default: as the DAG file finds it)")
    parser.add_argument("--apply", action="store_true", help="create or correct the pools in the metadata database")
    args = parser.parse_args(argv)
    schemes, errors = schemes_of(args.schemes)
    for error in errors:
        print(f"skipped: {error}", file=sys.stderr)
    if args.apply:
        for name, pool in ensure_pools(schemes).items():
            print(f"pool {name}: {pool['slots']} slots", file=sys.stderr)
    else:
        print(json.dumps(target_pools(schemes), ensure_ascii=False, indent=2))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
