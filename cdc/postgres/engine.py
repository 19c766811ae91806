"""PostgreSQL as one side of a pipeline (`cdc.engine.Engine`), made for a
source or a target section of the settings; each job is in the module named
after it (catalog, inspect, ddl, assess, fence, counters, marker, reverse,
target_checks, target_catalog, verify_sql)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import psycopg
import psycopg.errors

from cdc.ddl.model import Notes, Statement, TableDef
from cdc.engine.assessment import Assessment, TableFacts
from cdc.engine.cutover import CounterSync, FenceResult, Partition, SourceLag, TableName
from cdc.engine.schema import TargetCatalog, TargetDdl
from cdc.engine.session import Session
from cdc.postgres import assess, counters, ddl, fence, inspect, marker, reverse, target_checks
from cdc.postgres.catalog import select_tables, table_names
from cdc.postgres.sessions import PgSession, connect
from cdc.postgres.target_catalog import PgCatalog
from cdc.postgres.types import TypeRegistry
from cdc.postgres.verify_sql import PgVerify
from cdc.settings import PostgresSource, PostgresTarget
from cdc.settings_kafka import KafkaSettings
from cdc.source_offsets import OffsetStore
from cdc.target_offsets import read_offsets

_OWN_TABLES = {
    "cdc_cutover": """
CREATE TABLE IF NOT EXISTS public.cdc_cutover (
    pipeline text NOT NULL,
    step text NOT NULL,
    at timestamptz NOT NULL,
    detail text NOT NULL DEFAULT '',
    PRIMARY KEY (pipeline, step)
)
""",
    "cdc_verify_runs": """
CREATE TABLE IF NOT EXISTS public.cdc_verify_runs (
    pipeline text NOT NULL,
    finished_at timestamptz NOT NULL,
    equal boolean NOT NULL,
    report jsonb NOT NULL
)
""",
}


class _Ddl:
    def render(self, table: TableDef, name: TableName, notes: Notes) -> list[Statement]:
        return ddl.render(table, name, notes)


class _SlotPublished:
    """What the slot's reader confirmed, read on a new session at each call."""

    def __init__(self, engine: PostgresEngine, slot: str) -> None:
        self._engine = engine
        self._slot = slot

    def __call__(self) -> marker.LsnMarker | None:
        with self._engine.conn() as conn:
            return marker.confirmed(conn, self._slot)

    def close(self) -> None:
        pass


