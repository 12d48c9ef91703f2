"""Alerts over real HTTP and SMTP to local receivers; deadline alert objects and their triggerer callback."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import importlib.util
import json
import traceback
from datetime import timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import pendulum
import pytest
from pydantic import ValidationError

from jikeyun_kingdee import alerting
from jikeyun_kingdee.alerting import (
    Alert,
    AlertDeliveryError,
    AlertingConfig,
    SchemeAlertNotifier,
    alert_from_context,
    deadline_alert,
    failure_callbacks,
    notify_documents,
    notify_rejects,
    render_email,
    render_markdown,
    send_alert,
)

from tests.support import set_connection
from tests.support.airflow_compat import expected_run_url, only_airflow2, only_airflow3, run_dag_test
from tests.support.alerting import (
    DINGTALK_SIGN_SECRET,
    DINGTALK_TOKEN,
    SECRETS,
    SMTP_LOGIN,
    SMTP_PASSWORD,
    WECOM_KEY,
    set_alert_connections,
)

BASE_URL = "http://airflow.example:8080"
RUN_ID = "scheduled__2024-05-01T00:00:00+00:00"
START = pendulum.datetime(2024, 5, 1, 0, 0, tz="UTC")
END = pendulum.datetime(2024, 5, 1, 1, 0, tz="UTC")
ERROR = "KingdeeError: MsgCode 11 基础资料不存在 row 3"


def _alert(**overrides) -> Alert:
    fields: dict[str, Any] = {
        "kind": "task_failed",
        "dag_id": "jky_kd_warehouse_I0134",
        "run_id": RUN_ID,
        "window_start": START,
        "window_end": END,
        "task_id": "save_batches",
        "error": ERROR,
        "counts": {"fetched": 120, "saved": 117, "rejected": 3},
        "rejected": ["WH001", "WH002", "WH003"],
        "url": alerting.run_url(BASE_URL, "jky_kd_warehouse_I0134", RUN_ID, "save_batches"),
    }
    return Alert(**(fields | overrides))


RUN_URL = expected_run_url(BASE_URL, "jky_kd_warehouse_I0134", RUN_ID)
EXPECTED = [
    "jky_kd_warehouse_I0134",
    RUN_ID,
    "2024-05-01 00:00 → 2024-05-01 01:00 UTC",
    "2024-05-01 08:00 → 2024-05-01 09:00 Asia/Shanghai",
    "save_batches",
    ERROR,
    "fetched=120",
    "saved=117",
    "rejected=3",
    "WH002",
    RUN_URL,
]


def _assert_names_everything(text: str, expected: list[str] = EXPECTED) -> None:
    missing = [part for part in expected if part not in text]
    assert not missing, f"missing {missing} in:\n{text}"


# -- pure parts -----------------------------------------------------------------------------------------------


def test_markdown_and_email_name_dag_run_window_task_error_counts_and_link():
    _assert_names_everything(render_markdown(_alert()))
    subject, body = render_email(_alert())
    assert subject == f"[Airflow] Task failed: jky_kd_warehouse_I0134 save_batches {RUN_ID}"
    _assert_names_everything(body.replace("&amp;", "&"))


def test_email_escapes_html_of_errors():
    _, body = render_email(_alert(error="<script>alert(1)</script>"))
    assert "<script>" not in body and "&lt;script&gt;" in body


def test_alert_caps_rejected_ids_and_error():
    alert = _alert(rejected=[f"WH{i:03}" for i in range(500)], error="x" * 10_000)
    assert len(alert.rejected) == alerting.MAX_REJECTED_IDS
    assert alert.error is not None
    assert len(alert.error) <= alerting.MAX_ERROR_CHARS + 2


def test_run_without_data_interval_is_said_so():
    assert "none (run without data interval)" in render_markdown(_alert(window_start=None, window_end=None))


def test_config_rejects_unknown_keys_and_lists_channels():
    with pytest.raises(ValidationError):
        AlertingConfig.model_validate({"dingtalk_conn_id": "x", "slack_conn_id": "y"})
    assert AlertingConfig(wecom_conn_id="w", email_to=["a@b.c"]).channels == ["wecom", "email"]
    assert AlertingConfig().channels == []


def test_alert_from_deadline_context_dict():
    """The deadline callback gets the DAG run as the REST API's dict (``dag_run_id``, ISO strings)."""
    context = {
        "dag_run": {
            "dag_id": "d",
            "dag_run_id": "manual__x",
            "data_interval_start": START.isoformat(),
            "data_interval_end": END.isoformat(),
            "state": "running",
        }
    }
    alert = alert_from_context(context, "deadline_missed", base_url=BASE_URL)
    assert (alert.dag_id, alert.run_id, alert.window_end, alert.task_id) == ("d", "manual__x", END, None)
    assert alert.url == expected_run_url(BASE_URL, "d", "manual__x")


