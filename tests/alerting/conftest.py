"""Local alert receivers over real connections: a webhook receiver (HTTP) for the robots and an SMTP server.

The migrated Airflow DB for ``dag.test()`` is the root conftest's session fixture ``airflow_db``.
"""

from __future__ import annotations

import json
import socket
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from testsupport import WebhookReceiver

DINGTALK_TOKEN = "dt-token-5f1c2e9a77"
DINGTALK_SIGN_SECRET = "SECsign-77aa31f0c2"
WECOM_KEY = "wecom-key-0b8d7c4e21"
SMTP_LOGIN = "alerts"
SMTP_PASSWORD = "smtp-pass-93ab5d10"
SECRETS = (DINGTALK_TOKEN, DINGTALK_SIGN_SECRET, WECOM_KEY, SMTP_PASSWORD)


@dataclass
class SmtpRecorder:
    """aiosmtpd handler recording delivered messages and the logins used."""

    messages: list[EmailMessage] = field(default_factory=list)
    recipients: list[list[str]] = field(default_factory=list)
    logins: list[tuple[str, str]] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd hook
        self.messages.append(message_from_bytes(envelope.original_content, policy=policy.default))
        self.recipients.append(list(envelope.rcpt_tos))
        return "250 Message accepted for delivery"

    def authenticate(self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
        if isinstance(auth_data, LoginPassword):
            login, password = auth_data.login.decode(), auth_data.password.decode()
            self.logins.append((login, password))
            return AuthResult(success=(login, password) == (SMTP_LOGIN, SMTP_PASSWORD))
        return AuthResult(success=False, handled=False)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def set_connection(monkeypatch: pytest.MonkeyPatch, conn_id: str, **fields: Any) -> None:
    """Define an Airflow connection as an ``AIRFLOW_CONN_<ID>`` JSON environment variable."""
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(fields))


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
    set_connection(monkeypatch, "alert_dingtalk", conn_type="dingding", host=webhook.url, password=DINGTALK_TOKEN)
    set_connection(monkeypatch, "alert_wecom", conn_type="http", host=webhook.url, password=WECOM_KEY)
    set_connection(
        monkeypatch,
        "alert_smtp",
        conn_type="smtp",
        host="127.0.0.1",
        port=smtp_port,
        login=SMTP_LOGIN,
        password=SMTP_PASSWORD,
        extra={"disable_ssl": True, "disable_tls": True, "from_email": "airflow@example.com", "retry_limit": 0, "timeout": 10},
    )
    return {"dingtalk_conn_id": "alert_dingtalk", "wecom_conn_id": "alert_wecom", "email_conn_id": "alert_smtp",
            "email_to": ["ops@example.com", "data@example.com"]}


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
