"""Airflow wiring: one DAG per scheme file, built from :mod:`jikeyun_kingdee.pipeline` steps.

``extract → transform → filter → check_target → load_chunks → load (mapped over load chunks) → report``: the target
is checked once, after filter, and only when there is something to write. The run's data interval is the
incremental window; a run with the ``full_resync`` param, or a manual run without a data interval, reads every
record instead. Nothing here touches the network or a database at parse time.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, cast

from jikeyun_kingdee import lineage, metrics, order, pipeline, reconcile_dag
from jikeyun_kingdee.alerting import AlertDeliveryError, failure_callbacks, notify_documents, notify_rejects
from jikeyun_kingdee.compat import (
    DAG,
    AirflowFailException,
    CronDataIntervalTimetable,
    Param,
    get_current_context,
    task,
)
from jikeyun_kingdee.items import (
    CheckManifest,
    ExtractManifest,
    FilterManifest,
    LoadChunk,
    LoadItem,
    LoadManifest,
    RunManifests,
    RunSummary,
    TransformManifest,
)
from jikeyun_kingdee.pools import TARGET_POOL_SLOTS, target_pool
from jikeyun_kingdee.scheme import Scheme, SchemeError, load_scheme, scheme_files
from jikeyun_kingdee.scheme import default_schemes_folder as default_schemes_folder  # older DAG files import it here
from jikeyun_kingdee.wiring import (
    SourceReadOperator,
    deadline_wiring,
    default_args,
    no_retry_on_fatal,
    run_staging_folder,
    run_window,
    unless_alerted,
)

log = logging.getLogger(__name__)


class RejectedRecords(AirflowFailException):
    """The run rejected records (named in the message); they were alerted and are in the staged reject files."""


class BrokenSchemes(DAG):
    """Stands for the scheme files that failed to load: its validation fails with their errors, so the DagBag
    records an import error for the DAG file while the valid schemes' DAGs still load."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__(dag_id="jikeyun_kingdee_broken_schemes", schedule=None)
        self.errors = errors

    def validate(self) -> None:
        raise SchemeError("invalid scheme file(s):\n" + "\n".join(self.errors))


# -- task bodies: what each task of the sync DAG does, given its scheme ----------------------------------------


def extract_window(scheme: Scheme, resume: bool = False) -> ExtractManifest:
    """Read the run's window (or everything) from the source and stage it (``resume``: go on from where a read
    the quota stopped left off). ``read_at`` is when the read began: the source as it stood from then on.

    :raises pipeline.SourceQuotaExhausted: the source's quota ran out (what was read stays staged).
    """
    from jikeyun_kingdee.hooks.jikeyun import JikeyunHook

    context = get_current_context()
    start, end = run_window(context)
    log.info("window: %s → %s%s", start or "(everything)", end or "", " (resumed)" if resume else "")
    with no_retry_on_fatal():
        return pipeline.extract(scheme, JikeyunHook(scheme.source.connection), run_staging_folder(scheme, context),
                                start, end, resume=resume)


def waiting_documents(scheme: Scheme) -> list[LoadItem]:
    """The documents of a document scheme that wait for base data (retried by every run); none for base data."""
    if scheme.target.kind != "document":
        return []
    from jikeyun_kingdee.ledger import SyncLedger

    with SyncLedger(scheme.name) as ledger:
        return [cast(LoadItem, waiting.item) for waiting in ledger.waiting().values()]


def check_target_once(scheme: Scheme, filtered: FilterManifest) -> CheckManifest:
    """The target check, once per run; skipped without any Kingdee call when nothing staged needs a write (filter
    staged nothing, or the ledger knows every row as written exactly so)."""
    from jikeyun_kingdee.hooks.kingdee import KingdeeHook
    from jikeyun_kingdee.ledger import SyncLedger

    with SyncLedger(scheme.name) as ledger:
        pending = pipeline.has_pending_writes(ledger, filtered["chunks"], documents=scheme.target.kind == "document")
    if not pending:
        log.info("check_target: nothing to write, the target is not checked")
        return {"skipped": True, "calls": {}}

    with no_retry_on_fatal():
        return pipeline.check_target(scheme, KingdeeHook(scheme.target.connection))