# -- delivery over real connections ---------------------------------------------------------------------------


def test_dingtalk_delivers_markdown_through_the_provider_hook(monkeypatch, webhook, channels):
    assert send_alert(_alert(), AlertingConfig(dingtalk_conn_id="alert_dingtalk", base_url=BASE_URL)) == ["dingtalk"]
    [posted] = webhook.posted
    assert posted.path == "/robot/send" and posted.query == {"access_token": DINGTALK_TOKEN}
    assert posted.body["msgtype"] == "markdown"
    assert posted.body["markdown"]["title"] == "[Airflow] Task failed: jky_kd_warehouse_I0134"
    _assert_names_everything(posted.body["markdown"]["text"])


def test_dingtalk_signs_when_the_robot_uses_a_sign_secret(monkeypatch, webhook):
    set_connection(
        monkeypatch,
        "alert_dingtalk_signed",
        conn_type="dingding",
        host=webhook.url,
        password=DINGTALK_TOKEN,
        extra={"sign_secret": DINGTALK_SIGN_SECRET},
    )
    send_alert(_alert(), AlertingConfig(dingtalk_conn_id="alert_dingtalk_signed"))
    [posted] = webhook.posted
    timestamp = posted.query["timestamp"]  # parse_qs already unquoted the sign
    expected = hmac.new(DINGTALK_SIGN_SECRET.encode(), f"{timestamp}\n{DINGTALK_SIGN_SECRET}".encode(), hashlib.sha256)
    assert posted.query["sign"] == base64.b64encode(expected.digest()).decode()
    assert not any(DINGTALK_SIGN_SECRET in value or DINGTALK_TOKEN in value for value in posted.headers.values())
    assert abs(int(timestamp) / 1000 - pendulum.now().timestamp()) < 3600


def test_wecom_delivers_markdown(webhook, channels):
    assert send_alert(_alert(), AlertingConfig(wecom_conn_id="alert_wecom")) == ["wecom"]
    [posted] = webhook.posted
    assert posted.path == "/cgi-bin/webhook/send" and posted.query == {"key": WECOM_KEY}
    assert posted.body["msgtype"] == "markdown"
    _assert_names_everything(posted.body["markdown"]["content"])


def test_wecom_content_fits_its_4096_byte_limit(webhook, channels):
    send_alert(_alert(error="错" * 1500, rejected=["仓" * 60] * 20), AlertingConfig(wecom_conn_id="alert_wecom"))
    assert len(webhook.posted[0].body["markdown"]["content"].encode()) <= alerting.WECOM_MAX_BYTES


def test_email_delivers_over_smtp_with_login(smtp_server, channels):
    recorder, _ = smtp_server
    config = AlertingConfig(email_to=["ops@example.com", "data@example.com"], email_conn_id="alert_smtp")
    assert send_alert(_alert(), config) == ["email"]
    [message] = recorder.messages
    assert recorder.logins == [(SMTP_LOGIN, SMTP_PASSWORD)]
    assert recorder.recipients == [["ops@example.com", "data@example.com"]]
    assert message["Subject"] == f"[Airflow] Task failed: jky_kd_warehouse_I0134 save_batches {RUN_ID}"
    html_part = next(part for part in message.walk() if part.get_content_type() == "text/html")
    _assert_names_everything(html_part.get_content().replace("&amp;", "&"))


def test_all_three_channels_deliver_one_alert(webhook, smtp_server, channels):
    assert send_alert(_alert(), AlertingConfig(**channels)) == ["dingtalk", "wecom", "email"]
    assert [p.path for p in webhook.posted] == ["/robot/send", "/cgi-bin/webhook/send"]
    assert len(smtp_server[0].messages) == 1


