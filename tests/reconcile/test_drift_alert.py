"""The drift alert: what was found, what was repaired, what is left, through the scheme's channels."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from jikeyun_kingdee.alerting import AlertingConfig, notify_drift

from tests.support.reconcile import WECOM_KEY

UTC = timezone.utc  # datetime.UTC is 3.11+; the package supports 3.10

CONTEXT = {"dag_run": {"dag_id": "jikeyun_kingdee_warehouse_I0134_reconcile", "run_id": "manual__2026-11-02"},
           "data_interval_start": datetime(2026, 11, 1, 18, 30, tzinfo=UTC),
           "data_interval_end": datetime(2026, 11, 2, 18, 30, tzinfo=UTC)}


def test_the_drift_alert_names_classes_keys_and_what_is_left(webhook) -> None:
    config = AlertingConfig(wecom_conn_id="alert_wecom", base_url="http://airflow.example")
    delivered = notify_drift(
        CONTEXT, config, summary="found missing 1, kingdee_only 1; drift 1, 1 repaired, 0 left",
        counts={"missing": 1, "kingdee_only": 1, "repaired": 1, "left": 0},
        keys={"Missing in Kingdee": ["SH0001"], "Fields differ": [], "Only in Kingdee (not touched)": ["HAND-01"]},
    )
    assert delivered == ["wecom"]
    [posted] = webhook.posted
    assert posted.query == {"key": WECOM_KEY}
    text = posted.body["markdown"]["content"]
    assert "Kingdee drifted from Jikeyun: jikeyun_kingdee_warehouse_I0134_reconcile" in text
    assert "found missing 1, kingdee_only 1; drift 1, 1 repaired, 0 left" in text
    assert "missing=1, kingdee_only=1, repaired=1, left=0" in text
    assert "**Missing in Kingdee:** SH0001" in text and "**Only in Kingdee (not touched):** HAND-01" in text
    assert "Fields differ" not in text  # no empty class


def test_no_drift_alert_when_the_scheme_does_not_want_it_or_has_no_channel(webhook) -> None:
    args: dict[str, Any] = {"summary": "s", "counts": {"missing": 1}, "keys": {"Missing in Kingdee": ["A"]}}
    assert notify_drift(CONTEXT, AlertingConfig(wecom_conn_id="alert_wecom", on_drift=False), **args) == []
    assert notify_drift(CONTEXT, AlertingConfig(), **args) == []
    assert webhook.posted == []
