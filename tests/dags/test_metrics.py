"""Metrics through Airflow's own ``Stats``: a real StatsD listener (a UDP socket of the test on loopback) receives them.

``Stats`` is configured once, when an Airflow process starts. The tests set ``[metrics] statsd_on`` (environment)
and configure it again the way Airflow's processes do (:func:`airflow_compat.reconfigure_stats`), then run the DAG
with ``dag.test()``; afterwards ``Stats`` is configured back from the restored settings.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta

import pendulum
import pytest

from jikeyun_kingdee import metrics

from tests.support.airflow_compat import reconfigure_stats, run_dag_test
from tests.support.dag_timeline import DAG_ID, hour

pytestmark = pytest.mark.usefixtures("staging")

PREFIX = "airflow.jikeyun_kingdee"  # Airflow's [metrics] statsd_prefix, then the package's


@dataclass
class StatsdListener:
    """Collects StatsD datagrams (``name:value|type``, one or more lines each) sent to ``port`` on loopback."""

    sock: socket.socket
    lines: list[str] = field(default_factory=list)
    stopped: threading.Event = field(default_factory=threading.Event)

    @property
    def port(self) -> int:
        return self.sock.getsockname()[1]

    def receive(self) -> None:
        while not self.stopped.is_set():
            try:
                data = self.sock.recv(65535)
            except TimeoutError:
                continue
            self.lines.extend(line for line in data.decode().splitlines() if line)

    def samples(self, kind: str) -> dict[str, list[float]]:
        """Values by metric name (InfluxDB-style tags stay part of the name) of one type: c, g or ms."""
        found: dict[str, list[float]] = defaultdict(list)
        for line in self.lines:
            name, _, rest = line.rpartition(":")
            value, _, type_ = rest.partition("|")
            if type_.split("|")[0] == kind:
                found[name].append(float(value))
        return found

    def counters(self) -> dict[str, float]:
        return {name: sum(values) for name, values in self.samples("c").items()}


@pytest.fixture
def statsd() -> Iterator[StatsdListener]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.1)
    listener = StatsdListener(sock)
    reader = threading.Thread(target=listener.receive, daemon=True)
    reader.start()
    yield listener
    listener.stopped.set()
    reader.join(timeout=5)
    sock.close()


@contextmanager
def stats_to(listener: StatsdListener, **options: str) -> Iterator[None]:
    """Airflow's ``Stats`` sends to ``listener`` (``[metrics] statsd_on``, host, port and ``options``) inside."""
    with pytest.MonkeyPatch.context() as patch:
        settings = {"STATSD_ON": "True", "STATSD_HOST": "127.0.0.1", "STATSD_PORT": str(listener.port),
                    "STATSD_PREFIX": "airflow", **options}
        for option, value in settings.items():
            patch.setenv(f"AIRFLOW__METRICS__{option}", value)
        reconfigure_stats()
        try:
            yield
        finally:
            patch.undo()
            reconfigure_stats()
    settle(listener)


def settle(listener: StatsdListener) -> None:
    """Wait until datagrams already sent on loopback have been read."""
    for _ in range(50):
        count = len(listener.lines)
        threading.Event().wait(0.1)
        if len(listener.lines) == count:
            return


def test_a_run_sends_record_counts_api_calls_retries_latency_and_freshness(
    warehouse_dag, jikeyun, kingdee, statsd: StatsdListener
) -> None:
    jikeyun.faults.update(status=[503])  # the first Jikeyun call fails once and is retried by the hook
    started = pendulum.now("UTC")
    with stats_to(statsd):
        dr = run_dag_test(warehouse_dag, hour(1), run_conf={"full_resync": True})
    finished = pendulum.now("UTC")
    assert dr.state == "success"
    counters = statsd.counters()
    ours = {name: value for name, value in counters.items() if name.startswith(PREFIX)}
    timers, gauges = statsd.samples("ms"), statsd.samples("g")
    print("StatsD counters of the run:", json.dumps(ours, indent=1, sort_keys=True))
    print("StatsD gauges:", {name: values for name, values in gauges.items() if name.startswith(PREFIX)})
    print("StatsD timers (samples, ms total):", {name: (len(v), round(sum(v))) for name, v in timers.items()
                                                 if name.startswith(PREFIX)})

    # Records by status, per DAG: folded names for plain StatsD (which drops tags)
    active = [c for c, w in jikeyun.warehouses.items() if int(w["isBlockup"]) == 0 and int(w.get("isDelete") or 0) == 0]
    records = f"{PREFIX}.records.{DAG_ID}"
    assert counters[f"{records}.created"] == len(active) == len(kingdee.stocks(org="I0134"))
    assert counters[f"{records}.fetched"] == len(jikeyun.warehouses)
    # the scheme forbids blocked-up and deleted warehouses: staged to retire (absent from Kingdee), none filtered out
    assert counters[f"{records}.retire"] == counters[f"{records}.absent"] == len(jikeyun.warehouses) - len(active)
    assert counters[f"{records}.filtered_out"] == 0
    assert counters[f"{records}.updated"] == counters[f"{records}.rejected"] == counters[f"{records}.unchanged"] == 0
    # ... and the tagged name (its tags dropped by plain StatsD) carries the same counts in total
    assert counters[f"{PREFIX}.records"] == sum(v for name, v in counters.items() if name.startswith(f"{records}."))

    # API calls per system and operation: every attempt, the retried one included
    assert counters[f"{PREFIX}.api.calls.jikeyun.erp__warehouse__get"] == jikeyun.calls["erp.warehouse.get"] + 1
    assert counters[f"{PREFIX}.api.retries.jikeyun.erp__warehouse__get"] == 1
    for operation in ("BatchSave", "ExecuteBillQuery"):
        assert counters[f"{PREFIX}.api.calls.kingdee.{operation}"] == kingdee.calls[operation] > 0
    assert f"{PREFIX}.api.retries.kingdee.BatchSave" not in counters
    assert counters[f"{PREFIX}.api.calls"] == sum(v for name, v in counters.items()
                                                  if name.startswith(f"{PREFIX}.api.calls."))
    latencies = timers[f"{PREFIX}.api.latency.kingdee.BatchSave"]
    assert len(latencies) == kingdee.calls["BatchSave"] and all(0 < ms < 60_000 for ms in latencies)
    assert len(timers[f"{PREFIX}.api.latency"]) == counters[f"{PREFIX}.api.calls"]

    # Freshness: a full resync has copied what existed when its extract began, seconds before its report
    freshness = gauges[f"{PREFIX}.freshness.{DAG_ID}"]
    assert len(freshness) == 1 and gauges[f"{PREFIX}.freshness"] == freshness
    assert 0 < freshness[0] < (finished - started).total_seconds()