def test_failing_channels_do_not_block_the_others_and_never_show_secrets(
    monkeypatch, webhook, smtp_server, channels, closed_port_url, caplog
):
    set_connection(monkeypatch, "alert_wecom", conn_type="http", host=closed_port_url, password=WECOM_KEY)
    webhook.faults.update(status=[500])  # the DingTalk robot answers HTTP 500 once
    assert send_alert(_alert(), AlertingConfig(**channels)) == ["email"]
    assert len(smtp_server[0].messages) == 1
    warnings = [r.getMessage() for r in caplog.records if r.name == alerting.__name__ and r.levelname == "WARNING"]
    assert any("dingtalk: DingTalk robot answered HTTP 500" in w for w in warnings), warnings
    assert any("wecom: ConnectionError" in w and "key=***" in w for w in warnings), warnings


def test_robot_error_answer_is_a_failure_and_all_failing_raises_without_secrets(monkeypatch, webhook, closed_port_url):
    set_alert_connections(monkeypatch, robots=webhook.url, dingtalk=closed_port_url,
                          smtp_port=int(closed_port_url.rsplit(":", 1)[1]))
    webhook.answer = {"errcode": 93000, "errmsg": "invalid webhook url"}
    config = AlertingConfig(
        dingtalk_conn_id="alert_dingtalk",
        wecom_conn_id="alert_wecom",
        email_conn_id="alert_smtp",
        email_to=["ops@example.com"],
    )
    with pytest.raises(AlertDeliveryError) as raised:
        send_alert(_alert(), config)
    text = "".join(traceback.format_exception(raised.value))  # message and any chained exception
    assert "dingtalk: ConnectionError" in text and "access_token=***" in text
    assert "wecom: WeCom robot answered errcode 93000: invalid webhook url" in text
    assert "email: ConnectionRefusedError" in text
    assert not [secret for secret in SECRETS if secret in text]


def test_no_channel_configured_sends_nothing():
    assert send_alert(_alert(), AlertingConfig()) == []


def test_notify_rejects_only_when_wanted_and_there_are_rejects(webhook, channels):
    context = {"dag_run": {"dag_id": "d", "run_id": RUN_ID}, "data_interval_start": START, "data_interval_end": END}
    config = AlertingConfig(dingtalk_conn_id="alert_dingtalk", base_url=BASE_URL)
    assert notify_rejects(context, config, counts={"rejected": 0}, rejected=[]) == []
    assert notify_rejects(context, config.model_copy(update={"on_rejects": False}), counts={}, rejected=["A"]) == []
    assert notify_rejects(context, config, counts={"saved": 9, "rejected": 1}, rejected=["WH9"]) == ["dingtalk"]
    text = webhook.posted[0].body["markdown"]["text"]
    _assert_names_everything(
        text, ["Rejected records", "saved=9", "WH9", "1 record(s) rejected", expected_run_url(BASE_URL, "d", RUN_ID)]
    )


def test_notify_documents_names_the_held_documents_only_when_there_are_some(webhook, channels):
    context = {"dag_run": {"dag_id": "d", "run_id": RUN_ID}, "data_interval_start": START, "data_interval_end": END}
    config = AlertingConfig(dingtalk_conn_id="alert_dingtalk", base_url=BASE_URL)
    keys: dict[str, list[str]] = {"changed after posting (not edited)": [], "waiting for base data over 24 h": []}
    assert notify_documents(context, config, summary="nothing", keys=keys) == []
    keys = {"changed after posting (not edited)": ["JY1"], "waiting for base data over 24 h": ["JY2"]}
    assert notify_documents(context, config, summary="1 changed after posting, 1 waiting too long",
                            keys=keys) == ["dingtalk"]
    _assert_names_everything(webhook.posted[0].body["markdown"]["text"], [
        "Documents need a look", "changed after posting", "JY1", "waiting for base data over 24 h", "JY2"])


# -- Airflow wiring -------------------------------------------------------------------------------------------


def test_failure_callbacks_only_when_wanted():
    assert failure_callbacks(AlertingConfig()) == []
    assert failure_callbacks(AlertingConfig(wecom_conn_id="w", on_failure=False)) == []
    [notifier] = failure_callbacks(AlertingConfig(wecom_conn_id="w"))
    assert isinstance(notifier, SchemeAlertNotifier) and notifier.config.wecom_conn_id == "w"


