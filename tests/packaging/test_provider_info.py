"""The installed distribution registers the ``jikeyun`` and ``kingdee`` connection types with Airflow's
ProvidersManager."""

from __future__ import annotations

import json
import sys
from importlib.metadata import entry_points
from importlib.resources import files
from unittest import mock

import jsonschema
import pytest
from airflow.providers_manager import ProvidersManager

from jikeyun_kingdee.provider_info import PROVIDER_INFO, connection_form_widgets, connection_type, ui_field_behaviour

from tests.support.airflow_compat import only_airflow2, only_airflow3

HOOKS = {
    "jikeyun": "jikeyun_kingdee.hooks.jikeyun.JikeyunHook",
    "kingdee": "jikeyun_kingdee.hooks.kingdee.KingdeeHook",
}


def _airflow_schema(name: str) -> dict:
    return json.loads((files("airflow") / name).read_text())


@pytest.fixture(scope="module")
def hook_meta() -> dict[str | None, dict]:
    """What the Airflow 3 UI's ``/ui/connections/hook_meta`` endpoint serves, per connection type."""
    from airflow.api_fastapi.core_api.services.ui.connections import HookMetaService

    return {meta.connection_type: meta.model_dump() for meta in HookMetaService.hook_meta_data()}


def test_entry_point_serves_the_provider_info():
    (entry,) = [ep for ep in entry_points(group="apache_airflow_provider") if ep.value.startswith("jikeyun_kingdee")]
    assert entry.load()() is PROVIDER_INFO


def test_provider_info_follows_airflows_schemas():
    jsonschema.validate(PROVIDER_INFO, _airflow_schema("provider_info.schema.json"))
    # provider.yaml's schema is the strict one for conn-fields and ui-field-behaviour
    item_schema = _airflow_schema("provider.yaml.schema.json")["properties"]["connection-types"]["items"]
    for entry in PROVIDER_INFO["connection-types"]:
        jsonschema.validate(entry, item_schema)


def test_providers_manager_registers_both_connection_types():
    hooks = ProvidersManager().hooks

    def hook_class_name(conn_type: str) -> str:
        info = hooks[conn_type]
        assert info is not None, f"no hook registered for {conn_type}"
        return info.hook_class_name

    assert {conn_type: hook_class_name(conn_type) for conn_type in HOOKS} == HOOKS


@only_airflow2
@pytest.mark.parametrize("conn_type", sorted(HOOKS))
def test_airflow2_ui_gets_the_form_from_the_hooks(conn_type):
    """Airflow 2 ignores ``conn-fields`` and ``ui-field-behaviour``: its Flask UI asks the hook classes."""
    manager = ProvidersManager()
    assert manager.field_behaviours[conn_type] == ui_field_behaviour(conn_type)
    widgets = {
        name.split("__")[2]: info
        for name, info in manager.connection_form_widgets.items()
        if name.split("__")[1] == conn_type
    }
    assert list(widgets) == list(connection_type(conn_type)["conn-fields"])
    assert {name for name, info in widgets.items() if info.is_sensitive} == (
        {"token"} if conn_type == "jikeyun" else set()
    )
    assert {info.hook_class_name for info in widgets.values()} == {HOOKS[conn_type].rsplit(".", 1)[1]}


@only_airflow3
@pytest.mark.parametrize(
    ("conn_type", "labels"),
    [
        ("jikeyun", {"host": "Gateway URL", "login": "AppKey", "password": "AppSecret"}),
        ("kingdee", {"host": "Server URL", "login": "User name", "password": "Password or app secret"}),
    ],
)
def test_standard_fields_are_relabelled_and_unused_ones_hidden(hook_meta, conn_type, labels):
    fields = hook_meta[conn_type]["standard_fields"]
    assert {name: fields[name]["title"] for name in labels} == labels
    assert all(fields[name]["placeholder"] for name in labels)
    assert fields["port"]["hidden"] and fields["url_schema"]["hidden"]
    assert not any(fields[name]["hidden"] for name in labels)


@only_airflow3
def test_jikeyun_gateway_placeholder(hook_meta):
    assert hook_meta["jikeyun"]["standard_fields"]["host"]["placeholder"] == "https://open.jackyun.com/open/openapi/do"