class PostgresEngine:
    name = ddl.ENGINE
    errors: tuple[type[Exception], ...] = (psycopg.Error,)
    missing_table: tuple[type[Exception], ...] = (psycopg.errors.UndefinedTable,)

    def __init__(self, endpoint: PostgresSource | PostgresTarget) -> None:
        self._endpoint = endpoint
        self.verify = PgVerify(endpoint.dsn)

    @property
    def _source(self) -> PostgresSource:
        assert isinstance(self._endpoint, PostgresSource), "made for a source section"
        return self._endpoint

    @property
    def _target(self) -> PostgresTarget:
        assert isinstance(self._endpoint, PostgresTarget), "made for a target section"
        return self._endpoint

    def conn(self) -> psycopg.Connection[Any]:
        """A psycopg connection of cdc's own (see `connect`)."""
        return connect(self._endpoint.dsn)

    # -- sessions and names

    def footprint(self) -> tuple[str, frozenset[str]]:
        with self.conn() as conn:
            row = conn.execute(
                "SELECT pg_postmaster_start_time()::text, current_setting('port'),"
                " current_database()"
            ).fetchone()
        assert row is not None
        started, port, database = row
        return f"postgres started {started} on port {port}", frozenset({database})

    def connect(self) -> Session:
        return PgSession(self.conn())

    def quote(self, name: str) -> str:
        return ddl.ident(name)

    def target_table(self, schema: str, table: str) -> TableName:
        return schema, table

    def check_takes_back(self, tables: Sequence[TableName]) -> None:
        pass  # every table keeps its schema

    # -- a source's catalog

    def tables(self) -> list[TableName]:
        with self.conn() as conn:
            return [(t.schema, t.name) for t in select_tables(conn, self._source.selects)]

    def table_names(self) -> list[TableName]:
        with self.conn() as conn:
            return table_names(conn)

    def table_defs(self) -> list[TableDef]:
        with self.conn() as conn:
            registry = TypeRegistry(conn)
            return [
                inspect.table_def(conn, registry, table)
                for table in select_tables(conn, self._source.selects)
            ]

    # -- a target's schema

    def ddl(self, *, offline: bool = False) -> TargetDdl:
        return _Ddl()  # the same on every server

    @contextmanager
    def catalog(self) -> Iterator[TargetCatalog]:
        with self.conn() as conn:
            yield PgCatalog(conn)

    # -- cdc's own tables on a target

    def own_table(self, name: str) -> str:
        return f"public.{name}"

    def own_table_ddl(self, name: str) -> str:
        return _OWN_TABLES[name]

    def upsert(self, key: Sequence[str], columns: Sequence[str]) -> str:
        updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in columns)
        return f" ON CONFLICT ({', '.join(key)}) DO UPDATE SET {updates}"

    def timestamp(self, at: datetime) -> Any:
        return at

    def applied_offsets(self, group: str) -> dict[Partition, int]:
        try:
            with self.conn() as conn, conn.cursor() as cur:
                return read_offsets(cur, self.own_table("cdc_offsets"), group)
        except self.missing_table:
            return {}  # no sink has run yet

    # -- the cut-over

    def fence(self, terminate_sessions: bool) -> FenceResult:
        with self.conn() as conn:
            return fence.fence(conn, terminate_sessions)

    def unfence(self) -> str:
        with self.conn() as conn:
            return fence.unfence(conn)

    def is_fenced(self) -> bool:
        with self.conn() as conn:
            return fence.is_fenced(conn)

    def next_value(self, schema: str, table: str, column: str) -> int:
        with self.conn() as conn:
            return counters.next_value(conn, schema, table, column)

    def raise_counters(
        self,
        tables: Mapping[TableName, TableName],
        source_next: Callable[[TableName, str], int],
    ) -> list[CounterSync]:
        with self.conn() as conn:
            return counters.raise_counters(conn, tables, source_next)

    def mark(self, pipeline: str) -> marker.LsnMarker:
        with self.conn() as conn:
            return marker.mark(conn, pipeline)

    def published(self, kafka: KafkaSettings) -> _SlotPublished:
        return _SlotPublished(self, self._source.slot_name)

    def lag(self, kafka: KafkaSettings, pipeline: str) -> SourceLag:
        with self.conn() as conn:
            return marker.lag(conn, self._source.slot_name)

    def start_reverse(self, store: OffsetStore) -> str:
        with self.conn() as conn:
            return reverse.start(conn, self._source, store)

    def retire_reverse(self, pipeline: str, path: str) -> tuple[bool, str]:
        with self.conn() as conn:
            return reverse.retire(conn, self._source, pipeline, path)

    # -- `cdc assess`

    def assess_source(self, report: Assessment) -> list[tuple[TableDef, TableFacts]]:
        source = self._source
        found = []
        with self.conn() as conn:
            assess.check_server(conn, source, report)
            tables = select_tables(conn, source.selects)
            registry = TypeRegistry(conn)
            for table in tables:
                definition = inspect.table_def(conn, registry, table)
                found.append((definition, assess.table_facts(conn, table, definition, report)))
            if tables:
                assess.check_publication(conn, source, tables, report)
        return found

    def assess_target(
        self, tables: Sequence[tuple[TableDef, TableName]], source_bytes: int, report: Assessment
    ) -> None:
        with self.conn() as conn:
            target_checks.check_target(conn, self._target, tables, source_bytes, report)
