"""Airflow wiring of the reconciliation DAG ``jikeyun_kingdee_<scheme name>_reconcile`` (对账).

``read_source`` and ``read_target`` (every record of both sides) → ``compare`` → ``should_repair`` → ``repair`` (in
the target's pool, taking all its slots) → ``report``. It runs on the scheme's ``reconcile.schedule`` (daily by
default) or by hand; the trigger form's **Repair** param (default: the scheme's ``reconcile.repair``) turns repair
off for a dry run. The run fails when drift is left at the end — after repair, or all of it in a dry run — and
alerts the scheme's channels whenever it found drift. The steps are :mod:`jikeyun_kingdee.reconcile_steps`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from jikeyun_kingdee import reconcile_steps
from jikeyun_kingdee.alerting import failure_callbacks, notify_drift
from jikeyun_kingdee.compat import (
    DAG,
    AirflowFailException,
    CronDataIntervalTimetable,
    Param,
    get_current_context,
    task,
)
from jikeyun_kingdee.dag_factory import deadline_wiring, default_args, no_retry_on_fatal, run_conf, unless_alerted
from jikeyun_kingdee.pools import TARGET_POOL_SLOTS, target_pool
from jikeyun_kingdee.reconcile import CLASSES, describe, summarise
from jikeyun_kingdee.scheme import Scheme
from jikeyun_kingdee.staging import ObjectStoragePath, run_folder, staging_base

log = logging.getLogger(__name__)

CLASS_LABELS = {
    "missing": "Missing in Kingdee",
    "differs": "Fields differ",
    "status": "Status wrong",
    "kingdee_only": "Only in Kingdee (not touched)",
}


class DriftLeft(AirflowFailException):
    """Kingdee still differs from Jikeyun at the end of a reconcile run (named in the message; alerted)."""


def repair_enabled(scheme: Scheme, context: Mapping[str, Any]) -> bool:
    """The run's ``repair`` choice: the trigger form's param (:func:`run_conf`), else the scheme's default."""
    value = run_conf(context).get("repair")
    return value if isinstance(value, bool) else scheme.reconcile.repair


def _folder(scheme: Scheme, context: Mapping[str, Any]) -> ObjectStoragePath:
    return run_folder(staging_base(), scheme.reconcile_dag_id, context["run_id"], None, None)


