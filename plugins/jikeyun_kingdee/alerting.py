"""Alerts of a scheme's DAG runs — failed task, rejected records, missed deadline — to DingTalk, WeCom and email.

Pure parts (:class:`Alert`, :func:`render_markdown`, :func:`render_email`) are separate from delivery
(:func:`send_alert`) and from Airflow wiring (:class:`SchemeAlertNotifier`, :func:`deadline_alert`).
Every channel is an Airflow connection:

* DingTalk group robot — conn type ``dingding`` (apache-airflow-providers-dingding): ``host`` = robot URL base
  with scheme (default ``https://oapi.dingtalk.com``), ``password`` = access token, optional extra
  ``{"sign_secret": "SEC…"}`` when the robot uses the 加签 (signature) security setting.
* WeCom (企业微信) group robot — conn type ``http``: ``host`` = ``https://qyapi.weixin.qq.com`` (the default),
  ``password`` = robot key.
* Email — conn type ``smtp`` (apache-airflow-providers-smtp), ``from_email`` in its extra.

Robot tokens, keys and the SMTP password never reach logs or exceptions: errors are re-raised with them masked.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
import hmac
import html
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import quote

import pendulum
from pydantic import BaseModel, Field, field_validator

from jikeyun_kingdee.compat import (
    AIRFLOW_V3,
    AsyncCallback,
    BaseNotifier,
    DeadlineAlert,
    DeadlineReference,
    mask_secret,
    redact,
    ui_run_url,
)
from jikeyun_kingdee.records import BEIJING
from jikeyun_kingdee.scheme import AlertingConfig as AlertingConfig

if TYPE_CHECKING:  # the channels' provider hooks are imported when an alert is sent, not when a DAG file is parsed
    from airflow.providers.http.hooks.http import HttpHook

log = logging.getLogger(__name__)

AlertKind = Literal["task_failed", "rejected_records", "deadline_missed", "drift_found", "documents_held"]

MAX_ERROR_CHARS = 1500
MAX_REJECTED_IDS = 20
WECOM_HOST = "https://qyapi.weixin.qq.com"
REQUEST_TIMEOUT = 30  # seconds, per robot call
DINGTALK_ENDPOINT = "robot/send"
WECOM_ENDPOINT = "cgi-bin/webhook/send"
WECOM_MAX_BYTES = 4096  # WeCom rejects markdown content above 4096 UTF-8 bytes

_TITLES: dict[str, str] = {
    "task_failed": "Task failed",
    "rejected_records": "Rejected records",
    "deadline_missed": "Deadline missed",
    "drift_found": "Kingdee drifted from Jikeyun",
    "documents_held": "Documents need a look",
}


class AlertDeliveryError(Exception):
    """An alert could not be delivered; the message never holds a secret."""


class Alert(BaseModel):
    """One alert, pure data: what happened in which run, window and task."""

    kind: AlertKind
    dag_id: str
    run_id: str | None = None
    window_start: datetime | None = None
    window_end: datetime | None = None
    task_id: str | None = None
    error: str | None = None
    counts: dict[str, int] = Field(default_factory=dict)
    rejected: list[str] = Field(default_factory=list)  # record ids, first MAX_REJECTED_IDS only
    summary: str | None = None  # one line of what happened, for alerts that are not errors
    keys: dict[str, list[str]] = Field(default_factory=dict)  # label → record ids, first MAX_REJECTED_IDS each
    url: str | None = None

    @field_validator("rejected")
    @classmethod
    def _cap_rejected(cls, ids: list[str]) -> list[str]:
        return ids[:MAX_REJECTED_IDS]

    @field_validator("keys")
    @classmethod
    def _cap_keys(cls, keys: dict[str, list[str]]) -> dict[str, list[str]]:
        return {label: ids[:MAX_REJECTED_IDS] for label, ids in keys.items() if ids}

    @field_validator("error")
    @classmethod
    def _cap_error(cls, error: str | None) -> str | None:
        if error is None or len(error) <= MAX_ERROR_CHARS:
            return error
        return error[:MAX_ERROR_CHARS] + " …"

    @property
    def title(self) -> str:
        return f"[Airflow] {_TITLES[self.kind]}: {self.dag_id}"


# -- building alerts ------------------------------------------------------------------------------------------


def _read(source: Any, *names: str) -> Any:
    """First non-empty attribute or key of ``source`` among ``names`` (task context objects or API dicts)."""
    for name in names:
        value = source.get(name) if isinstance(source, Mapping) else getattr(source, name, None)
        if value is not None:
            return value
    return None


def run_url(base_url: str | None, dag_id: str, run_id: str | None, task_id: str | None = None) -> str | None:
    """Link to the run (or one task of it) in the Airflow UI; ``None`` without a run.

    :param base_url: UI base; ``None`` = the one in the Airflow configuration.
    """
    return ui_run_url(base_url, dag_id, run_id, task_id) if run_id else None


def describe_error(error: BaseException | str | None) -> str | None:
    """One-line error text with Airflow's registered secrets masked."""
    if error is None:
        return None
    text = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
    return str(redact(text))


