"""MySQL/MariaDB as one side of a pipeline (`cdc.engine.Engine`), made for a
source or a target section of the settings; each job is in the module named
after it (catalog, inspect, ddl, assess, fence, counters, marker, reverse,
target_checks, target_catalog, verify_sql)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import pymysql

from cdc.ddl.model import Notes, Statement, TableDef
from cdc.engine.assessment import Assessment, TableFacts
from cdc.engine.cutover import CounterSync, FenceResult, Partition, SourceLag, TableName
from cdc.engine.schema import TargetCatalog, TargetDdl
from cdc.engine.session import Session
from cdc.errors import TerminalError
from cdc.mysql import assess, counters, ddl, fence, inspect, marker, reverse, target_checks
from cdc.mysql.catalog import select_tables, table_names
from cdc.mysql.collation import key_collation
from cdc.mysql.dialect import quote
from cdc.mysql.lock import lock_name
from cdc.mysql.sessions import MysqlSession, connect
from cdc.mysql.setup import is_mariadb
from cdc.mysql.target_catalog import MysqlCatalog
from cdc.mysql.verify_sql import MysqlVerify
from cdc.settings import MysqlSource, MysqlTarget
from cdc.settings_kafka import KafkaSettings
from cdc.source_offsets import OffsetStore
from cdc.target_offsets import read_offsets

_OWN_TABLES = {
    "cdc_cutover": """
CREATE TABLE IF NOT EXISTS cdc_cutover (
    pipeline VARCHAR(64) NOT NULL,
    step VARCHAR(64) NOT NULL,
    at DATETIME(6) NOT NULL,
    detail TEXT NOT NULL,
    PRIMARY KEY (pipeline, step)
)
""",
    "cdc_verify_runs": """
