"""Assets (Airflow 2: datasets) and lineage of a scheme: what a sync reads and what it writes.

* The source is the inlet ``jikeyun://<source.connection>/<method>``, e.g. ``jikeyun://jikeyun_default/erp.warehouse.get``.
* The target is the outlet ``kingdee://<target.connection>/<form>/<organisation>``, e.g.
  ``kingdee://kingdee_default/BD_STOCK/I0134``. The connection id stands for the Kingdee data centre: a Kingdee
  connection is one data centre (its ``acct_id`` extra), and the URI has to be known when the DAG file is parsed,
  where connections are not read (no database or network at parse time).

The ``report`` task carries the outlet, so one asset event per successful run is recorded, with the run's counts as
its extra (:func:`event_extra`); a run that fails (rejected records, a failed load) records none. DAGs scheduled on
the outlet run after each successful sync.

The package registers both URI schemes with Airflow (``asset-uris`` / ``dataset-uris`` of its provider info):
:func:`normalize_uri` checks their shape and :func:`to_openlineage` turns them into OpenLineage datasets, so where the
OpenLineage provider is installed the tasks' inlets and outlets become the inputs and outputs of its events
(namespace ``kingdee://kingdee_default``, name ``BD_STOCK/I0134``). Nothing here needs that provider.
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib import import_module
from typing import TYPE_CHECKING, Any
from urllib.parse import SplitResult, quote, urlsplit

from jikeyun_kingdee.compat import Asset
from jikeyun_kingdee.metrics import record_counts

if TYPE_CHECKING:
    from jikeyun_kingdee.scheme import Scheme

# Path segments after the connection: jikeyun://<connection>/<method>, kingdee://<connection>/<form>/<organisation>
URI_SEGMENTS = {"jikeyun": ("method",), "kingdee": ("form", "organisation")}


def _segment(value: str) -> str:
    return quote(value, safe="")


def source_asset(scheme: Scheme) -> Any:
    """The inlet (an ``Asset``, Airflow 2: ``Dataset``): the Jikeyun API method the scheme reads, through its
    connection."""
    source = scheme.source
    return Asset(uri=f"jikeyun://{_segment(source.connection)}/{_segment(source.method)}")


def target_asset(scheme: Scheme) -> Any:
    """The outlet (an ``Asset``, Airflow 2: ``Dataset``): the Kingdee form and organisation the scheme writes, in
    the data centre of its connection."""
    target = scheme.target
    return Asset(uri=f"kingdee://{_segment(target.connection)}/{_segment(target.form_id)}/{_segment(target.organisation)}")


def event_extra(summary: Mapping[str, Any]) -> dict[str, Any]:
    """The extra of the asset event of a successful run: its window, record counts and API calls."""
    return {
        "window": summary.get("window"),
        "counts": record_counts(summary),
        "api_calls": dict(summary.get("api_calls") or {}),
    }


def normalize_uri(parts: SplitResult) -> SplitResult:
    """Airflow's URI handler for ``jikeyun://`` and ``kingdee://``: checks the connection and path segments.

    :raises ValueError: naming the URI and what is missing.
    """
    expected = URI_SEGMENTS[parts.scheme]
    segments = [s for s in parts.path.split("/") if s]
    if not parts.netloc or len(segments) != len(expected):
        shape = "/".join(f"<{name}>" for name in ("connection", *expected))
        raise ValueError(f"{parts.geturl()!r} is not a {parts.scheme}://{shape} URI")
    return parts


def to_openlineage(asset: Any, lineage_context: Any = None) -> Any:
    """OpenLineage dataset of an asset: namespace ``<scheme>://<connection>``, name the rest of the path.

    Called by the OpenLineage provider (imported only then).
    """
    dataset = import_module("openlineage.client.event_v2").Dataset  # an optional dependency
    parts = urlsplit(asset.uri)
    return dataset(namespace=f"{parts.scheme}://{parts.netloc}", name=parts.path.lstrip("/"))