def alert_from_context(
    context: Mapping[str, Any], kind: AlertKind, *, base_url: str | None = None, **extra: Any
) -> Alert:
    """Build an alert from an Airflow 3 task context or a deadline callback context.

    :param context: task context (``dag_run``, ``ti``, ``exception``, ``data_interval_*``) or the deadline context
        (``dag_run`` as a dict of the REST API's DAG run).
    :param kind: what happened.
    :param base_url: Airflow UI base for the link.
    :param extra: fields that override or add to what the context says (``counts``, ``rejected``, ``error``…).
    """
    dag_run = context.get("dag_run")
    ti = context.get("ti") or context.get("task_instance")
    dag_id = _read(dag_run, "dag_id") or _read(ti, "dag_id") or _read(context.get("dag"), "dag_id")
    run_id = _read(dag_run, "run_id", "dag_run_id") or _read(ti, "run_id") or context.get("run_id")
    task_id = _read(ti, "task_id")
    fields: dict[str, Any] = {
        "kind": kind,
        "dag_id": dag_id,
        "run_id": run_id,
        "window_start": context.get("data_interval_start") or _read(dag_run, "data_interval_start"),
        "window_end": context.get("data_interval_end") or _read(dag_run, "data_interval_end"),
        "task_id": task_id,
        "error": describe_error(context.get("exception")),
        "url": run_url(base_url, dag_id, run_id, task_id),
    }
    fields.update(extra)
    if isinstance(fields.get("error"), BaseException):
        fields["error"] = describe_error(fields["error"])
    return Alert(**fields)


# -- rendering ------------------------------------------------------------------------------------------------


def format_window(alert: Alert) -> str:
    """The run's data interval in UTC (Airflow) and Beijing time (Jikeyun)."""
    if alert.window_start is None or alert.window_end is None:
        return "none (run without data interval)"
    start, end = pendulum.instance(alert.window_start), pendulum.instance(alert.window_end)
    utc = f"{start.in_tz('UTC'):%Y-%m-%d %H:%M} → {end.in_tz('UTC'):%Y-%m-%d %H:%M} UTC"
    beijing = f"{start.in_tz(BEIJING):%Y-%m-%d %H:%M} → {end.in_tz(BEIJING):%Y-%m-%d %H:%M} {BEIJING.name}"
    return f"{utc} ({beijing})"


def _facts(alert: Alert) -> list[tuple[str, str]]:
    """Label/value pairs shown by every channel, in order."""
    facts = [("DAG", alert.dag_id), ("Run", alert.run_id or "-"), ("Window", format_window(alert))]
    if alert.task_id:
        facts.append(("Task", alert.task_id))
    if alert.summary:
        facts.append(("Summary", alert.summary))
    if alert.counts:
        facts.append(("Counts", ", ".join(f"{name}={value}" for name, value in alert.counts.items())))
    facts += [(label, ", ".join(ids)) for label, ids in alert.keys.items()]
    if alert.rejected:
        facts.append(("Rejected ids", ", ".join(alert.rejected)))
    if alert.error:
        facts.append(("Error", alert.error))
    return facts


def render_markdown(alert: Alert) -> str:
    """Markdown for the DingTalk and WeCom robots."""
    lines = [f"### {alert.title}"]
    lines += [f"- **{label}:** {value}" for label, value in _facts(alert)]
    if alert.url:
        lines.append(f"\n[Open the run in Airflow]({alert.url})")
    return "\n".join(lines)


def render_email(alert: Alert) -> tuple[str, str]:
    """Subject and HTML body of the alert email."""
    subject = f"{alert.title} {alert.task_id or ''} {alert.run_id or ''}".rstrip()
    rows = "".join(
        f"<tr><th align='left'>{html.escape(label)}</th><td>{html.escape(value)}</td></tr>"
        for label, value in _facts(alert)
    )
    link = f"<p><a href='{html.escape(alert.url, quote=True)}'>Open the run in Airflow</a></p>" if alert.url else ""
    return subject, f"<h3>{html.escape(alert.title)}</h3><table>{rows}</table>{link}"