@only_airflow3
@pytest.mark.parametrize(
    ("conn_type", "field", "json_type", "default"),
    [
        ("jikeyun", "version", ["string", "null"], "v1.0"),
        ("jikeyun", "token", ["string", "null"], None),
        ("jikeyun", "max_calls_per_second", ["number", "null"], None),
        ("jikeyun", "timeout", ["number", "null"], None),
        ("kingdee", "acct_id", "string", None),
        ("kingdee", "lcid", ["integer", "null"], 2052),
        ("kingdee", "auth", "string", "password"),
        ("kingdee", "app_id", ["string", "null"], None),
        ("kingdee", "org_num", ["integer", "null"], 0),
        ("kingdee", "timeout", ["number", "null"], None),
    ],
)
def test_extra_fields_are_typed(hook_meta, conn_type, field, json_type, default):
    extra = hook_meta[conn_type]["extra_fields"][field]
    assert extra["schema"]["type"] == json_type
    assert extra["value"] == default
    assert extra["schema"]["title"]


@only_airflow3
def test_kingdee_auth_is_a_choice(hook_meta):
    assert hook_meta["kingdee"]["extra_fields"]["auth"]["schema"]["enum"] == ["password", "app_secret", "signature"]


@only_airflow3
def test_only_secrets_are_password_fields(hook_meta):
    widgets = ProvidersManager()._connection_form_widgets_from_metadata
    sensitive = {name for name, widget in widgets.items() if widget.is_sensitive and name.split("__")[1] in HOOKS}
    assert sensitive == {"extra__jikeyun__token"}
    assert hook_meta["jikeyun"]["extra_fields"]["token"]["schema"]["format"] == "password"


@only_airflow3
@pytest.mark.parametrize("conn_type", sorted(HOOKS))
def test_legacy_ui_field_behaviour_matches_the_declaration(conn_type):
    behaviour = ui_field_behaviour(conn_type)
    jsonschema.validate(behaviour, _airflow_schema("customized_form_field_behaviours.schema.json"))
    meta = next(m for m in ProvidersManager().iter_connection_type_hook_ui_metadata() if m.connection_type == conn_type)
    assert behaviour == meta.field_behaviour


@only_airflow3
@pytest.mark.parametrize("conn_type", sorted(HOOKS))
def test_legacy_form_widgets_match_the_declaration(hook_meta, conn_type):
    """Build the WTForms widgets with the stand-ins Airflow's API server uses when FAB/WTForms are absent (3.1)."""
    from airflow.api_fastapi.core_api.services.ui.connections import HookMetaService

    stand_ins = {name: mock.MagicMock() for name in ("wtforms", "wtforms.validators", "flask_babel")}
    stand_ins["flask_appbuilder.fieldwidgets"] = mock.MagicMock()
    stand_ins["wtforms"].configure_mock(
        StringField=HookMetaService.MockStringField,
        IntegerField=HookMetaService.MockIntegerField,
        PasswordField=HookMetaService.MockPasswordField,
    )
    stand_ins["wtforms.validators"].configure_mock(
        Optional=HookMetaService.MockOptional, any_of=HookMetaService.MockEnum
    )
    stand_ins["flask_babel"].lazy_gettext = str
    with mock.patch.dict(sys.modules, stand_ins):
        widgets = connection_form_widgets(conn_type)

    declared = hook_meta[conn_type]["extra_fields"]
    assert list(widgets) == list(declared)
    for name, widget in widgets.items():
        legacy, schema = widget.param.dump(), declared[name]["schema"]
        assert legacy["schema"]["title"] == schema["title"]
        assert legacy["value"] == declared[name]["value"]
        assert legacy["schema"].get("format") == schema.get("format")
        assert legacy["schema"].get("enum") == schema.get("enum")
        # WTForms has no float field: numbers travel as text on Airflow < 3.2
        declared_type = schema["type"] if isinstance(schema["type"], str) else schema["type"][0]
        assert legacy["schema"]["type"][0] == {"number": "string"}.get(declared_type, declared_type)


def test_declared_extras_are_the_ones_the_hooks_read():
    """The form and the hooks' connection models agree on extra names and defaults (and the gateway URL)."""
    from jikeyun_kingdee.hooks.jikeyun import GATEWAY_URL, JikeyunSettings
    from jikeyun_kingdee.hooks.kingdee import KingdeeSettings

    standard = {"appkey", "appsecret", "server_url", "username", "secret"}  # host, login, password
    for conn_type, model in (("jikeyun", JikeyunSettings), ("kingdee", KingdeeSettings)):
        declared = connection_type(conn_type)["conn-fields"]
        read = {name: info for name, info in model.model_fields.items() if name not in standard}
        assert set(declared) == set(read), conn_type
        for name, field in declared.items():
            if "default" in field["schema"]:
                assert field["schema"]["default"] == read[name].default, (conn_type, name)
    placeholders = ui_field_behaviour("jikeyun")["placeholders"]
    assert placeholders["host"] == GATEWAY_URL