def _import_dag_file(name: str, path: Path) -> ModuleType:
    """Import a DAG file as a module, as the DAG processor would."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


PROBE_DAG = f"""
import pendulum
from jikeyun_kingdee.compat import DAG, CronDataIntervalTimetable, task
from jikeyun_kingdee.alerting import AlertingConfig, failure_callbacks

config = AlertingConfig(dingtalk_conn_id="alert_dingtalk", base_url="{BASE_URL}")
hourly = CronDataIntervalTimetable("0 * * * *", timezone="UTC")
with DAG("alerting_failure_probe", schedule=hourly, start_date=pendulum.datetime(2024, 5, 1, tz="UTC"),
         catchup=False) as dag:

    @task(retries=0, on_failure_callback=failure_callbacks(config))
    def save_batches():
        raise RuntimeError("Kingdee MsgCode 11: 基础资料不存在")

    save_batches()
"""


def test_failure_callback_of_a_real_task_run_alerts(airflow_db, webhook, channels, tmp_path, monkeypatch):
    """dag.test() runs the task and its on_failure_callback; it needs the DAG file inside a DAG bundle."""
    from airflow import settings

    dag_file = tmp_path / "alerting_failure_probe.py"
    dag_file.write_text(PROBE_DAG, encoding="utf-8")
    monkeypatch.setattr(settings, "DAGS_FOLDER", str(tmp_path))  # the default bundle's path, this test only
    module = _import_dag_file("alerting_failure_probe", dag_file)

    run = run_dag_test(module.dag, END)
    assert run.state == "failed"
    [posted] = webhook.posted
    text = posted.body["markdown"]["text"]
    _assert_names_everything(
        text,
        [
            "Task failed",
            "alerting_failure_probe",
            run.run_id,
            "save_batches",
            "2024-05-01 00:00 → 2024-05-01 01:00 UTC",
            "RuntimeError: Kingdee MsgCode 11: 基础资料不存在",
            expected_run_url(BASE_URL, "alerting_failure_probe", run.run_id, "save_batches"),
        ],
    )


@only_airflow3
def test_deadline_alert_has_interval_and_an_importable_async_callback():
    from airflow._shared.module_loading import import_string

    from jikeyun_kingdee.compat import AsyncCallback, DeadlineReference  # airflow.sdk's, on Airflow 3

    assert deadline_alert(AlertingConfig(wecom_conn_id="w")) is None
    assert deadline_alert(AlertingConfig(deadline_minutes=30)) is None  # no channel, nobody to tell
    config = AlertingConfig(wecom_conn_id="w", email_to=["ops@example.com"], deadline_minutes=90)
    deadline = deadline_alert(config)
    assert deadline is not None
    assert deadline.interval == timedelta(minutes=90)
    assert deadline.reference == DeadlineReference.DAGRUN_QUEUED_AT
    assert isinstance(deadline.callback, AsyncCallback)
    assert deadline.callback.path == "jikeyun_kingdee.alerting.deadline_missed"
    assert import_string(deadline.callback.path) is alerting.deadline_missed
    assert AlertingConfig.model_validate_json(deadline.callback.kwargs["config"]) == config
    hash(deadline)  # DAGs hash their deadlines


@only_airflow3
def test_dag_with_the_deadline_alert_serialises():
    from airflow.sdk import DAG
    from airflow.serialization.serialized_objects import DagSerialization

    config = AlertingConfig(wecom_conn_id="w", deadline_minutes=45)
    with DAG("alerting_deadline_probe", schedule=None, start_date=START, deadline=deadline_alert(config)) as dag:
        pass
    serialized = json.dumps(DagSerialization.to_dict(dag))
    assert "jikeyun_kingdee.alerting.deadline_missed" in serialized
    restored = DagSerialization.from_dict(json.loads(serialized))
    assert restored.deadline is not None


@only_airflow3
def test_deadline_missed_delivers_through_the_triggerers_callback_trigger(webhook, channels):
    """Run the callback the way the triggerer does: CallbackTrigger imports the path and awaits it with context."""
    from airflow.triggers.callback import CallbackTrigger

    config = AlertingConfig(
        dingtalk_conn_id="alert_dingtalk", wecom_conn_id="alert_wecom", deadline_minutes=30, base_url=BASE_URL
    )
    deadline = deadline_alert(config)
    assert deadline is not None
    context = {
        "dag_run": {
            "dag_id": "jky_kd_warehouse_I0134",
            "dag_run_id": RUN_ID,
            "state": "running",
            "data_interval_start": START.isoformat(),
            "data_interval_end": END.isoformat(),
        },
        "deadline": {"id": "0198", "deadline_time": END.add(minutes=30).isoformat()},
    }
    trigger = CallbackTrigger(deadline.callback.path, {**deadline.callback.kwargs, "context": context})

    async def events():
        return [event.payload async for event in trigger.run()]

    payloads = asyncio.run(events())
    assert payloads[-1]["state"] == "success", payloads
    assert payloads[-1]["body"] == ["dingtalk", "wecom"]
    for posted, text in zip(webhook.posted, ("text", "content"), strict=False):
        _assert_names_everything(
            posted.body["markdown"][text],
            [
                "Deadline missed",
                "jky_kd_warehouse_I0134",
                RUN_ID,
                "2024-05-01 00:00 → 2024-05-01 01:00 UTC",
                "2024-05-01T01:30:00+00:00",
                "state running",
                RUN_URL,
            ],
        )


def test_sla_miss_callback_only_when_there_is_a_deadline_and_a_channel():
    assert alerting.sla_miss_callback(AlertingConfig(wecom_conn_id="w")) is None
    assert alerting.sla_miss_callback(AlertingConfig(deadline_minutes=30)) is None
    assert callable(alerting.sla_miss_callback(AlertingConfig(wecom_conn_id="w", deadline_minutes=30)))


def test_scheme_deadline_is_a_deadline_alert_on_airflow3_and_the_report_tasks_sla_on_airflow2(repo_root):
    from jikeyun_kingdee.compat import AIRFLOW_V3
    from jikeyun_kingdee.dag_factory import build_dag
    from jikeyun_kingdee.scheme import load_scheme

    scheme = load_scheme(repo_root / "include" / "schemes" / "warehouse_I0134.yaml")
    scheme = scheme.model_copy(update={"alerting": AlertingConfig(wecom_conn_id="w", deadline_minutes=45)})
    dag = build_dag(scheme)
    if AIRFLOW_V3:
        assert dag.deadline is not None
    else:
        assert dag.sla_miss_callback is not None
        assert {t.task_id: t.sla for t in dag.tasks if t.sla} == {"report": timedelta(minutes=45)}


SLA_PROBE_DAG = f"""
import pendulum
from jikeyun_kingdee.compat import DAG, CronDataIntervalTimetable, task
from jikeyun_kingdee.alerting import AlertingConfig, sla_miss_callback

