"""Provider metadata: the ``jikeyun`` and ``kingdee`` connection types as Airflow's UI shows them, and the
``jikeyun://`` / ``kingdee://`` asset URI schemes (:mod:`jikeyun_kingdee.lineage`).

Airflow 3.2+ reads the form declaratively from ``conn-fields`` (JSON-schema extras stored in ``Connection.extra``)
and ``ui-field-behaviour`` (hidden, relabelled and placeholder standard fields) without importing the hooks.
Airflow 2.x and 3.1 ask the hook classes instead; :func:`connection_form_widgets` and :func:`ui_field_behaviour`
build those answers from the same declaration, so a hook only delegates to them::

    @classmethod
    def get_connection_form_widgets(cls) -> dict:
        return connection_form_widgets(cls.conn_type)

    @classmethod
    def get_ui_field_behaviour(cls) -> dict:
        return ui_field_behaviour(cls.conn_type)

Airflow 3.2+ skips those methods because the declaration exists, so they cost nothing there.
"""

from __future__ import annotations

from typing import Any

#: the public Jikeyun open API gateway (the hook's default host and the connection form's placeholder)
GATEWAY_URL = "https://open.jackyun.com/open/openapi/do"

_HIDDEN = ["schema", "port", "extra"]  # extras have their own typed fields; raw JSON would bypass them
_TIMEOUT = {
    "label": "Timeout (seconds)",
    "description": "Read timeout of one HTTP call; empty means the hook's default.",
    "schema": {"type": ["number", "null"], "exclusiveMinimum": 0},
}
# URI schemes of the sync's inlets and outlets (jikeyun_kingdee.lineage): their check, and their OpenLineage datasets
_ASSET_URIS = {
    "schemes": ["jikeyun", "kingdee"],
    "handler": "jikeyun_kingdee.lineage.normalize_uri",
    "to_openlineage_converter": "jikeyun_kingdee.lineage.to_openlineage",
}

PROVIDER_INFO: dict[str, Any] = {
    "package-name": "airflow-jikeyun-kingdee",
    "name": "Jikeyun → Kingdee",
    "description": "Jikeyun (Jackyun ERP) and Kingdee Cloud Galaxy (K3Cloud) hooks and master-data sync DAGs.",
    "versions": ["0.1.0"],
    "connection-types": [
        {
            "connection-type": "jikeyun",
            "hook-class-name": "jikeyun_kingdee.hooks.jikeyun.JikeyunHook",
            "hook-name": "Jikeyun (Jackyun ERP)",
            "ui-field-behaviour": {
                "hidden-fields": _HIDDEN,
                "relabeling": {"host": "Gateway URL", "login": "AppKey", "password": "AppSecret"},
                "placeholders": {
                    "host": GATEWAY_URL,
                    "login": "numeric AppKey of the open-platform app, e.g. 16242933",
                    "password": "AppSecret of the open-platform app",
                },
            },
            "conn-fields": {
                "version": {
                    "label": "API version",
                    "description": "Value of the signed `version` parameter.",
                    "schema": {"type": ["string", "null"], "default": "v1.0"},
                },
                "token": {
                    "label": "ISV token",
                    "description": "Merchant-authorisation token; only third-party (ISV) apps need it.",
                    "schema": {"type": ["string", "null"], "format": "password"},
                },
                "max_calls_per_second": {
                    "label": "Max calls per second",
                    "description": "Client-side throttle; empty means the hook's default.",
                    "schema": {"type": ["number", "null"], "exclusiveMinimum": 0},
                },
                "timeout": _TIMEOUT,
            },
        },
        {
            "connection-type": "kingdee",
            "hook-class-name": "jikeyun_kingdee.hooks.kingdee.KingdeeHook",
            "hook-name": "Kingdee Cloud Galaxy (K3Cloud)",
            "ui-field-behaviour": {
                "hidden-fields": _HIDDEN,
                "relabeling": {"host": "Server URL", "login": "User name", "password": "Password or app secret"},
                "placeholders": {
                    "host": "https://erp.example.com/k3cloud/",
                    "login": "K3Cloud user name, e.g. webapi",
                    "password": "user password (auth=password) or app secret (auth=app_secret/signature)",
                },
            },
            "conn-fields": {
                "acct_id": {
                    "label": "Data centre ID (AcctID)",
                    "description": "Id of the K3Cloud data centre (账套) to log in to.",
                    "schema": {"type": "string", "minLength": 1},
                },
                "auth": {
                    "label": "Authentication",
                    "description": "password: ValidateUser; app_secret: LoginByAppSecret; "
                    "signature: stateless SDK header signature.",
                    "schema": {"type": "string", "enum": ["password", "app_secret", "signature"],
                               "default": "password"},
                },
                "app_id": {
                    "label": "App ID",
                    "description": "Third-party app id `<clientId>_<secret part>`; needed for app_secret and "
                    "signature.",
                    "schema": {"type": ["string", "null"]},
                },
                "lcid": {
                    "label": "Locale id (LCID)",
                    "description": "Language of messages and multilingual fields; 2052 is Simplified Chinese.",
                    "schema": {"type": ["integer", "null"], "default": 2052},
                },
                "org_num": {
                    "label": "Organisation number",
                    "description": "Signed into the app data of the header signature; 0 when not multi-organisation.",
                    "schema": {"type": ["integer", "null"], "default": 0, "minimum": 0},
                },
                "timeout": _TIMEOUT,
            },
        },
    ],
    "asset-uris": [_ASSET_URIS],  # Airflow 3
    "dataset-uris": [_ASSET_URIS],  # Airflow 2
}


