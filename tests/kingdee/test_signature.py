"""The SDK-v8 header signature reproduces the test vector of docs/protocol/kingdee.md."""

from __future__ import annotations

from jikeyun_kingdee.hooks.kingdee import decode_client_secret, signature_headers

PATH = "/k3cloud/Kingdee.BOS.WebApi.ServicesStub.DynamicFormService.BatchSave.common.kdsvc"
APP_ID = "204399_72epSbtEQMC92Vwt2d3LRa9LRqSc1tqJ"


def test_signature_matches_the_test_vector() -> None:
    headers = signature_headers(
        f"http://example.invalid{PATH}", acct_id="5db25ac8d2b819", username="webapi", app_id=APP_ID,
        app_secret="fb7d46647ac346dbb5fcd45b65512a45", lcid=2052, org_num=0, timestamp="1700000000",
    )
    assert decode_client_secret(APP_ID.split("_")[1]) == "31ecfd13effe724e7e78fc17f8f94b66"
    assert headers == {
        "X-Api-ClientID": "204399",
        "X-Api-Auth-Version": "2.0",
        "x-api-timestamp": "1700000000",
        "x-api-nonce": "1700000000",
        "x-api-signheaders": "x-api-timestamp,x-api-nonce",
        "X-Api-Signature": "NzBlNzhhYjEyYzc0MjJmYTBhNjUyYzliNGFmMGVmMjg2ZTYyNWYzOGQ0MDE4ODc4YWEwZGRhZjRiNjc4YzVjMA==",
        "X-Kd-Appkey": APP_ID,
        "X-Kd-Appdata": "NWRiMjVhYzhkMmI4MTksd2ViYXBpLDIwNTIsMA==",
        "X-Kd-Signature": "OWQ2YWVhM2JmOGVlYWEzYjVlZGI0NzM3MjlmYzA4NTkyYjhiMTAwNTgxODk5MmQ5NWIxMzBjZTQxNjk5ZWFiYg==",
    }


def test_app_id_secret_of_wrong_length_gives_empty_key() -> None:
    assert decode_client_secret("short") == ""