config = AlertingConfig(dingtalk_conn_id="alert_dingtalk", deadline_minutes=1, base_url="{BASE_URL}")
hourly = CronDataIntervalTimetable("0 * * * *", timezone="UTC")
with DAG("alerting_sla_probe", schedule=hourly, start_date=pendulum.datetime(2024, 5, 1, tz="UTC"), catchup=False,
         sla_miss_callback=sla_miss_callback(config)) as dag:

    @task(sla=pendulum.duration(minutes=1))
    def report():
        return "done"

    report()
"""


@only_airflow2
def test_sla_miss_of_a_real_run_sends_the_deadline_alert(airflow_db, webhook, channels, tmp_path):
    """Airflow 2's DAG processor records the SLA misses of the runs after the last success and calls the callback."""

    # Airflow 2 only (imported by name: the type-checking environment has Airflow 3, which has no DagFileProcessor)
    DagFileProcessor = importlib.import_module("airflow.dag_processing.processor").DagFileProcessor

    dag_file = tmp_path / "alerting_sla_probe.py"
    dag_file.write_text(SLA_PROBE_DAG, encoding="utf-8")
    module = _import_dag_file("alerting_sla_probe", dag_file)
    three_hours_ago = pendulum.now("UTC").start_of("hour").subtract(hours=3)
    assert run_dag_test(module.dag, three_hours_ago).state == "success"

    DagFileProcessor.manage_slas(str(dag_file), "alerting_sla_probe")
    assert webhook.posted, "no SLA alert sent"
    for posted in webhook.posted:
        _assert_names_everything(
            posted.body["markdown"]["text"],
            [
                "Deadline missed",
                "alerting_sla_probe",
                "scheduled__",
                "task(s) report not finished 1 min after the window",
                f"{BASE_URL}/dags/alerting_sla_probe/grid?dag_run_id=scheduled__",
            ],
        )
