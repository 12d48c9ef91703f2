"""Airflow wiring of the reconciliation DAG ``jikeyun_kingdee_<scheme name>_reconcile`` (对账).

``read_source`` and ``read_target`` (every record of both sides) → ``compare`` → ``should_repair`` → ``repair`` (in
the target's pool, taking all its slots) → ``report``. It runs on the scheme's ``reconcile.schedule`` (daily by
default) or by hand; the trigger form's **Repair** param (default: the scheme's ``reconcile.repair``) turns repair
off for a dry run. The run fails when drift is left at the end — after repair, or all of it in a dry run — and
alerts the scheme's channels whenever it found drift. The steps are :mod:`jikeyun_kingdee.reconcile_steps`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
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
from jikeyun_kingdee.pools import TARGET_POOL_SLOTS, target_pool
from jikeyun_kingdee.reconcile import CLASSES, describe, summarise
from jikeyun_kingdee.scheme import Scheme
from jikeyun_kingdee.wiring import (
    SourceReadOperator,
    deadline_wiring,
    default_args,
    no_retry_on_fatal,
    reconcile_staging_folder,
    run_conf,
    unless_alerted,
)

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


# -- task bodies: what each task of the reconcile DAG does, given its scheme ------------------------------------
# (hooks and the ledger are imported by the bodies that use them, not when the DAG file is parsed)


def read_source_all(scheme: Scheme, resume: bool = False) -> dict[str, Any]:
    """Read every source record and stage it (``resume``: go on from where the source's quota stopped the read).

    :raises pipeline.SourceQuotaExhausted: the source's quota ran out (the task waits for it, deferred).
    """
    from jikeyun_kingdee.hooks.jikeyun import JikeyunHook

    with no_retry_on_fatal():
        return reconcile_steps.read_source(scheme, JikeyunHook(scheme.source.connection),
                                           reconcile_staging_folder(scheme), resume=resume)


def read_target_all(scheme: Scheme) -> dict[str, Any]:
    """Read every record of the target form and organisation and stage it."""
    from jikeyun_kingdee.hooks.kingdee import KingdeeHook

    with no_retry_on_fatal():
        return reconcile_steps.read_target(scheme, KingdeeHook(scheme.target.connection),
                                           reconcile_staging_folder(scheme))


def compare_sides(scheme: Scheme, source_read: dict[str, Any], target_read: dict[str, Any]) -> dict[str, Any]:
    """Classify every record of both sides; stage the drift in load chunks."""
    return reconcile_steps.compare(scheme, reconcile_staging_folder(scheme), source_read, target_read,
                                   rows_per_chunk=scheme.rows_per_chunk)


def repair_wanted(scheme: Scheme, compared: dict[str, Any]) -> bool:
    """Whether the run repairs: something drifted and repair is on (else the repair and its wait for the pool are
    skipped)."""
    wanted = repair_enabled(scheme, get_current_context())
    log.info("drift %d, repair %s", compared["found"]["drift"], "on" if wanted else "off (dry run)")
    return wanted and compared["found"]["drift"] > 0


def repair_drift(scheme: Scheme, compared: dict[str, Any]) -> dict[str, Any]:
    """Apply the staged drift to the target, through the sync's load path and the scheme's ledger."""
    from jikeyun_kingdee.hooks.kingdee import KingdeeHook
    from jikeyun_kingdee.ledger import SyncLedger

    context = get_current_context()
    with SyncLedger(scheme.name) as ledger, no_retry_on_fatal():
        return reconcile_steps.repair(scheme, KingdeeHook(scheme.target.connection), ledger,
                                      reconcile_staging_folder(scheme), compared, context["run_id"])


def report_reconcile(scheme: Scheme, source_read: dict[str, Any], target_read: dict[str, Any],
                     compared: dict[str, Any], repaired: dict[str, Any] | None) -> dict[str, Any]:
    """The run's summary; drift found is alerted, drift left fails the run (naming it).

    :param repaired: what ``repair`` returned; ``None`` when it was skipped.
    """
    context = get_current_context()
    summary = summarise(source_read, target_read, compared, repaired, repair=repair_enabled(scheme, context))
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
        notify_drift(context, scheme.alerting, summary=line, counts=counts, keys=keys)
    if summary["left"]:
        left = [key for ids in summary["left_keys"].values() for key in ids]
        raise DriftLeft(
            f"{summary['left']} record(s) still differ from Jikeyun"
            f"{' (repair off: dry run)' if not summary['repair'] else ''}: {', '.join(left)}"
            f"{' …' if summary['left'] > len(left) else ''} "
            f"(all in {summary['files']['left'] or summary['files']['drift']})"
        )
    return summary


def _reconcile_tasks(scheme: Scheme, on_failure: list[Callable[..., Any]], report_args: dict[str, Any]) -> None:
    """``read_source, read_target → compare → should_repair → repair → report``."""


    @task(task_id="read_target")
    def read_target() -> dict[str, Any]:
        return read_target_all(scheme)

    @task(task_id="compare")
    def compare(source_read: dict[str, Any], target_read: dict[str, Any]) -> dict[str, Any]:
        return compare_sides(scheme, source_read, target_read)

    @task.short_circuit(task_id="should_repair", ignore_downstream_trigger_rules=False)
    def should_repair(compared: dict[str, Any]) -> bool:
        return repair_wanted(scheme, compared)

    # all slots of the target's pool (jikeyun_kingdee.pools): no sync load of the target runs meanwhile
    @task(task_id="repair", pool=target_pool(scheme), pool_slots=TARGET_POOL_SLOTS)
    def repair(compared: dict[str, Any]) -> dict[str, Any]:
        return repair_drift(scheme, compared)

    @task(task_id="report", trigger_rule="none_failed", on_failure_callback=unless_alerted(on_failure, DriftLeft),
          **report_args)
    def report(source_read: dict[str, Any], target_read: dict[str, Any], compared: dict[str, Any],
               repaired: dict[str, Any] | None) -> dict[str, Any]:
        return report_reconcile(scheme, source_read, target_read, compared, repaired)

    # each call returns an XComArg that stands for the task's return value downstream (hence Any)
    # waits, deferred, when the source's quota is spent (wiring.SourceReadOperator)
    source_read: Any = SourceReadOperator(task_id="read_source", scheme=scheme, read=read_source_all).output
    target_read: Any = read_target()
    compared: Any = compare(source_read, target_read)
    repaired: Any = repair(compared)
    should_repair(compared) >> repaired
    report(source_read, target_read, compared, repaired)


def build_reconcile_dag(scheme: Scheme) -> DAG:
    """The reconcile DAG ``jikeyun_kingdee_<scheme name>_reconcile``."""
    source, target = scheme.source, scheme.target
    on_failure = failure_callbacks(scheme.alerting)
    dag_args, report_args = deadline_wiring(scheme.alerting)
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
        **dag_args,
    ) as dag:
        _reconcile_tasks(scheme, on_failure, report_args)
    return dag