def load_staged_chunk(scheme: Scheme, chunk: LoadChunk, base_schemes: Sequence[Scheme] = ()) -> LoadManifest:
    """Apply one load chunk to the target, through the scheme's ledger (documents: also the ledgers of the
    base-data schemes they reference)."""
    from jikeyun_kingdee.hooks.kingdee import KingdeeHook
    from jikeyun_kingdee.ledger import SyncLedger

    context = get_current_context()
    hook, folder = KingdeeHook(scheme.target.connection), run_staging_folder(scheme, context)
    with SyncLedger(scheme.name) as ledger, ExitStack() as ledgers, no_retry_on_fatal():
        if scheme.target.kind != "document":
            return pipeline.load_chunk(scheme, hook, ledger, folder, chunk, context["run_id"])
        from jikeyun_kingdee.documents import BaseData, load_documents

        target, spec = scheme.target, scheme.base_data
        writers = {s.target.form_id: s for s in base_schemes
                   if s.keys_are_numbers and s.target.organisation == target.organisation}
        base = {form: BaseData(form, target.organisation if spec and form in spec.organisation_forms else None,
                               ledgers.enter_context(SyncLedger(writers[form].name)) if form in writers else None)
                for form in target.field_map.referenced_forms}
        return load_documents(scheme, hook, ledger, folder, chunk, context["run_id"], base, run_time(context))


def report_run(scheme: Scheme, manifests: RunManifests, loaded: list[LoadManifest]) -> RunSummary:
    """The run's summary; rejected records fail the run (after the rejected-records alert), naming them.

    :param manifests: what ``check_target``, ``extract``, ``transform`` and ``filter`` returned, by task id.
    """
    context = get_current_context()
    overdue = overdue_documents(scheme, context)
    summary = pipeline.summarise(manifests["extract"], manifests["transform"], manifests["filter"], loaded,
                                 manifests["check_target"], overdue)
    log.info("run summary of %s: %s", scheme.dag_id, summary)
    if summary["changed_after_posting"] or overdue:
        assert scheme.base_data is not None  # a document scheme
        keys = {"changed after posting (not edited)": list(summary["changed_after_posting"]),
                f"waiting for base data over {scheme.base_data.max_wait_hours:g} h": list(overdue)}
        try:
            notify_documents(context, scheme.alerting, keys=keys, summary=(
                f"{len(summary['changed_after_posting'])} changed after posting, {len(overdue)} waiting too long"))
        except AlertDeliveryError as exc:
            log.error("documents alert of %s not delivered: %s", context["run_id"], exc)
    metrics.emit_records(scheme.dag_id, summary)
    metrics.emit_source_calls(scheme.dag_id, summary)
    if summary["rejected"]:
        counts = {k: v for k, v in summary.items() if isinstance(v, int)}
        try:
            notify_rejects(context, scheme.alerting, counts=counts, rejected=summary["rejected_keys"])
        except AlertDeliveryError as exc:  # the run fails below all the same: a retry would count the records again
            log.error("rejected-records alert of %s not delivered: %s", context["run_id"], exc)
        raise RejectedRecords(
            f"{summary['rejected']} record(s) rejected: {', '.join(summary['rejected_keys'][:50])} "
            f"(reasons in the staged rejects and load results of run {context['run_id']})"
        )
    until = metrics.loaded_until(run_window(context)[1], manifests["extract"].get("read_at"))
    metrics.emit_freshness(scheme.dag_id, until)
    context["outlet_events"][lineage.target_asset(scheme)].extra.update(lineage.event_extra(summary))  # the event
    return summary


def run_time(context: Mapping[str, Any]) -> datetime:
    """The time of a run: the end of its window (now for a full read)."""
    return run_window(context)[1] or datetime.now(timezone.utc)


def overdue_documents(scheme: Scheme, context: Mapping[str, Any]) -> dict[str, str]:
    """key → since (ISO) of the documents waiting for base data longer than ``base_data.max_wait_hours``, as of the
    run's time (:func:`run_time`: a backfill judges in its windows' time)."""
    if scheme.base_data is None:
        return {}
    from jikeyun_kingdee.ledger import SyncLedger

    limit = run_time(context) - timedelta(hours=scheme.base_data.max_wait_hours)
    with SyncLedger(scheme.name) as ledger:
        return {key: w.since.isoformat() for key, w in ledger.waiting().items() if w.since < limit}


