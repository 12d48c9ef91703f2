"""Fixtures of the alerting tests: local alert receivers over real connections (a webhook receiver and an SMTP
server) and a check that no channel secret reaches any output.

The migrated Airflow DB for ``dag.test()`` is the root conftest's session fixture ``airflow_db``.
"""

from __future__ import annotations

import socket

import pytest
from aiosmtpd.controller import Controller

from tests.support.alerting import (
    SECRETS,
    SmtpRecorder,
    WebhookReceiver,
    set_alert_connections,
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def webhook():
    with WebhookReceiver() as receiver:
        yield receiver


@pytest.fixture
def smtp_server():
    recorder = SmtpRecorder()
    controller = Controller(
        recorder,
        hostname="127.0.0.1",
        port=_free_port(),
        authenticator=recorder.authenticate,
        auth_require_tls=False,
    )
    controller.start()
    try:
        yield recorder, controller.port
    finally:
        controller.stop()


@pytest.fixture
def closed_port_url() -> str:
    """A loopback URL nobody listens on."""
    return f"http://127.0.0.1:{_free_port()}"


@pytest.fixture
def channels(monkeypatch, webhook, smtp_server):
    """Connections of all three channels pointing at the local receivers."""
    _, smtp_port = smtp_server
    set_alert_connections(monkeypatch, robots=webhook.url, smtp_port=smtp_port,
                          smtp_extra={"from_email": "airflow@example.com", "timeout": 10})
    return {
        "dingtalk_conn_id": "alert_dingtalk",
        "wecom_conn_id": "alert_wecom",
        "email_conn_id": "alert_smtp",
        "email_to": ["ops@example.com", "data@example.com"],
    }


@pytest.fixture(autouse=True)
def no_secret_in_output(caplog, capfd):
    """Every test of this directory: no robot token, key or SMTP password in any log line or console output."""
    caplog.set_level("INFO")  # third-party DEBUG (urllib3 request lines) is masked by Airflow's log pipeline only
    caplog.set_level("DEBUG", logger="jikeyun_kingdee.alerting")
    caplog.set_level("DEBUG", logger="airflow")
    yield
    out, err = capfd.readouterr()
    seen = caplog.text + out + err
    leaked = [secret for secret in SECRETS if secret in seen]
    assert not leaked, f"secrets leaked into logs/output: {leaked}"