def build_reconcile_dag(scheme: Scheme) -> DAG:
    """The DAG ``jikeyun_kingdee_<scheme name>_reconcile`` (hooks and the ledger are imported by the tasks that use
    them, not when the DAG file is parsed)."""
    alerting, source, target = scheme.alerting, scheme.source, scheme.target
    on_failure = failure_callbacks(alerting)
    dag_kwargs, report_sla = deadline_wiring(alerting)
    pool = target_pool(scheme)

    with DAG(
        dag_id=scheme.reconcile_dag_id,
        description=f"Reconcile {target.form_id} ({target.organisation}) with {source.method}: find and repair drift",
        # every run reads everything: the interval only says when it runs; no catch-up of missed days
        schedule=CronDataIntervalTimetable(scheme.reconcile.schedule, timezone=scheme.timezone),
        start_date=scheme.start_date,
        catchup=False,
        max_active_runs=1,
        tags=sorted({"jikeyun-kingdee", "reconcile", *scheme.tags}),
        default_args=default_args(scheme, on_failure),
        params={
            "repair": Param(
                scheme.reconcile.repair, type="boolean", title="Repair",
                description="Repair the drift found (through the sync's load path). Off: a dry run that only "
                            "reports it and writes nothing.",
            )
        },
        doc_md=__doc__,
        render_template_as_native_obj=True,
        **dag_kwargs,
    ) as dag:

        @task(task_id="read_source")
        def read_source() -> dict[str, Any]:
            from jikeyun_kingdee.hooks.jikeyun import JikeyunHook

            with no_retry_on_fatal():
                return reconcile_steps.read_source(scheme, JikeyunHook(source.connection),
                                                   _folder(scheme, get_current_context()))

        @task(task_id="read_target")
        def read_target() -> dict[str, Any]:
            from jikeyun_kingdee.hooks.kingdee import KingdeeHook

            with no_retry_on_fatal():
                return reconcile_steps.read_target(scheme, KingdeeHook(target.connection),
                                                   _folder(scheme, get_current_context()))

        @task(task_id="compare")
        def compare(source_read: dict[str, Any], target_read: dict[str, Any]) -> dict[str, Any]:
            return reconcile_steps.compare(scheme, _folder(scheme, get_current_context()), source_read, target_read,
                                           rows_per_chunk=scheme.rows_per_chunk)

        @task.short_circuit(task_id="should_repair", ignore_downstream_trigger_rules=False)
        def should_repair(compared: dict[str, Any]) -> bool:
            """Skip the repair (and its wait for the pool) when nothing drifted or repair is off."""
            wanted = repair_enabled(scheme, get_current_context())
            log.info("drift %d, repair %s", compared["found"]["drift"], "on" if wanted else "off (dry run)")
            return wanted and compared["found"]["drift"] > 0

        @task(task_id="repair", pool=pool, pool_slots=TARGET_POOL_SLOTS)
        def repair(compared: dict[str, Any]) -> dict[str, Any]:
            from jikeyun_kingdee.hooks.kingdee import KingdeeHook
            from jikeyun_kingdee.ledger import SyncLedger

            context = get_current_context()
            with SyncLedger(scheme.name) as ledger, no_retry_on_fatal():
                return reconcile_steps.repair(scheme, KingdeeHook(target.connection), ledger,
                                              _folder(scheme, context), compared, context["run_id"])

        @task(task_id="report", trigger_rule="none_failed", on_failure_callback=unless_alerted(on_failure, DriftLeft),
              **report_sla)
        def report(source_read: dict[str, Any], target_read: dict[str, Any], compared: dict[str, Any],
                   repaired: dict[str, Any] | None) -> dict[str, Any]:
            context = get_current_context()
            summary = summarise(source_read, target_read, compared, repaired,
                                repair=repair_enabled(scheme, context))
            line = describe(summary)
            log.info("reconcile of %s: %s", scheme.name, line)
            for name in CLASSES:
                if summary["found"][name]:
                    log.info("%s (%d): %s%s", CLASS_LABELS[name], summary["found"][name],
                             ", ".join(summary["found_keys"].get(name, [])),
                             " …" if summary["found"][name] > len(summary["found_keys"].get(name, [])) else "")
            log.info("reconcile summary of %s: %s", scheme.name, summary)
            if summary["drift"]:
                counts = {**{name: n for name, n in summary["found"].items() if n},
                          "repaired": summary["repaired"], "left": summary["left"]}
                keys = {CLASS_LABELS[name]: summary["found_keys"].get(name, []) for name in CLASSES}
                keys |= {f"Left: {CLASS_LABELS[name]}": ids for name, ids in summary["left_keys"].items()}
                notify_drift(context, alerting, summary=line, counts=counts, keys=keys)
            if summary["left"]:
                left = [key for ids in summary["left_keys"].values() for key in ids]
                raise DriftLeft(
                    f"{summary['left']} record(s) still differ from Jikeyun"
                    f"{' (repair off: dry run)' if not summary['repair'] else ''}: {', '.join(left)}"
                    f"{' …' if summary['left'] > len(left) else ''} "
                    f"(all in {summary['files']['left'] or summary['files']['drift']})"
                )
            return summary

        # TaskFlow passes XComArgs where the task bodies see the values: typed as Any (as in the sync DAG)
        source_read: Any = read_source()
        target_read: Any = read_target()
        compared: Any = compare(source_read, target_read)
        repaired: Any = repair(compared)
        should_repair(compared) >> repaired
        report(source_read, target_read, compared, repaired)
    return dag
