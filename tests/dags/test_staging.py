"""Staging works unchanged on an ``s3://`` base (a real S3 API: moto's server on loopback, through Airflow's Amazon
provider and an Airflow connection), and a rerun of a step replaces its own files."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from dag_timeline import hour

from jikeyun_kingdee import pipeline
from jikeyun_kingdee.hooks.jikeyun import JikeyunHook
from jikeyun_kingdee.scheme import load_scheme
from jikeyun_kingdee.staging import read_ndjson, run_folder, staging_base

SCHEME = load_scheme(Path(__file__).resolve().parents[2] / "include" / "schemes" / "warehouse_I0134.yaml")
BUCKET = "jk-staging"


@pytest.fixture
def s3_staging(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    import boto3
    from moto.server import ThreadedMotoServer

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        endpoint = f"http://127.0.0.1:{port}"
        boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="testing",
                     aws_secret_access_key="testing").create_bucket(Bucket=BUCKET)
        monkeypatch.setenv("AIRFLOW_CONN_AWS_STAGING", json.dumps({
            "conn_type": "aws", "login": "testing", "password": "testing",
            "extra": {"endpoint_url": endpoint, "region_name": "us-east-1"},
        }))
        monkeypatch.setenv("AIRFLOW__JIKEYUN_KINGDEE__STAGING_BASE", f"s3://aws_staging@{BUCKET}/jikeyun-kingdee")
        yield endpoint
    finally:
        server.stop()


def test_steps_stage_on_s3_and_a_rerun_replaces_its_files(jikeyun, s3_staging: str) -> None:
    import boto3

    folder = run_folder(staging_base(), SCHEME.dag_id, "manual__s3_test", None, None)
    extracted = pipeline.extract(SCHEME, JikeyunHook(), folder, None, None)
    assert extracted["pages"] and all(path.startswith(f"s3://aws_staging@{BUCKET}/") for path in extracted["pages"])
    assert extracted["fetched"] == len(jikeyun.warehouses) == 1000
    transformed = pipeline.transform(SCHEME, folder, extracted)
    filtered = pipeline.filter_rows(SCHEME, folder, transformed)
    rows = [item for chunk in filtered["chunks"] for item in read_ndjson(chunk["items"])]
    assert len(rows) == filtered["counts"]["rows"] == len({row["key"] for row in rows}) > 0

    s3 = boto3.client("s3", endpoint_url=s3_staging, region_name="us-east-1", aws_access_key_id="testing",
                      aws_secret_access_key="testing")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="jikeyun-kingdee/").get("Contents", [])]
    assert sum("/extract/page-" in key for key in keys) == len(extracted["pages"])
    assert sum("/filter/chunk-" in key for key in keys) == filtered["counts"]["chunks"] == len(filtered["chunks"]) > 0

    # A rerun that reads nothing leaves no page of the first attempt behind.
    again = pipeline.extract(SCHEME, JikeyunHook(), folder, hour(100), hour(101))
    assert (again["fetched"], again["pages"]) == (0, [])
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="jikeyun-kingdee/").get("Contents", [])]
    assert not any("/extract/page-" in key for key in keys)