def connection_type(conn_type: str) -> dict[str, Any]:
    """The ``connection-types`` entry of one connection type.

    :param conn_type: ``jikeyun`` or ``kingdee``
    """
    for entry in PROVIDER_INFO["connection-types"]:
        if entry["connection-type"] == conn_type:
            found: dict[str, Any] = entry
            return found
    raise KeyError(f"unknown connection type {conn_type!r}")


def ui_field_behaviour(conn_type: str) -> dict[str, Any]:
    """``get_ui_field_behaviour()`` answer for Airflow < 3.2, from the declaration.

    :param conn_type: ``jikeyun`` or ``kingdee``
    """
    behaviour = connection_type(conn_type)["ui-field-behaviour"]
    return {
        "hidden_fields": list(behaviour["hidden-fields"]),
        "relabeling": dict(behaviour["relabeling"]),
        "placeholders": dict(behaviour["placeholders"]),
    }


def connection_form_widgets(conn_type: str) -> dict[str, Any]:
    """``get_connection_form_widgets()`` answer for Airflow < 3.2: WTForms fields built from ``conn-fields``.

    Secrets become password fields and integers integer fields; other numbers stay text fields (Airflow accepts only
    string, password, integer and boolean fields), so hooks parse numbers from strings too.

    :param conn_type: ``jikeyun`` or ``kingdee``
    """
    # Imported here: WTForms/FAB exist only in the 2.x webserver (3.1's API server substitutes stand-ins).
    from flask_appbuilder.fieldwidgets import BS3PasswordFieldWidget, BS3TextFieldWidget
    from flask_babel import lazy_gettext
    from wtforms import IntegerField, PasswordField, StringField
    from wtforms.validators import Optional, any_of

    widgets = {}
    for name, field in connection_type(conn_type)["conn-fields"].items():
        schema = field["schema"]
        if schema.get("format") == "password":
            field_class, widget = PasswordField, BS3PasswordFieldWidget()
        elif "integer" in schema["type"]:
            field_class, widget = IntegerField, BS3TextFieldWidget()
        else:
            field_class, widget = StringField, BS3TextFieldWidget()
        validators = [Optional(), *([any_of(schema["enum"])] if "enum" in schema else [])]
        widgets[name] = field_class(
            lazy_gettext(field["label"]),
            widget=widget,
            description=field.get("description", ""),
            default=schema.get("default"),
            validators=validators,
        )
    return widgets


def connection_form_methods() -> tuple[classmethod, classmethod]:
    """``get_connection_form_widgets`` and ``get_ui_field_behaviour`` for a hook's class body, built from this
    declaration. Airflow 2.x and 3.1 look for them in the hook class's own ``__dict__`` (not inherited), so each hook
    assigns them; 3.2+ reads ``conn-fields`` and ``ui-field-behaviour`` instead."""

    def widgets(cls: type) -> dict[str, Any]:
        return connection_form_widgets(cls.conn_type)  # type: ignore[attr-defined]

    def behaviour(cls: type) -> dict[str, Any]:
        return ui_field_behaviour(cls.conn_type)  # type: ignore[attr-defined]

    return classmethod(widgets), classmethod(behaviour)