def _sync_tasks(scheme: Scheme, on_failure: list[Callable[..., Any]], report_args: dict[str, Any],
                base_schemes: Sequence[Scheme] = ()) -> None:
    """``extract → transform → filter → check_target → load_chunks → load[mapped] → report``."""

    source_asset, target_asset = lineage.source_asset(scheme), lineage.target_asset(scheme)

    @task(task_id="transform")
    def transform(extracted: ExtractManifest) -> TransformManifest:
        return pipeline.transform(scheme, run_staging_folder(scheme), extracted)

    @task(task_id="filter")
    def filter_rows(transformed: TransformManifest) -> FilterManifest:
        return pipeline.filter_rows(scheme, run_staging_folder(scheme), transformed, waiting_documents(scheme))

    @task(task_id="check_target")
    def check_target(filtered: FilterManifest) -> CheckManifest:
        return check_target_once(scheme, filtered)

    @task(task_id="load_chunks")
    def load_chunks(filtered: FilterManifest) -> list[LoadChunk]:
        """The chunks the load maps over (Airflow maps only over a whole return value)."""
        chunks: list[LoadChunk] = filtered["chunks"]
        return chunks

    # one slot of the target's pool (jikeyun_kingdee.pools): the reconcile's repair takes all of them
    @task(task_id="load", max_active_tis_per_dagrun=TARGET_POOL_SLOTS, pool=target_pool(scheme), pool_slots=1)
    def load(chunk: LoadChunk) -> LoadManifest:
        return load_staged_chunk(scheme, chunk, base_schemes)

    @task(task_id="report", trigger_rule="none_failed", on_failure_callback=unless_alerted(on_failure, RejectedRecords),
          inlets=[source_asset], outlets=[target_asset], **report_args)
    def report(checked: CheckManifest, extracted: ExtractManifest, transformed: TransformManifest,
               filtered: FilterManifest, loaded: list[LoadManifest] | None) -> RunSummary:
        manifests: RunManifests = {"check_target": checked, "extract": extracted, "transform": transformed,
                                   "filter": filtered}
        return report_run(scheme, manifests, list(loaded[:]) if loaded is not None else [])  # one XCom read

    # each call returns an XComArg that stands for the task's return value downstream (hence Any)
    # a task that waits, deferred, when the source's quota is spent (wiring.SourceReadOperator)
    extracted: Any = SourceReadOperator(task_id="extract", scheme=scheme, read=extract_window,
                                        inlets=[source_asset]).output
    transformed: Any = transform(extracted)
    filtered: Any = filter_rows(transformed)
    checked: Any = check_target(filtered)
    order.wait_for_base_data(scheme, before=checked)  # a document's writes wait for the base-data runs (deferred)
    chunks: Any = load_chunks(filtered)
    checked >> chunks
    loaded: Any = load.expand(chunk=chunks)
    report(checked, extracted, transformed, filtered, loaded)


def build_dag(scheme: Scheme, base_schemes: Sequence[Scheme] = ()) -> DAG:
    """The sync DAG ``jikeyun_kingdee_<scheme name>`` (a document scheme's: given the base-data schemes it names)."""
    source, target = scheme.source, scheme.target
    on_failure = failure_callbacks(scheme.alerting)
    dag_args, report_args = deadline_wiring(scheme.alerting)
    with DAG(
        dag_id=scheme.dag_id,
        description=(scheme.description or f"{source.method} → {target.form_id} ({target.organisation})")[:200],
        schedule=CronDataIntervalTimetable(scheme.schedule, timezone=scheme.timezone),
        start_date=scheme.start_date,
        catchup=scheme.catchup,
        max_active_runs=1,  # windows are applied one at a time, in order
        tags=sorted({"jikeyun-kingdee", *scheme.tags}),
        default_args=default_args(scheme, on_failure),
        params={
            "full_resync": Param(
                False, type="boolean", title="Full resync",
                description="Read every record from the source instead of the run's data interval.",
            )
        },
        doc_md=__doc__,
        render_template_as_native_obj=True,
        **dag_args,
    ) as dag:
        _sync_tasks(scheme, on_failure, report_args, base_schemes)
    return dag


def build_dags(folder: str | Path, dags_file: str | None = None) -> dict[str, DAG]:
    """One DAG per valid scheme file of ``folder`` and its reconcile DAG; the invalid ones are reported through
    :class:`BrokenSchemes`.

    :param dags_file: the DAG file that calls this; recorded as every DAG's ``fileloc`` so workers re-parse that
        file (not this module) to find the DAG.
    """
    dags: dict[str, DAG] = {}
    errors: list[str] = []
    loaded: dict[str, tuple[Path, Scheme]] = {}
    for path in scheme_files(folder):
        try:
            scheme = load_scheme(path)
            if scheme.name in loaded:
                raise SchemeError(f"{path}: name: {scheme.name!r} is used by another scheme file")
            loaded[scheme.name] = (path, scheme)
        except SchemeError as exc:
            errors.append(str(exc))
    unordered = order.reference_errors(loaded)  # documents waiting for base-data runs that cannot come: not built
    errors.extend(unordered.values())
    for name, (_, scheme) in loaded.items():
        if name not in unordered:
            base = [loaded[b][1] for b in scheme.base_data.schemes] if scheme.base_data else []
            dags[scheme.dag_id] = build_dag(scheme, base)
            dags[scheme.reconcile_dag_id] = reconcile_dag.build_reconcile_dag(scheme)
    if errors:
        dags["jikeyun_kingdee_broken_schemes"] = BrokenSchemes(errors)
    if dags_file:
        for dag in dags.values():
            dag.fileloc = str(dags_file)
    return dags