def _fit_bytes(text: str, limit: int) -> str:
    """Cut ``text`` to at most ``limit`` UTF-8 bytes."""
    data = text.encode("utf-8")
    if len(data) <= limit:
        return text
    return data[: limit - 4].decode("utf-8", errors="ignore") + " …"


def dingtalk_sign(timestamp: str, secret: str) -> str:
    """DingTalk robot signature (加签): base64 HMAC-SHA256 of ``"{timestamp}\\n{secret}"`` (requests quotes it)."""
    digest = hmac.new(secret.encode(), f"{timestamp}\n{secret}".encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


# -- delivery -------------------------------------------------------------------------------------------------


@contextmanager
def _masked_errors(channel: str, *secrets: str | None) -> Iterator[None]:
    """Re-raise any error as :class:`AlertDeliveryError` with ``secrets`` masked and no chained original."""
    known = [s for s in secrets if s]
    for secret in known:
        mask_secret(secret)  # also mask them in the hooks' own log lines
    try:
        yield
    except Exception as exc:
        text = str(exc) if isinstance(exc, AlertDeliveryError) else f"{type(exc).__name__}: {exc}"
        for secret in known:
            text = text.replace(secret, "***").replace(quote(secret, safe=""), "***")
        raise AlertDeliveryError(f"{channel}: {text}") from None


def _post_to_robot(hook: HttpHook, robot: str, endpoint: str, params: dict[str, str], payload: dict[str, Any]) -> None:
    """POST ``payload`` to a group robot; it answers HTTP 200 with ``{"errcode": 0}`` on success.

    The hook gives the session and base URL from the connection; ``HttpHook.run`` is not used because it logs
    connection errors with the full URL, whose query holds the robot token or key.
    """
    session = hook.get_conn()
    response = session.post(hook.url_from_endpoint(endpoint), params=params, json=payload, timeout=REQUEST_TIMEOUT)
    if not response.ok:
        raise AlertDeliveryError(f"{robot} robot answered HTTP {response.status_code}: {response.text[:200]!r}")
    try:
        answer = response.json()
    except ValueError:
        raise AlertDeliveryError(f"{robot} robot answered non-JSON: {response.text[:200]!r}") from None
    if answer.get("errcode") != 0:
        raise AlertDeliveryError(f"{robot} robot answered errcode {answer.get('errcode')}: {answer.get('errmsg')}")


def _deliver_dingtalk(alert: Alert, conn_id: str) -> None:
    from airflow.providers.dingding.hooks.dingding import DingdingHook

    hook = DingdingHook(dingding_conn_id=conn_id)  # base URL from the connection host, default oapi.dingtalk.com
    conn = hook.get_connection(conn_id)
    token, sign_secret = conn.password, conn.extra_dejson.get("sign_secret")
    with _masked_errors("dingtalk", token, sign_secret):
        if not token:
            raise ValueError(f"connection {conn_id!r} has no robot access token in its password")
        params = {"access_token": token}
        if sign_secret:  # the robot's 加签 security setting
            timestamp = str(round(time.time() * 1000))
            params |= {"timestamp": timestamp, "sign": dingtalk_sign(timestamp, sign_secret)}
        payload = {"msgtype": "markdown", "markdown": {"title": alert.title, "text": render_markdown(alert)}}
        _post_to_robot(hook, "DingTalk", DINGTALK_ENDPOINT, params, payload)


def _deliver_wecom(alert: Alert, conn_id: str) -> None:
    from airflow.providers.http.hooks.http import HttpHook

    hook = HttpHook(method="POST", http_conn_id=conn_id)
    hook.default_host = WECOM_HOST  # when the connection has no host
    key = hook.get_connection(conn_id).password
    with _masked_errors("wecom", key):
        if not key:
            raise ValueError(f"connection {conn_id!r} has no robot key in its password")
        payload = {"msgtype": "markdown", "markdown": {"content": _fit_bytes(render_markdown(alert), WECOM_MAX_BYTES)}}
        _post_to_robot(hook, "WeCom", WECOM_ENDPOINT, {"key": key}, payload)


def _deliver_email(alert: Alert, conn_id: str, to: list[str]) -> None:
    from airflow.providers.smtp.hooks.smtp import SmtpHook

    subject, body = render_email(alert)
    hook = SmtpHook(smtp_conn_id=conn_id)
    with _masked_errors("email", hook.get_connection(conn_id).password), hook:
        hook.send_email_smtp(to=to, subject=subject, html_content=body)


def _senders(config: AlertingConfig) -> list[tuple[str, Callable[[Alert], None]]]:
    senders: list[tuple[str, Callable[[Alert], None]]] = []
    if config.dingtalk_conn_id:
        senders.append(("dingtalk", functools.partial(_deliver_dingtalk, conn_id=config.dingtalk_conn_id)))
    if config.wecom_conn_id:
        senders.append(("wecom", functools.partial(_deliver_wecom, conn_id=config.wecom_conn_id)))
    if config.email_to:
        senders.append(("email", functools.partial(_deliver_email, conn_id=config.email_conn_id, to=config.email_to)))
    return senders


def send_alert(alert: Alert, config: AlertingConfig) -> list[str]:
    """Deliver ``alert`` to every configured channel; one failing channel does not stop the others.

    :return: the channels that delivered.
    :raises AlertDeliveryError: when channels are configured and none delivered.
    """
    delivered: list[str] = []
    failures: list[str] = []
    for channel, deliver in _senders(config):
        try:
            deliver(alert)
        except Exception as exc:
            error = exc if isinstance(exc, AlertDeliveryError) else AlertDeliveryError(f"{channel}: {exc}")
            log.warning("Alert %s of %s not delivered: %s", alert.kind, alert.dag_id, error)
            failures.append(str(error))
        else:
            log.info("Alert %s of %s delivered to %s", alert.kind, alert.dag_id, channel)
            delivered.append(channel)
    if failures and not delivered:
        raise AlertDeliveryError("no alert channel delivered: " + "; ".join(failures))
    return delivered


def notify_rejects(
    context: Mapping[str, Any], config: AlertingConfig, *, counts: dict[str, int], rejected: list[str]
) -> list[str]:
    """Send the rejected-records alert of a run when there are rejects and the scheme wants it.

    :param counts: the run's counts (fetched, saved, rejected…).
    :param rejected: ids of the rejected records (capped in the message).
    :return: the channels that delivered; empty when nothing was sent.
    """
    if not (config.on_rejects and rejected):
        return []
    alert = alert_from_context(
        context, "rejected_records", base_url=config.base_url, counts=counts, rejected=rejected,
        error=f"{len(rejected)} record(s) rejected",
    )
    return send_alert(alert, config)


def notify_drift(
    context: Mapping[str, Any], config: AlertingConfig, *, summary: str, counts: dict[str, int],
    keys: dict[str, list[str]],
) -> list[str]:
    """Send the drift alert of a reconcile run (what was found, repaired and left) when the scheme wants it.

    :param summary: one line: found, repaired, left.
    :param counts: found per class, repaired, left.
    :param keys: label (e.g. ``missing in Kingdee``) → the first record keys of that class.
    :return: the channels that delivered; empty when nothing was sent.
    """
    if not (config.on_drift and config.channels):
        return []
    alert = alert_from_context(context, "drift_found", base_url=config.base_url, counts=counts, keys=keys,
                               summary=summary)
    return send_alert(alert, config)


def notify_documents(
    context: Mapping[str, Any], config: AlertingConfig, *, summary: str, keys: dict[str, list[str]]
) -> list[str]:
    """Send the alert of a document scheme's run that holds documents back: changed after posting (never edited),
    or waiting for base data longer than the scheme's ``max_wait_hours``. The run itself succeeds.

    :param keys: label → the first record keys of it.
    """
    if not (config.on_rejects and config.channels and any(keys.values())):
        return []
    alert = alert_from_context(context, "documents_held", base_url=config.base_url, keys=keys, summary=summary)
    return send_alert(alert, config)


# -- Airflow wiring -------------------------------------------------------------------------------------------


class SchemeAlertNotifier(BaseNotifier):
    """Task callback (e.g. ``on_failure_callback``) that sends an alert of ``kind`` to the scheme's channels.

    :param config: the scheme's alerting section (model or its dict).
    :param kind: what the callback reports.
    """

    def __init__(self, config: AlertingConfig | Mapping[str, Any], kind: AlertKind = "task_failed") -> None:
        super().__init__()
        self.config = AlertingConfig.model_validate(dict(config) if isinstance(config, Mapping) else config)
        self.kind = kind

    def notify(self, context: Any) -> None:
        send_alert(alert_from_context(context, self.kind, base_url=self.config.base_url), self.config)


def failure_callbacks(config: AlertingConfig) -> list[Callable[..., Any]]:
    """Value for a task's ``on_failure_callback``: empty when failures are not alerted or no channel is set."""
    if not (config.on_failure and config.channels):
        return []
    return [SchemeAlertNotifier(config)]


def deadline_alert(config: AlertingConfig) -> DeadlineAlert | None:
    """Airflow 3.1+ Deadline Alert: the run has not finished ``deadline_minutes`` after it was queued.

    Airflow has no built-in data-interval-end reference, and a custom one must be registered as a plugin in
    every scheduler and API server. A scheduled run of a data-interval timetable is queued as soon as its
    window closes, so ``DAGRUN_QUEUED_AT`` gives "N minutes after the window closed" for scheduled runs and
    keeps backfilled or caught-up runs (queued long after their window) from alerting at once.
    ``None`` on Airflow 2, which has SLAs instead (:func:`sla_miss_callback`).
    """
    if not AIRFLOW_V3 or config.deadline_minutes is None or not config.channels:
        return None
    return DeadlineAlert(
        reference=DeadlineReference.DAGRUN_QUEUED_AT,
        interval=timedelta(minutes=config.deadline_minutes),
        # a JSON string: Callback.__hash__ cannot hash nested dicts or lists in kwargs
        callback=AsyncCallback(deadline_missed, kwargs={"config": config.model_dump_json(exclude_defaults=True)}),
        name="run_not_finished",
    )


async def deadline_missed(config: str | Mapping[str, Any], context: Mapping[str, Any] | None = None) -> list[str]:
    """Deadline callback run by the triggerer: send the deadline alert of the run in ``context``.

    :param config: the scheme's alerting section, as JSON or dict.
    :param context: what Airflow passes: ``dag_run`` (REST API dict) and ``deadline`` (``deadline_time``).
    :return: the channels that delivered.
    """
    alerting = (
        AlertingConfig.model_validate_json(config) if isinstance(config, str) else AlertingConfig.model_validate(config)
    )
    context = context or {}
    deadline_time = _read(context.get("deadline"), "deadline_time")
    state = _read(context.get("dag_run"), "state")
    error = (f"run not finished by its deadline {deadline_time} (state {state}, "
             f"{alerting.deadline_minutes} min after queued)")
    alert = alert_from_context(context, "deadline_missed", base_url=alerting.base_url, error=error)
    # the hooks are blocking: keep the triggerer's event loop free
    return await asyncio.to_thread(send_alert, alert, alerting)


def sla_miss_callback(config: AlertingConfig) -> Callable[..., list[str]] | None:
    """Airflow 2's form of the deadline: the DAG's ``sla_miss_callback``, with ``sla`` = ``deadline_minutes`` on
    every task; ``None`` when the scheme has no deadline or no channel.

    Airflow 2 misses a task's SLA when it has not finished ``sla`` after its run's data interval closed — for a
    scheduled run the same moment as the Airflow 3 deadline (the run is queued when its window closes); manual
    runs have no SLA.
    """
    if config.deadline_minutes is None or not config.channels:
        return None
    return functools.partial(sla_missed, config.model_dump_json(exclude_defaults=True))


def sla_missed(
    config: str | Mapping[str, Any], dag: Any, task_list: str, blocking_task_list: str, slas: list[Any],
    blocking_tis: list[Any],
) -> list[str]:
    """Airflow 2 SLA-miss callback (the DAG processor calls it): send the deadline alert of each missed run.

    ``task_list``, ``blocking_task_list`` and ``blocking_tis`` are passed by Airflow and not used.

    :param config: the scheme's alerting section, as JSON or dict.
    :param dag: the DAG whose tasks missed their SLA.
    :param slas: the new ``SlaMiss`` rows (``task_id``, ``execution_date``).
    :return: the channels that delivered, over every alert sent.
    """
    from airflow.utils.types import DagRunType

    alerting = (
        AlertingConfig.model_validate_json(config) if isinstance(config, str) else AlertingConfig.model_validate(config)
    )
    missed: dict[datetime, list[str]] = {}
    for sla in slas:
        missed.setdefault(sla.execution_date, []).append(sla.task_id)
    delivered: list[str] = []
    for logical_date, task_ids in sorted(missed.items()):
        window = dag.infer_automated_data_interval(logical_date)
        run_id = f"{DagRunType.SCHEDULED.value}__{logical_date.isoformat()}"  # Airflow 2's scheduled run id
        alert = Alert(
            kind="deadline_missed", dag_id=dag.dag_id, run_id=run_id, window_start=window.start, window_end=window.end,
            error=f"task(s) {', '.join(sorted(task_ids))} not finished {alerting.deadline_minutes} min after the "
            "window "
            "closed (SLA)",
            url=run_url(alerting.base_url, dag.dag_id, run_id),
        )
        delivered += send_alert(alert, alerting)
    return delivered
