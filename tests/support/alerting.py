"""Alert channels on loopback: a robot webhook receiver (HTTP), an SMTP message recorder, and the channels' secrets."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any
from urllib.parse import parse_qs, urlsplit

from aiosmtpd.smtp import AuthResult, LoginPassword

from jikeyun_kingdee.sandbox._http import Reply, Request, SandboxServer

from tests.support import set_connection

DINGTALK_TOKEN = "dt-token-5f1c2e9a77"
DINGTALK_SIGN_SECRET = "SECsign-77aa31f0c2"
WECOM_KEY = "wecom-key-0b8d7c4e21"
SMTP_LOGIN = "alerts"
SMTP_PASSWORD = "smtp-pass-93ab5d10"
SECRETS = (DINGTALK_TOKEN, DINGTALK_SIGN_SECRET, WECOM_KEY, SMTP_PASSWORD)


@dataclass
class Posted:
    """One webhook call as the receiver saw it."""

    path: str
    query: dict[str, str]
    body: Any
    headers: dict[str, str]


class WebhookReceiver(SandboxServer):
    """Robot webhook stand-in (DingTalk and WeCom answer alike): records POSTed JSON, answers ``answer``."""

    name = "webhook"

    def __init__(self) -> None:
        super().__init__()
        self.posted: list[Posted] = []
        self.answer: dict[str, Any] = {"errcode": 0, "errmsg": "ok"}

    def handle(self, request: Request) -> Reply:
        url = urlsplit(request.path)
        query = {name: values[0] for name, values in parse_qs(url.query).items()}
        self.posted.append(Posted(url.path, query, json.loads(request.body or b"null"), request.headers))
        self.count(url.path)
        return Reply(body=self.answer)


@dataclass
class SmtpRecorder:
    """aiosmtpd handler recording delivered messages and the logins used."""

    messages: list[EmailMessage] = field(default_factory=list)
    recipients: list[list[str]] = field(default_factory=list)
    logins: list[tuple[str, str]] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # the name aiosmtpd calls
        self.messages.append(message_from_bytes(envelope.original_content, policy=policy.default))
        self.recipients.append(list(envelope.rcpt_tos))
        return "250 Message accepted for delivery"

    def authenticate(self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
        if isinstance(auth_data, LoginPassword):
            login, password = auth_data.login.decode(), auth_data.password.decode()
            self.logins.append((login, password))
            return AuthResult(success=(login, password) == (SMTP_LOGIN, SMTP_PASSWORD))
        return AuthResult(success=False, handled=False)


def set_alert_connections(
    monkeypatch: Any, *, robots: str, smtp_port: int, dingtalk: str | None = None,
    smtp_extra: dict[str, Any] | None = None,
) -> None:
    """The connections of the three alert channels: both robots at ``robots`` (DingTalk at ``dingtalk`` when given),
    SMTP on loopback at ``smtp_port`` without TLS or retries (plus ``smtp_extra``)."""
    set_connection(monkeypatch, "alert_dingtalk", conn_type="dingding", host=dingtalk or robots,
                   password=DINGTALK_TOKEN)
    set_connection(monkeypatch, "alert_wecom", conn_type="http", host=robots, password=WECOM_KEY)
    set_connection(monkeypatch, "alert_smtp", conn_type="smtp", host="127.0.0.1", port=smtp_port, login=SMTP_LOGIN,
                   password=SMTP_PASSWORD,
                   extra={"disable_ssl": True, "disable_tls": True, "retry_limit": 0, **(smtp_extra or {})})
