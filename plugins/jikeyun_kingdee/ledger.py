"""The sync ledger: per scheme and record key, what was last applied to the target.

For each key it keeps the source modification time applied, the Kingdee id of the record and a hash of the row and
lifecycle state last written (:func:`row_hash`). Loads consult it twice:

* a staged row older than what the ledger holds is skipped as ``stale``, so clearing an old run after newer runs were
  applied never writes an older snapshot over newer data (nor undoes a newer forbid or enable);
* a row whose hash equals the ledger's was written exactly so before and costs no API call (``unchanged``). A record
  deleted or edited by hand in Kingdee is still repaired: the next time its source changes the hash differs, and
  the load looks the record up in Kingdee as for any changed row (the reconcile's repair always looks up).

The reconcile's repair writes the source's *current* state even when its ``gmtModified`` is older than the ledger's
(a back-dated change): :meth:`SyncLedger.advance` with ``keep_later_time`` then records the repaired id and hash with
a source time one millisecond after the ledger's, so a replay of any snapshot the ledger had applied stays ``stale``.
``applied_at`` (the worker's clock, UTC) tells the repair which entries a sync applied after it read Jikeyun
(:meth:`SyncLedger.applied_since`).

It lives in a SQL database shared by all workers: the Airflow connection ``jikeyun_kingdee_ledger`` (PostgreSQL in a
deployment; conn types ``postgres`` and ``sqlite``) or, when that connection does not exist, a SQLite file in
``$AIRFLOW_HOME``.

Upgrading: the table keeps its name; a table made by an older version (without ``kingdee_id`` and ``row_hash``) gets
the two columns added on first use, so its source times — and with them the stale protection — survive. Its rows
have no hash yet, so the first load after the upgrade looks each changed-or-not row up once and records the hash.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, make_url  # not at top level in SQLAlchemy 1.4 (Airflow 2)

from jikeyun_kingdee.compat import BaseHook
from jikeyun_kingdee.items import chunked

LEDGER_CONN_ID = "jikeyun_kingdee_ledger"
KEYS_PER_QUERY = 500

_metadata = sa.MetaData()
ledger_table = sa.Table(
    "jikeyun_kingdee_sync_ledger",
    _metadata,
    sa.Column("scheme", sa.String(200), primary_key=True),
    sa.Column("record_key", sa.String(200), primary_key=True),
    sa.Column("source_modified", sa.BigInteger, nullable=False),  # epoch milliseconds
    sa.Column("run_id", sa.String(250), nullable=False),
    # set by advance() from the worker's clock (UTC, to the microsecond; SQLite's CURRENT_TIMESTAMP has seconds only)
    sa.Column("applied_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.Column("kingdee_id", sa.BigInteger, nullable=True),  # None: not in Kingdee (e.g. blocked, never created)
    sa.Column("row_hash", sa.String(64), nullable=True),  # None: written by a version without hashes
    sa.Column("state", sa.String(16), nullable=True),  # the lifecycle state written (None: not recorded)
    sa.Column("posted_row", sa.Text, nullable=True),  # documents: the row as posted (JSON), to say what changed
)
ADDED_COLUMNS = ("kingdee_id", "row_hash", "state", "posted_row")  # added to a table of an older version

# Documents waiting for base data (``target.kind: document``): the staged load item, what it lacks, since when.
waiting_table = sa.Table(
    "jikeyun_kingdee_waiting",
    _metadata,
    sa.Column("scheme", sa.String(200), primary_key=True),
    sa.Column("record_key", sa.String(200), primary_key=True),
    sa.Column("item", sa.Text, nullable=False),  # the LoadItem (JSON)
    sa.Column("lacks", sa.Text, nullable=False),  # JSON list of "FORM number" the document references
    sa.Column("since", sa.DateTime(timezone=True), nullable=False),
)
#: the row hash of a document someone else posted (the ledger never sent it): ``exists``, left alone
POSTED_ELSEWHERE = "posted elsewhere"
#: the row hash of a document being sent (written before the BatchSave): found later by its number, it is ours
SENDING = "sending"


class Applied(NamedTuple):
    """What the ledger holds for one key."""

    modified: int
    kingdee_id: int | None = None
    row_hash: str | None = None
    state: str | None = None
    posted_row: str | None = None  # JSON


class Waiting(NamedTuple):
    """A document waiting for base data."""

    item: dict[str, Any]  # the LoadItem
    lacks: list[str]  # "FORM number"
    since: datetime


def row_hash(row: Mapping[str, Any], state: str = "active") -> str:
    """SHA-256 of the target row and lifecycle state as canonical JSON (key order and spacing do not matter)."""
    text = json.dumps({"row": row, "state": state}, sort_keys=True, ensure_ascii=False, separators=(",", ":"),
                      default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


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


def _add_missing_columns(engine: sa.engine.Engine) -> None:
    """Bring a table of an older version up to date (several tasks may race here: a lost race is fine)."""
    present = {c["name"] for c in sa.inspect(engine).get_columns(ledger_table.name)}
    for name in ADDED_COLUMNS:
        if name in present:
            continue
        column = ledger_table.c[name]
        ddl = f"ALTER TABLE {ledger_table.name} ADD COLUMN {name} {column.type.compile(engine.dialect)}"
        try:
            with engine.begin() as conn:
                conn.execute(sa.text(ddl))
        except sa.exc.DBAPIError:
            if name not in {c["name"] for c in sa.inspect(engine).get_columns(ledger_table.name)}:
                raise


def _utc(moment: datetime) -> datetime:
    """A time read from the ledger, as UTC (SQLite returns it naive)."""
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment


class SyncLedger:
    """Read and advance what was applied for one scheme.

    :param scheme: the scheme name; keys are scoped to it.
    :param url: a SQLAlchemy URL; default from :func:`ledger_url`.
    """

    def __init__(self, scheme: str, url: URL | str | None = None) -> None:
        self.scheme = scheme
        self.engine = sa.create_engine(url or ledger_url(), future=True, pool_pre_ping=True)
        _metadata.create_all(self.engine, checkfirst=True)
        _add_missing_columns(self.engine)

    def entries(self, keys: Iterable[str]) -> dict[str, Applied]:
        """key → :class:`Applied` for the keys the ledger knows."""
        keys = list(keys)
        table = ledger_table.c
        found: dict[str, Applied] = {}
        with self.engine.connect() as conn:
            for start in range(0, len(keys), KEYS_PER_QUERY):
                query = sa.select(table.record_key, table.source_modified, table.kingdee_id, table.row_hash,
                                  table.state, table.posted_row).where(
                    table.scheme == self.scheme, table.record_key.in_(keys[start : start + KEYS_PER_QUERY])
                )
                found.update({key: Applied(*entry) for key, *entry in conn.execute(query)})
        return found

    def applied(self, keys: Iterable[str]) -> dict[str, int]:
        """key → source modification time applied (epoch ms), for the keys the ledger knows."""
        return {key: entry.modified for key, entry in self.entries(keys).items()}

    def count(self) -> int:
        """How many of the scheme's records the ledger knows to exist in Kingdee (an estimate of the target's size)."""
        query = sa.select(sa.func.count()).select_from(ledger_table).where(
            ledger_table.c.scheme == self.scheme, ledger_table.c.kingdee_id.is_not(None))
        with self.engine.connect() as conn:
            return int(conn.execute(query).scalar_one())

    def applied_since(self, keys: Iterable[str], moment: datetime, *, other_than: str) -> set[str]:
        """The keys among ``keys`` whose entry a run other than ``other_than`` applied at or after ``moment``."""
        keys = list(keys)
        table = ledger_table.c
        found: set[str] = set()
        with self.engine.connect() as conn:
            for start in range(0, len(keys), KEYS_PER_QUERY):
                query = sa.select(table.record_key, table.applied_at).where(
                    table.scheme == self.scheme, table.run_id != other_than,
                    table.record_key.in_(keys[start : start + KEYS_PER_QUERY]))
                # compared here, not in SQL: SQLite keeps the time as text (UTC, naive; seconds only in old rows)
                found.update(key for key, applied_at in conn.execute(query) if _utc(applied_at) >= moment)
        return found

    def advance(self, modified: Mapping[str, int | Applied], run_id: str, *, keep_later_time: bool = False) -> None:
        """Record ``key → source_modified`` (or a full :class:`Applied`) unless the ledger holds a later time.

        A bare time records no id and no hash, so the next load of that key looks it up again.

        :param keep_later_time: record the id and hash also over a later time (the reconcile's repair to the
            source's current state); the source time then becomes one millisecond after the ledger's, so a replay of
            the snapshot the ledger had applied is ``stale`` and cannot undo the repair, while any later source time
            is not.
        """
        if not modified:
            return
        dialect = self.engine.dialect.name
        now = datetime.now(timezone.utc)
        rows = []
        for key, value in modified.items():
            entry = value if isinstance(value, Applied) else Applied(int(value))
            rows.append({"scheme": self.scheme, "record_key": key, "source_modified": int(entry.modified),
                         "run_id": run_id, "applied_at": now, "kingdee_id": entry.kingdee_id,
                         "row_hash": entry.row_hash, "state": entry.state, "posted_row": entry.posted_row})
        # both dialects' INSERT … ON CONFLICT take the same arguments
        statement: postgresql.Insert | sqlite.Insert = (
            postgresql.insert(ledger_table) if dialect == "postgresql" else sqlite.insert(ledger_table))
        later = statement.excluded.source_modified >= ledger_table.c.source_modified
        statement = statement.on_conflict_do_update(
            index_elements=[ledger_table.c.scheme, ledger_table.c.record_key],
            set_={
                "source_modified": sa.case((later, statement.excluded.source_modified),
                                           else_=ledger_table.c.source_modified + 1),
                "run_id": statement.excluded.run_id,
                "applied_at": statement.excluded.applied_at,
                "kingdee_id": statement.excluded.kingdee_id,
                "row_hash": statement.excluded.row_hash,
                "state": statement.excluded.state,
                "posted_row": statement.excluded.posted_row,
            },
            where=None if keep_later_time else later,
        )
        with self.engine.begin() as conn:
            conn.execute(statement, rows)

    # -- documents waiting for base data ----------------------------------------------------------------------
    def waiting(self, keys: Iterable[str] | None = None) -> dict[str, Waiting]:
        """key → :class:`Waiting` of the scheme's waiting documents (all, or those among ``keys``)."""
        table = waiting_table.c
        query = sa.select(table.record_key, table.item, table.lacks, table.since).where(
            table.scheme == self.scheme).order_by(table.since, table.record_key)
        batches = [query] if keys is None else [
            query.where(table.record_key.in_(batch)) for batch in chunked(list(keys), KEYS_PER_QUERY)]
        with self.engine.connect() as conn:
            rows = [row for batch in batches for row in conn.execute(batch)]
        return {key: Waiting(json.loads(item), json.loads(lacks), _utc(since)) for key, item, lacks, since in rows}

    def keep_waiting(self, waiting: Mapping[str, tuple[Mapping[str, Any], list[str]]], now: datetime) -> None:
        """Record documents as waiting: key → (LoadItem, what it lacks); one already waiting keeps its ``since``.

        :param now: the run's time (the end of its window: a backfill waits in its windows' time)
        """
        if not waiting:
            return
        known = self.waiting(waiting)
        table = waiting_table.c
        with self.engine.begin() as conn:
            conn.execute(waiting_table.delete().where(table.scheme == self.scheme,
                                                      table.record_key.in_(list(waiting))))
            conn.execute(waiting_table.insert(), [
                {"scheme": self.scheme, "record_key": key, "item": json.dumps(item, ensure_ascii=False, default=str),
                 "lacks": json.dumps(lacks, ensure_ascii=False),
                 "since": known[key].since if key in known else now}
                for key, (item, lacks) in waiting.items()])

    def release(self, keys: Iterable[str]) -> None:
        """The documents among ``keys`` wait no longer (posted, found, filtered out)."""
        table = waiting_table.c
        with self.engine.begin() as conn:
            for batch in chunked(list(keys), KEYS_PER_QUERY):
                conn.execute(waiting_table.delete().where(table.scheme == self.scheme, table.record_key.in_(batch)))

    def dispose(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> SyncLedger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.dispose()