def test_tags_reach_statsd_when_it_takes_them(statsd: StatsdListener) -> None:
    """With InfluxDB-style StatsD tags on, the tagged names carry dag_id/status and system/operation/outcome."""
    from jikeyun_kingdee.hooks.call_log import logged_call

    with stats_to(statsd, STATSD_INFLUXDB_ENABLED="True"):
        metrics.emit_records("jikeyun_kingdee_demo", {"fetched": 3, "created": 2, "rows": 2, "batches": 1,
                                                      "api_calls": {"BatchSave": 1}, "window": [None, None]})
        with pytest.raises(TimeoutError), logged_call(logging.getLogger("test"), "kingdee", "BatchSave", attempt=2):
            raise TimeoutError("no answer")
        metrics.emit_freshness("jikeyun_kingdee_demo", hour(1), now=hour(1) + timedelta(seconds=90))
    counters, gauges = statsd.counters(), statsd.samples("g")
    assert counters["airflow.jikeyun_kingdee.records,dag_id=jikeyun_kingdee_demo,status=created"] == 2
    assert counters["airflow.jikeyun_kingdee.records.jikeyun_kingdee_demo.fetched"] == 3
    assert not any(",status=batches" in name for name in counters)  # not a record count
    calls = "airflow.jikeyun_kingdee.api.calls,system=kingdee,operation=BatchSave,outcome=TimeoutError"
    assert counters[calls] == 1
    assert counters["airflow.jikeyun_kingdee.api.calls.kingdee.BatchSave,outcome=TimeoutError"] == 1
    assert counters["airflow.jikeyun_kingdee.api.retries,system=kingdee,operation=BatchSave"] == 1
    assert gauges["airflow.jikeyun_kingdee.freshness,dag_id=jikeyun_kingdee_demo"] == [90.0]


def test_freshness_counts_from_the_window_end_or_from_when_the_source_was_read() -> None:
    read_at = pendulum.datetime(2026, 12, 1, 8, 0, 5, tz="UTC")
    window_end = pendulum.datetime(2026, 12, 1, 8, tz="UTC")
    assert metrics.loaded_until(window_end, read_at.isoformat()) == window_end  # a scheduled run, after its window
    assert metrics.loaded_until(window_end.add(hours=1), read_at) == read_at  # a window that ends later than the read
    assert metrics.loaded_until(None, read_at.isoformat()) == read_at  # a full resync
    assert metrics.emit_freshness("d", window_end, now=window_end.add(minutes=3)) == 180.0


def test_one_table_of_metrics_with_airflow_style_names() -> None:
    for name, metric in metrics.METRICS.items():
        assert name == metric.name and name.startswith("jikeyun_kingdee.") and "{" not in name
        assert metric.legacy_name.startswith(name + ".") and set(metric.name_variables) <= set(metric.tags)
    legacy, extra = metrics.API_CALLS.legacy({"system": "jikeyun", "operation": "erp.warehouse.get", "outcome": "ok"})
    assert (legacy, extra) == ("jikeyun_kingdee.api.calls.jikeyun.erp__warehouse__get", {"outcome": "ok"})


def test_source_calls_per_beijing_day_and_quota_waits(statsd: StatsdListener) -> None:
    """A read that waited for the quota once sends its answered calls per Beijing day, and the wait."""
    summary = {"source_calls_by_day": {"2026-11-08": {"erp.storage.goodslist": 1},
                                       "2026-11-09": {"erp.storage.goodslist": 2}}, "quota_waits": 1}
    with stats_to(statsd, STATSD_INFLUXDB_ENABLED="True"):
        sent = metrics.emit_source_calls("jikeyun_kingdee_goods_I0134", summary)
        metrics.emit_records("jikeyun_kingdee_goods_I0134", {"fetched": 3, "quota_waits": 1})
    assert sent == {("2026-11-08", "erp.storage.goodslist"): 1, ("2026-11-09", "erp.storage.goodslist"): 2}
    counters = statsd.counters()
    day_calls = [name for name in counters if name.startswith("airflow.jikeyun_kingdee.source.day_calls,")]
    assert sorted(counters[name] for name in day_calls) == [1, 2]
    assert all("beijing_day=2026-11-0" in name and "dag_id=jikeyun_kingdee_goods_I0134" in name for name in day_calls)
    legacy = "airflow.jikeyun_kingdee.source.day_calls.jikeyun_kingdee_goods_I0134.erp__storage__goodslist"
    assert sum(v for name, v in counters.items() if name.startswith(legacy + ",")) == 3
    assert counters["airflow.jikeyun_kingdee.source.quota_waits,dag_id=jikeyun_kingdee_goods_I0134"] == 1
    assert not any("status=quota_waits" in name for name in counters)  # not a record count