CREATE TABLE IF NOT EXISTS cdc_verify_runs (
    pipeline VARCHAR(63) NOT NULL,
    finished_at DATETIME(6) NOT NULL,
    `equal` BOOLEAN NOT NULL,
    report JSON NOT NULL,
    KEY (pipeline, finished_at)
)
""",
}


class _Ddl:
    def __init__(self, key_collation: str) -> None:
        self._key_collation = key_collation

    def render(self, table: TableDef, name: TableName, notes: Notes) -> list[Statement]:
        return ddl.render(table, name, self._key_collation, notes)


class MysqlEngine:
    name = ddl.ENGINE
    errors: tuple[type[Exception], ...] = (pymysql.err.Error,)
    missing_table: tuple[type[Exception], ...] = (pymysql.err.ProgrammingError,)

    def __init__(self, endpoint: MysqlSource | MysqlTarget) -> None:
        self._endpoint = endpoint
        self.verify = MysqlVerify(endpoint.dsn)

    @property
    def database(self) -> str | None:
        """The database the DSN names (None: none)."""
        found: str | None = self._endpoint.dsn.connect_kwargs()["database"]
        return found

    @property
    def _source(self) -> MysqlSource:
        assert isinstance(self._endpoint, MysqlSource), "made for a source section"
        return self._endpoint

    @property
    def _target(self) -> MysqlTarget:
        assert isinstance(self._endpoint, MysqlTarget), "made for a target section"
        return self._endpoint

    def conn(self) -> pymysql.Connection[Any]:
        """A PyMySQL connection of cdc's own whose cursors give dicts."""
        return connect(self._endpoint.dsn)

    # -- sessions and names

    def footprint(self) -> tuple[str, frozenset[str]]:
        with self.conn() as conn, conn.cursor() as cur:
            cur.execute("SELECT @@hostname AS h, @@port AS p, @@datadir AS d")
            server = cur.fetchone()
        assert server is not None
        # a source reads the databases of its tables, a target writes its DSN's
        if isinstance(self._endpoint, MysqlSource):
            databases = {schema for schema, _ in self.tables()}
        else:
            databases = {self.database or ""}
        return f"mysql {server['h']}:{server['p']} {server['d']}", frozenset(databases)

    def connect(self) -> Session:
        return MysqlSession(self.conn())

    def quote(self, name: str) -> str:
        return quote(name)

    def target_table(self, schema: str, table: str) -> TableName:
        return self.database or "", table

    def check_takes_back(self, tables: Sequence[TableName]) -> None:
        database = self.database
        elsewhere = sorted({schema for schema, _ in tables} - {database})
        if database is None or elsewhere:
            raise TerminalError(
                "the reverse pipeline writes into the database source.dsn names, but"
                + (" it names none" if database is None else f" tables live in {elsewhere}"),
                "end source.dsn with /<database> holding every replicated table",
            )

    # -- a source's catalog

    def tables(self) -> list[TableName]:
        with self.conn() as conn, conn.cursor() as cur:
            return [(t.schema, t.name) for t in select_tables(cur, self._source.selects)]

    def table_names(self) -> list[TableName]:
        with self.conn() as conn, conn.cursor() as cur:
            return table_names(cur)

    def table_defs(self) -> list[TableDef]:
        with self.conn() as conn, conn.cursor() as cur:
            mariadb = is_mariadb(cur)
            return [
                inspect.table_def(cur, table, mariadb)
                for table in select_tables(cur, self._source.selects)
            ]

    # -- a target's schema

    def ddl(self, *, offline: bool = False) -> TargetDdl:
        if offline:
            return _Ddl("")  # the column's collation is left to the server's default
        with self.conn() as conn, conn.cursor() as cur:
            cur.execute("SELECT VERSION() AS v")
            return _Ddl(key_collation(str(cur.fetchone()["v"])))

    @contextmanager
    def catalog(self) -> Iterator[TargetCatalog]:
        with self.conn() as conn:
            yield MysqlCatalog(conn)

    # -- cdc's own tables on a target

    def own_table(self, name: str) -> str:
        return name  # in the DSN's database, beside cdc_offsets

    def own_table_ddl(self, name: str) -> str:
        return _OWN_TABLES[name]

    def upsert(self, key: Sequence[str], columns: Sequence[str]) -> str:
        updates = ", ".join(f"{c} = VALUES({c})" for c in columns)
        return f" ON DUPLICATE KEY UPDATE {updates}"

    def timestamp(self, at: datetime) -> Any:
        return at.astimezone(UTC).replace(tzinfo=None)  # DATETIME: UTC, naive

    def applied_offsets(self, group: str) -> dict[Partition, int]:
        try:
            with self.conn() as conn, conn.cursor() as cur:
                return read_offsets(cur, self.own_table("cdc_offsets"), group)
        except self.missing_table:
            return {}  # no sink has run yet

    # -- the cut-over

    def fence(self, terminate_sessions: bool) -> FenceResult:
        with self.conn() as conn, conn.cursor() as cur:
            fence.fence(cur)
        return FenceResult(f"server {self._endpoint.dsn.masked()}", 0)

    def unfence(self) -> str:
        with self.conn() as conn, conn.cursor() as cur:
            fence.unfence(cur)
        return f"server {self._endpoint.dsn.masked()}"

    def is_fenced(self) -> bool:
        with self.conn() as conn, conn.cursor() as cur:
            return fence.is_fenced(cur)

    def next_value(self, schema: str, table: str, column: str) -> int:
        with self.conn() as conn, conn.cursor() as cur:
            return counters.next_value(cur, schema, table)

    def raise_counters(
        self,
        tables: Mapping[TableName, TableName],
        source_next: Callable[[TableName, str], int],
    ) -> list[CounterSync]:
        with self.conn() as conn, conn.cursor() as cur:
            return counters.raise_counters(cur, tables, source_next)

    def mark(self, pipeline: str) -> marker.BinlogMarker:
        with self.conn() as conn, conn.cursor() as cur:
            return marker.mark(cur)

    def published(self, kafka: KafkaSettings) -> marker.StoredPosition:
        return marker.StoredPosition(kafka)

    def lag(self, kafka: KafkaSettings, pipeline: str) -> SourceLag:
        read = marker.StoredPosition(kafka)
        try:
            stored = read()
        finally:
            read.close()
        with self.conn() as conn, conn.cursor() as cur:
            # a running source holds the pipeline's lock (cdc.mysql.lock): a stored
            # position alone says nothing about a source killed since
            cur.execute("SELECT IS_USED_LOCK(%s) AS holder", (lock_name(pipeline),))
            row = cur.fetchone()
            running = bool(row and row["holder"])
            if stored is None:
                return SourceLag(running, None, None, None)
            return marker.lag(cur, stored, running)

    def start_reverse(self, store: OffsetStore) -> str:
        found = reverse.stored_start(store)
        if found is not None:
            return found
        with self.conn() as conn, conn.cursor() as cur:
            return reverse.start(cur, store)

    def retire_reverse(self, pipeline: str, path: str) -> tuple[bool, str]:
        return True, (
            f"nothing of the reverse pipeline {pipeline} holds the target's binlogs:"
            f" stop it (cdc run -c {path})"
        )

    # -- `cdc assess`

    def assess_source(self, report: Assessment) -> list[tuple[TableDef, TableFacts]]:
        source = self._source
        with self.conn() as conn:
            with conn.cursor() as cur:
                assess.check_server(cur, source, report)
                mariadb = is_mariadb(cur)
                tables = select_tables(cur, source.selects)
                definitions = [inspect.table_def(cur, t, mariadb) for t in tables]
            return [
                (definition, assess.table_facts(conn, table, definition, report))
                for table, definition in zip(tables, definitions, strict=True)
            ]

    def assess_target(
        self, tables: Sequence[tuple[TableDef, TableName]], source_bytes: int, report: Assessment
    ) -> None:
        with self.conn() as conn:
            target_checks.check_target(conn, self._target, tables, source_bytes, report)
