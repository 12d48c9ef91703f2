"""Signature, request shape, envelope, connection handling — over real HTTP against the sandbox."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qsl

import pendulum
import pytest
import requests
from pydantic import SecretStr

from jikeyun_kingdee.hooks.jikeyun import (
    JikeyunAuth,
    JikeyunError,
    JikeyunFatalError,
    JikeyunQuotaExhausted,
    JikeyunSettings,
    JikeyunThrottledError,
    beijing_time,
    classify_envelope,
    sign,
    window_bounds,
)
from jikeyun_kingdee.sandbox.jikeyun import TIMESTAMP_EXPIRED, verify_sign

VECTOR_SECRET = "0123456789abcdef0123456789ABCDEF"
VECTOR = {
    "method": "erp.warehouse.get",
    "appkey": "12345678",
    "version": "v1.0",
    "contenttype": "json",
    "timestamp": "2024-01-02 10:00:00",
    "bizcontent": '{"pageIndex":0,"pageSize":50,"gmtModifiedStart":"2024-01-01 00:00:00",'
    '"gmtModifiedEnd":"2024-01-02 00:00:00"}',
}
VECTOR_SIGN = "a37e4054ba7b317da2d15c33c83b8ab6"


def test_sign_reproduces_the_reference_vector():
    assert sign(VECTOR, VECTOR_SECRET) == VECTOR_SIGN
    assert sign({**VECTOR, "token": "t", "contextid": "c", "sign": "x"}, VECTOR_SECRET) == VECTOR_SIGN
    assert verify_sign({**VECTOR, "sign": VECTOR_SIGN}, VECTOR_SECRET)
    assert not verify_sign({**VECTOR, "sign": VECTOR_SIGN}, VECTOR_SECRET + "x")


def test_auth_signs_a_form_request_like_the_vector():
    settings = JikeyunSettings(appkey="12345678", appsecret=SecretStr(VECTOR_SECRET), token=SecretStr("isv-token"))

    def clock() -> pendulum.DateTime:
        return pendulum.datetime(2024, 1, 2, 2, 0, tz="UTC")  # 10:00 Beijing

    biz = json.loads(VECTOR["bizcontent"])
    prepared = requests.Request(
        "POST",
        "http://127.0.0.1/",
        data={"method": "erp.warehouse.get", "bizcontent": json.dumps(biz, separators=(",", ":"))},
        auth=JikeyunAuth(settings, clock),
    ).prepare()
    body = prepared.body
    assert isinstance(body, str)  # a form-encoded dict body
    form = dict(parse_qsl(body))
    assert form["sign"] == VECTOR_SIGN
    assert form["token"] == "isv-token" and form["timestamp"] == "2024-01-02 10:00:00"
    assert prepared.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert VECTOR_SECRET not in body and VECTOR_SECRET not in repr(JikeyunAuth(settings))


def test_window_times_are_sent_in_beijing_time():
    assert beijing_time(datetime(2024, 1, 1, 16, 0, tzinfo=timezone.utc)) == "2024-01-02 00:00:00"
    with pytest.raises(ValueError):
        beijing_time(datetime(2024, 1, 1, tzinfo=timezone.utc).replace(tzinfo=None))  # naive on purpose


def test_request_shape_and_no_extras_in_headers(connect, sandbox, make_hook):
    connect(sandbox, extra={"token": "isv-token", "max_calls_per_second": 50, "timeout": 5, "version": "v1.0"})
    hook = make_hook()
    data = hook.call("erp.warehouse.get", {"pageIndex": 0, "pageSize": 2, "name": "上海"})
    assert len(data["warehouseInfo"]) == 2
    sent = sandbox.last_request
    assert set(sent["params"]) == {
        "method",
        "appkey",
        "version",
        "contenttype",
        "timestamp",
        "bizcontent",
        "sign",
        "token",
    }
    assert sent["params"]["bizcontent"] == '{"pageIndex":0,"pageSize":2,"name":"上海"}'
    assert sent["params"]["contenttype"] == "json" and sent["params"]["version"] == "v1.0"
    sent_at = pendulum.from_format(sent["params"]["timestamp"], "YYYY-MM-DD HH:mm:ss", tz="Asia/Shanghai")
    assert abs(pendulum.now("UTC") - sent_at) < timedelta(minutes=1)
    assert sent["headers"]["content-type"].startswith("application/x-www-form-urlencoded")
    assert not {"version", "token", "max_calls_per_second", "timeout"} & set(sent["headers"])
    assert sandbox.appsecret not in json.dumps(sent, ensure_ascii=False)


def test_one_session_per_hook(jikeyun_conn, make_hook):
    hook = make_hook()
    hook.call("erp.warehouse.get", {"pageIndex": 0, "pageSize": 1})
    session = hook.get_conn()
    hook.call("erp.warehouse.get", {"pageIndex": 1, "pageSize": 1})
    assert hook.get_conn() is session
    assert hook.call_counts["erp.warehouse.get"] == 2


def test_empty_host_means_the_public_gateway(connect, sandbox, make_hook):
    connect(sandbox, host="")
    assert make_hook().url_from_endpoint(None) == "https://open.jackyun.com/open/openapi/do"


def test_code_200_as_string_is_success(connect, make_sandbox, make_hook):
    connect(make_sandbox(warehouses=3, code_as_string=True))
    biz = {"pageIndex": 0, "pageSize": 50, "includeDeleteAndBlockup": 1}
    assert len(make_hook().call("erp.warehouse.get", biz)["warehouseInfo"]) == 3


@pytest.mark.parametrize(
    ("envelope", "error"),
    [
        ({"code": 0, "subCode": "0859999999", "msg": "x", "result": {"contextId": "1"}}, JikeyunThrottledError),
        ({"code": 0, "subCode": "0130020001", "msg": "调用太频繁，请稍后再试"}, JikeyunThrottledError),
        ({"code": 0, "subCode": "0858030801", "msg": "签名错误"}, JikeyunFatalError),
        ({"code": 0, "subCode": "0130020001", "msg": "未知错误"}, JikeyunError),
        ({"code": 0, "subCode": "0130000609", "msg": "额度不足"}, JikeyunQuotaExhausted),
        ({"code": 0, "subCode": "0130000609", "msg": ""}, JikeyunQuotaExhausted),
        ({"code": 0, "subCode": "0130000609", "msg": "该应用未开通开放平台，无法调用接口"}, JikeyunFatalError),
    ],
)
def test_envelope_classification(envelope, error):
    with pytest.raises(error) as info:
        classify_envelope("erp.warehouse.get", envelope)
    assert type(info.value) is error
    assert info.value.sub_code == envelope["subCode"] and info.value.method == "erp.warehouse.get"


@pytest.mark.parametrize(
    ("bizcontent", "logged"),
    [
        ({"gmtModifiedStart": "2025-01-01 00:00:00", "gmtModifiedEnd": "2025-01-02 00:00:00", "pageIndex": 0},
         "2025-01-01T00:00:00~2025-01-02T00:00:00"),
        ({"startModified": "2025-01-01 00:00:00", "endModified": "2025-01-08 00:00:00", "scrollId": ""},
         "2025-01-01T00:00:00~2025-01-08T00:00:00"),
        ({"startDateModifiedSku": 1735660800000, "endDateModifiedSku": 1735747200000, "maxSkuId": "0"},
         "1735660800000~1735747200000"),
        ({"startDate": "a", "endDate": "b", "startDateModifiedGoods": "c", "endDateModifiedGoods": "d"}, "a~b,c~d"),
        ({"pageIndex": 0, "start": "x", "endless": "y"}, None),
    ],
)
def test_the_call_log_shows_the_window_of_any_pair(bizcontent, logged):
    assert window_bounds(bizcontent) == logged


def test_success_envelope_variants():
    assert classify_envelope("m", {"code": "200", "subCode": "0030000004", "result": {"data": {"a": 1}}}) == {"a": 1}
    assert classify_envelope("m", {"code": 200, "result": {"data": '{"b": 2}'}}) == {"b": 2}
    assert classify_envelope("m", {"code": 200, "result": {"data": None}}) == {}


@pytest.mark.parametrize(("skew", "accepted"), [(timedelta(minutes=9), True), (timedelta(minutes=11), False)])
def test_sandbox_checks_timestamp_freshness(sandbox, skew, accepted):
    settings = JikeyunSettings(appkey=sandbox.appkey, appsecret=sandbox.appsecret)
    auth = JikeyunAuth(settings, clock=lambda: pendulum.now("Asia/Shanghai") - skew)
    answer = requests.post(
        sandbox.url, data={"method": "erp.warehouse.get", "bizcontent": "{}"}, auth=auth, timeout=5
    ).json()
    assert (answer["code"] == 200) is accepted
    if not accepted:
        assert answer["subCode"] == TIMESTAMP_EXPIRED


def test_test_connection(connect, sandbox, make_hook):
    connect(sandbox)
    ok, message = make_hook().test_connection()
    assert ok, message
    connect(sandbox, password="wrong-secret-0000")
    ok, message = make_hook().test_connection()
    assert not ok and "0858030801" in message and "wrong-secret-0000" not in message
    assert sandbox.calls["erp.warehouse.get"] == 2
