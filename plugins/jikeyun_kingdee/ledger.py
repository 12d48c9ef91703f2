"""The sync ledger: the source modification time applied to the target, per scheme and record key.

Loads consult it so that clearing an old run after newer runs were applied never writes an older snapshot over
newer data: a staged row older than what the ledger holds is skipped as ``stale``. It lives in a SQL database shared
by all workers: the Airflow connection ``jikeyun_kingdee_ledger`` (PostgreSQL in a deployment; conn types
``postgres`` and ``sqlite``) or, when that connection does not exist, a SQLite file in ``$AIRFLOW_HOME``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, make_url  # not at top level in SQLAlchemy 1.4 (Airflow 2)

from jikeyun_kingdee.compat import BaseHook

LEDGER_CONN_ID = "jikeyun_kingdee_ledger"

_metadata = sa.MetaData()
ledger_table = sa.Table(
    "jikeyun_kingdee_sync_ledger",
    _metadata,
    sa.Column("scheme", sa.String(200), primary_key=True),
    sa.Column("record_key", sa.String(200), primary_key=True),
    sa.Column("source_modified", sa.BigInteger, nullable=False),  # epoch milliseconds
    sa.Column("run_id", sa.String(250), nullable=False),
    sa.Column("applied_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
)


def ledger_url(conn_id: str = LEDGER_CONN_ID) -> URL:
    """SQLAlchemy URL of the ledger connection, or of the default SQLite file when the connection is absent."""
    try:
        conn = BaseHook.get_connection(conn_id)
    except Exception:  # AirflowNotFoundException, or no connection backend at all
        home = os.environ.get("AIRFLOW_HOME") or os.path.expanduser("~/airflow")
        return make_url(f"sqlite:///{os.path.join(home, 'jikeyun_kingdee_ledger.db')}")
    if conn.conn_type == "sqlite":
        return make_url(f"sqlite:///{conn.host}")
    if conn.conn_type in ("postgres", "postgresql"):
        return URL.create(
            "postgresql+psycopg2",
            username=conn.login or None,
            password=conn.password or None,
            host=conn.host or None,
            port=conn.port or None,
            database=conn.schema or None,
        )
    raise ValueError(f"connection {conn_id!r}: conn_type {conn.conn_type!r} is not supported (postgres or sqlite)")


class SyncLedger:
    """Read and advance the applied source modification times of one scheme.

    :param scheme: the scheme name; keys are scoped to it.
    :param url: a SQLAlchemy URL; default from :func:`ledger_url`.
    """

    def __init__(self, scheme: str, url: URL | str | None = None) -> None:
        self.scheme = scheme
        self.engine = sa.create_engine(url or ledger_url(), future=True, pool_pre_ping=True)
        _metadata.create_all(self.engine, checkfirst=True)

    def applied(self, keys: Iterable[str]) -> dict[str, int]:
        keys = list(keys)
        found: dict[str, int] = {}
        with self.engine.connect() as conn:
            for start in range(0, len(keys), 500):
                query = sa.select(ledger_table.c.record_key, ledger_table.c.source_modified).where(
                    ledger_table.c.scheme == self.scheme, ledger_table.c.record_key.in_(keys[start : start + 500])
                )
                found.update({key: modified for key, modified in conn.execute(query)})
        return found

    def advance(self, modified: Mapping[str, int], run_id: str) -> None:
        """Record ``key → source_modified`` unless the ledger already holds a later time for the key."""
        if not modified:
            return
        dialect = self.engine.dialect.name
        insert = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}[dialect]
        rows = [
            {"scheme": self.scheme, "record_key": key, "source_modified": int(ms), "run_id": run_id}
            for key, ms in modified.items()
        ]
        statement = insert(ledger_table)
        statement = statement.on_conflict_do_update(
            index_elements=[ledger_table.c.scheme, ledger_table.c.record_key],
            set_={
                "source_modified": statement.excluded.source_modified,
                "run_id": statement.excluded.run_id,
                "applied_at": sa.func.now(),
            },
            where=statement.excluded.source_modified >= ledger_table.c.source_modified,
        )
        with self.engine.begin() as conn:
            conn.execute(statement, rows)

    def dispose(self) -> None:
        self.engine.dispose()
