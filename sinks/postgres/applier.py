"""Applies batches to a PostgreSQL target in one transaction each.

Bulk path: every table's net changes are COPYed into a temporary staging
table, then applied with one `DELETE ... USING`, one
`INSERT ... ON CONFLICT DO UPDATE` and, for rows whose unchanged TOAST
columns were left out, one `UPDATE ... FROM` per column set. The Kafka
positions go to `cdc_offsets` in the same transaction, so a batch is applied
exactly once however the process dies.

The session runs with `session_replication_role = replica`: foreign keys and
user triggers do not fire, because tables of one source transaction may
arrive in a different order. It also turns `default_transaction_read_only`
off, so that a database fenced by `cdc cutover` (which sets it on for new
sessions) still takes the reverse stream. Each transaction is marked as
applied by cdc (`cdc.applied_marks`), so a source reading this database skips it.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any

import psycopg
from cdc_copytext import BINARY_HEADER, BINARY_TRAILER, RowEncoder
from psycopg import sql

from cdc.applied_marks import PG_APPLICATION_NAME, PG_APPLIED_PREFIX, PG_READ_WRITE_OPTION
from cdc.applier import ApplyResult
from cdc.changes import KeyState, KeyValues, TableBatch
from cdc.ddl.model import TABLES, Notes, TableDef
from cdc.errors import TerminalError
from cdc.events import Op
from cdc.postgres import ddl as ddl_postgres
from cdc.postgres.target_types import TextEncoder, binary_kind, encoder_kind, pg_type, text_encoder
from cdc.schemas import TableSchema
from sinks.inserts import InsertBatch, Offsets
from sinks.plan import LAST_WRITER_WINS, newer_keys, plan_table, row_key
from sinks.postgres.copy_progress import PgCopyProgress
from sinks.postgres.copy_text import LineBuilder

SESSION_OPTIONS = (
    "-c session_replication_role=replica -c TimeZone=UTC -c datestyle=ISO" + PG_READ_WRITE_OPTION
)
OFFSETS_DDL = """
CREATE TABLE IF NOT EXISTS public.cdc_offsets (
    consumer_group text NOT NULL,
    topic text NOT NULL,
    kafka_partition integer NOT NULL,
    next_offset bigint NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer_group, topic, kafka_partition)
)
"""
VERSIONS_DDL = """
CREATE TABLE IF NOT EXISTS public.cdc_row_versions (
    table_name text NOT NULL,
    row_key text NOT NULL,
    ts_ms bigint NOT NULL,
    kafka_partition integer NOT NULL,
    kafka_offset bigint NOT NULL,
    PRIMARY KEY (table_name, row_key)
)
"""
# Sink processes of one pipeline (sink.workers, replicas) start together and may
# create the same tables at once; CREATE ... IF NOT EXISTS is no guard against
# that (a unique violation in the catalog), this transaction lock is.
DDL_LOCK = "SELECT pg_advisory_xact_lock(hashtext('cdc_sink_ddl'))"
DELETE, UPSERT, PARTIAL = 0, 1, 2  # cdc_kind of a staged row; PARTIAL + n: column set n
COPY_CHUNK_ROWS = 2000  # rows per COPY write: the server parses one chunk while we build the next
# After a direct COPY met an existing key, a table's insert batches take the
# staged path this many times before trying again (a replay re-inserts rows
# that exist: every try would be wasted work).
DIRECT_COPY_BACKOFF = 100
_NEW_ROW_OPS = (Op.CREATE, Op.READ)


class _NotDirectError(Exception):
    """An insert batch the direct path cannot take: roll it back."""


@dataclass
class TargetTable:
    schema: str
    name: str
    types: dict[str, str]  # column -> format_type()
    key: tuple[str, ...]
    stage: str
    encoders: dict[str, TextEncoder]
    lines: LineBuilder
    # insert events in wire form -> COPY data: binary where every column's type
    # has a binary encoder (the server parses no text then), else text
    row_encoder: RowEncoder
    direct_copy_wait: int = 0  # insert batches to stage before trying a direct COPY again

    @property
    def ident(self) -> sql.Composable:
        return sql.Identifier(self.schema, self.name)

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"


class PostgresApplier:
    def __init__(
        self,
        dsn: str,
        group: str,
        policy_for: Callable[[str, str], str],
        create_tables: bool,
    ) -> None:
        self._conn = psycopg.connect(
            dsn, options=SESSION_OPTIONS, application_name=PG_APPLICATION_NAME
        )
        self._group = group
        self._policy_for = policy_for
        self._create_tables = create_tables
        self._tables: dict[tuple[str, str], TargetTable] = {}
        self._stages = itertools.count()
        with self._conn.transaction():
            self._conn.execute(DDL_LOCK)
            self._conn.execute(OFFSETS_DDL)
            self._conn.execute(VERSIONS_DDL)

    def committed_offsets(self, topics: Sequence[str]) -> dict[tuple[str, int], int]:
        """The next offset to read per (topic, partition), as last committed here."""
        with self._conn.transaction():
            rows = self._conn.execute(
                "SELECT topic, kafka_partition, next_offset FROM public.cdc_offsets"
                " WHERE consumer_group = %s AND topic = ANY(%s)",
                (self._group, list(topics)),
            ).fetchall()
        return {(topic, partition): offset for topic, partition, offset in rows}

    def apply(
        self,
        steps: Sequence[Sequence[TableBatch]],
        offsets: dict[tuple[str, int], int],
        before_commit: Callable[[ApplyResult], None] | None = None,
    ) -> ApplyResult:
        """Apply every step and record `offsets` (next offset per partition)
        atomically; `before_commit` runs last inside the transaction (dead
        letters must be durable before the offsets that pass them)."""
        result = ApplyResult()
        with self._batch(offsets):
            for step in steps:
                for batch in step:
                    self._apply_table(batch, result)
            if before_commit is not None:
                before_commit(result)
        return result

    def insert(self, batches: Sequence[InsertBatch], offsets: Offsets) -> ApplyResult | None:
        """New rows COPYed straight into their tables (see `sinks.inserts`);
        None, with nothing applied, when a message is more than a new row, a
        key exists already, a value is refused, or a table is under
        last-writer-wins (which records versions)."""
        result = ApplyResult()
        try:
            with self._batch(offsets):
                for batch in batches:
                    schema = batch.schema
                    table = self._table(batch.target, schema)
                    if (
                        self._policy_for(schema.schema, schema.table) == LAST_WRITER_WINS
                        or table.direct_copy_wait > 0  # the planned path counts it down
                    ):
                        raise _NotDirectError
                    newest = self._copy_messages(table, batch.values)
                    result.rows[(table.qualified, "c")] += len(batch.values)
                    result.last_ts_ms = max(result.last_ts_ms, newest)
        except (_NotDirectError, psycopg.DataError, psycopg.IntegrityError):
            return None
        return result

    def _copy_messages(self, table: TargetTable, values: list[bytes]) -> int:
        """COPY the `after` rows of insert events in wire form; the newest
        source commit time among them. Raises _NotDirectError when one is
        more than a new row or holds a value the native encoder leaves to the
        planned path, or when a key exists already."""
        newest = 0
        binary = table.row_encoder.binary

        def write(copy: psycopg.Copy) -> None:
            nonlocal newest
            if binary:
                copy.write(BINARY_HEADER)
            for start in range(0, len(values), COPY_CHUNK_ROWS):
                encoded = table.row_encoder.encode(values[start : start + COPY_CHUNK_ROWS])
                if encoded is None:
                    raise _NotDirectError
                copy.write(encoded[0])
                newest = max(newest, encoded[1])
            if binary:
                copy.write(BINARY_TRAILER)

        if not self._copy_rows(table, write, savepoint=False, binary=binary):
            raise _NotDirectError  # the batch's transaction rolls back
        return newest

    @contextmanager
    def _batch(self, offsets: Offsets) -> Iterator[None]:
        """One transaction: marked as cdc's, the batch's rows, its offsets."""
        known = dict(self._tables)
        try:
            with self._conn.transaction():
                # first in the transaction: a source decoding it drops it before any row
                self._conn.execute(
                    "SELECT pg_logical_emit_message(true, %s, %s)",
                    (PG_APPLIED_PREFIX, self._group),
                )
                yield
                with self._conn.cursor() as cur:
                    cur.executemany(
                        "INSERT INTO public.cdc_offsets"
                        " (consumer_group, topic, kafka_partition, next_offset)"
                        " VALUES (%s, %s, %s, %s)"
                        " ON CONFLICT (consumer_group, topic, kafka_partition)"
                        " DO UPDATE SET next_offset = EXCLUDED.next_offset, updated_at = now()",
                        [(self._group, t, p, o) for (t, p), o in offsets.items()],
                    )
        except BaseException:
            # A rollback drops the staging tables (and target tables or columns)
            # created in the transaction: forget them, or the next batch would
            # COPY into a staging table that no longer exists.
            self._tables = known
            raise

    # -- one table --------------------------------------------------------
    def _apply_table(self, batch: TableBatch, result: ApplyResult) -> None:
        some_state = next(iter(batch.keys.values()), None)
        table = self._table(batch.target, some_state.schema if some_state else None)
        if batch.truncate:
            self._conn.execute(sql.SQL("TRUNCATE {}").format(table.ident))
            result.rows[(table.qualified, "t")] += 1
        if not batch.keys:
            return
        policy = self._policy_for(some_state.schema.schema, some_state.schema.table)  # type: ignore[union-attr]
        keys = list(batch.keys.items())
        if policy != LAST_WRITER_WINS and self._copy_new_rows(table, keys, result):
            return
        existing = self._existing(table, [k for k, _ in keys])
        newer = self._newer_versions(table, keys) if policy == LAST_WRITER_WINS else set()
        plan = plan_table(keys, existing, newer, policy, table.qualified, result)
        self._stage_and_apply(table, plan.deletes, plan.upserts, plan.partial)
        if policy == LAST_WRITER_WINS:
            self._record_versions(table, plan.applied)

    def _copy_new_rows(
        self, table: TargetTable, keys: list[tuple[KeyValues, KeyState]], result: ApplyResult
    ) -> bool:
        """Insert-only batches (a snapshot, an append-only table) COPY straight
        into the target, skipping the existence query, the staging table and
        the upsert. Under a savepoint: a key that exists after all raises a
        unique violation, which undoes just this COPY, and the batch takes the
        staged path, where conflicts are resolved by the policy. Success means
        no key existed, so no conflict was missed."""
        rows = [
            s.row
            for _, s in keys
            if s.complete and s.first_op in _NEW_ROW_OPS and s.row is not None
        ]
        if len(rows) < len(keys) or not self._copy_rows(
            table, lambda copy: self._write_lines(copy, table.lines, rows, "")
        ):
            return False
        result.rows[(table.qualified, "c")] += len(keys)
        result.last_ts_ms = max(result.last_ts_ms, *(s.ts_ms for _, s in keys))
        return True

    def _copy_rows(
        self,
        table: TargetTable,
        write: Callable[[psycopg.Copy], None],
        *,
        savepoint: bool = True,
        binary: bool = False,
    ) -> bool:
        """COPY into the table what `write` writes; False when a key exists
        already (and the next insert batches of the table take the staged
        path for a while). Under a savepoint nothing is then written and the
        transaction goes on; without one (for a caller that then abandons the
        whole transaction: a savepoint per batch costs the server a
        subtransaction) the transaction is left failed."""
        if table.direct_copy_wait > 0:
            table.direct_copy_wait -= 1
            return False
        columns = sql.SQL(", ").join(sql.Identifier(c) for c in table.types)
        copy_sql = sql.SQL("COPY {} ({}) FROM STDIN{}").format(
            table.ident, columns, sql.SQL(" (FORMAT binary)" if binary else "")
        )
        try:
            with (
                self._conn.transaction() if savepoint else nullcontext(),
                self._conn.cursor() as cur,
                cur.copy(copy_sql) as copy,
            ):
                write(copy)
        except psycopg.errors.UniqueViolation:
            table.direct_copy_wait = DIRECT_COPY_BACKOFF
            return False
        return True

    @staticmethod
    def _write_lines(
        copy: psycopg.Copy, lines: LineBuilder, rows: list[dict[str, Any]], suffix: str
    ) -> None:
        """COPY `rows` in chunks, so the server works on one while we build the next."""
        for start in range(0, len(rows), COPY_CHUNK_ROWS):
            copy.write(lines.text(rows[start : start + COPY_CHUNK_ROWS], suffix))

    def _existing(self, table: TargetTable, keys: list[KeyValues]) -> set[KeyValues]:
        """Which keys have a target row (one query for the whole batch)."""
        encoded = [
            [table.encoders[name](key[i]) for key in keys] for i, name in enumerate(table.key)
        ]
        arrays = sql.SQL(", ").join(sql.SQL("%s::text[]") for _ in table.key)
        names = [sql.Identifier(f"k{i}") for i in range(len(table.key))]
        match = sql.SQL(" AND ").join(
            sql.SQL("t.{} = k.{}::{}").format(
                sql.Identifier(col), names[i], sql.SQL(table.types[col])
            )
            for i, col in enumerate(table.key)
        )
        query = sql.SQL(
            "SELECT k.n FROM unnest({}) WITH ORDINALITY AS k({}, n)"
            " WHERE EXISTS (SELECT 1 FROM {} t WHERE {})"
        ).format(arrays, sql.SQL(", ").join(names), table.ident, match)
        rows = self._conn.execute(query, encoded).fetchall()
        return {keys[n - 1] for (n,) in rows}

    def _stage_and_apply(
        self,
        table: TargetTable,
        deletes: list[KeyValues],
        upserts: list[dict[str, Any]],
        partial: dict[tuple[str, ...], list[dict[str, Any]]],
    ) -> None:
        columns = list(table.types)
        stage = sql.Identifier(table.stage)
        staged = sql.SQL(", ").join(sql.Identifier(c) for c in [*columns, "cdc_kind"])
        key_index = [columns.index(k) for k in table.key]
        with self._conn.cursor() as cur:
            with cur.copy(sql.SQL("COPY {} ({}) FROM STDIN").format(stage, staged)) as copy:
                suffix = f"\t{DELETE}"
                copy.write("".join(table.lines.key_line(key_index, k, suffix) for k in deletes))
                sets = [(UPSERT, rows) for rows in [upserts] if rows]
                sets += [(PARTIAL + n, rows) for n, rows in enumerate(partial.values())]
                for kind, rows in sets:
                    self._write_lines(copy, table.lines, rows, f"\t{kind}")
            on_key = sql.SQL(" AND ").join(
                sql.SQL("t.{0} = s.{0}").format(sql.Identifier(k)) for k in table.key
            )
            if deletes:
                cur.execute(
                    sql.SQL("DELETE FROM {} t USING {} s WHERE s.cdc_kind = {} AND {}").format(
                        table.ident, stage, sql.Literal(DELETE), on_key
                    )
                )
            if upserts:
                self._upsert(cur, table, columns)
            for n, column_set in enumerate(partial):
                assignments = sql.SQL(", ").join(
                    sql.SQL("{0} = s.{0}").format(sql.Identifier(c))
                    for c in column_set
                    if c not in table.key
                )
                cur.execute(
                    sql.SQL("UPDATE {} t SET {} FROM {} s WHERE s.cdc_kind = {} AND {}").format(
                        table.ident, assignments, stage, sql.Literal(PARTIAL + n), on_key
                    )
                )

    def _upsert(self, cur: psycopg.Cursor[Any], table: TargetTable, columns: list[str]) -> None:
        names = sql.SQL(", ").join(sql.Identifier(c) for c in columns)
        others = [c for c in columns if c not in table.key]
        action = (
            sql.SQL("DO UPDATE SET ")
            + sql.SQL(", ").join(
                sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(c)) for c in others
            )
            if others
            else sql.SQL("DO NOTHING")
        )
        cur.execute(
            sql.SQL(
                "INSERT INTO {} ({}) SELECT {} FROM {} WHERE cdc_kind = {} ON CONFLICT ({}) {}"
            ).format(
                table.ident,
                names,
                names,
                sql.Identifier(table.stage),
                sql.Literal(UPSERT),
                sql.SQL(", ").join(sql.Identifier(k) for k in table.key),
                action,
            )
        )

    # -- last-writer-wins versions ----------------------------------------
    def _newer_versions(
        self, table: TargetTable, keys: list[tuple[KeyValues, KeyState]]
    ) -> set[KeyValues]:
        """Keys whose stored version is at least as new as this batch's change."""
        by_text = {row_key(key): (key, state) for key, state in keys}
        rows = self._conn.execute(
            "SELECT row_key, ts_ms, kafka_partition, kafka_offset FROM public.cdc_row_versions"
            " WHERE table_name = %s AND row_key = ANY(%s)",
            (table.qualified, list(by_text)),
        ).fetchall()
        return newer_keys(rows, by_text)

    def _record_versions(
        self, table: TargetTable, applied: list[tuple[KeyValues, KeyState]]
    ) -> None:
        with self._conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO public.cdc_row_versions VALUES (%s, %s, %s, %s, %s)"
                " ON CONFLICT (table_name, row_key) DO UPDATE SET ts_ms = EXCLUDED.ts_ms,"
                " kafka_partition = EXCLUDED.kafka_partition, kafka_offset = EXCLUDED.kafka_offset",
                [(table.qualified, row_key(key), s.ts_ms, *s.offset) for key, s in applied],
            )

    # -- the direct copy (snapshot.mode: direct) --------------------------
    def copy_progress(self, pipeline: str) -> PgCopyProgress:
        """The copy progress table, written in the transactions `apply` runs."""
        return PgCopyProgress(self._conn, pipeline)

    def prepare_table(self, target: tuple[str, str], schema: TableSchema) -> dict[str, str]:
        """The target table's column types, the table created first when allowed.
        An existing table may lack its key: the direct copy loads some tables
        bare and builds their keys before the stream (`cdc.postgres.deferred_keys`)."""
        with self._conn.transaction():
            types, _ = self._describe(target)
            if types and set(schema.column_names) <= set(types):
                return types
            return dict(self._table(target, schema).types)

    # -- target tables ----------------------------------------------------
    def _table(self, target: tuple[str, str], schema: TableSchema | None) -> TargetTable:
        found = self._tables.get(target)
        if found is not None and (schema is None or set(schema.column_names) <= set(found.types)):
            return found
        types, key = self._describe(target)
        if schema is not None:
            missing = [c for c in schema.columns if c.name not in types]
            if missing and not (self._create_tables):
                names = ", ".join(c.name for c in missing)
                raise TerminalError(
                    f"target table {target[0]}.{target[1]} lacks {names} of the source table"
                    if types
                    else f"target table {target[0]}.{target[1]} does not exist",
                    "create it (e.g. pg_dump --schema-only) or set target.create_tables: true",
                )
            if missing:
                self._conn.execute(DDL_LOCK)
                types, key = self._describe(target)  # another sink may have just made it
                if not set(schema.column_names) <= set(types):
                    self._create_or_extend(target, schema, bool(types))
                    types, key = self._describe(target)
        if not key:
            raise TerminalError(
                f"target table {target[0]}.{target[1]} has no primary key",
                "add the source's primary key to the target table",
            )
        stage = f"cdc_stage_{next(self._stages)}"
        self._conn.execute(
            sql.SQL(
                "CREATE TEMP TABLE {} ON COMMIT DELETE ROWS AS SELECT * FROM {} WITH NO DATA"
            ).format(sql.Identifier(stage), sql.Identifier(*target))
        )
        self._conn.execute(
            sql.SQL("ALTER TABLE {} ADD COLUMN cdc_kind smallint").format(sql.Identifier(stage))
        )
        encoders = {name: text_encoder(kind) for name, kind in types.items()}
        lines = LineBuilder(list(types), list(encoders.values()))
        binary_kinds = [k for k in map(binary_kind, types.values()) if k is not None]
        binary = len(binary_kinds) == len(types)
        row_encoder = (
            RowEncoder(list(types), binary_kinds, binary=True)
            if binary
            else RowEncoder(list(types), [encoder_kind(t) for t in types.values()])
        )
        table = TargetTable(target[0], target[1], types, key, stage, encoders, lines, row_encoder)
        self._tables[target] = table
        return table

    def _describe(self, target: tuple[str, str]) -> tuple[dict[str, str], tuple[str, ...]]:
        rows = self._conn.execute(
            "SELECT a.attname, format_type(a.atttypid, a.atttypmod),"
            # int2vector casts to an array indexed from 0: -1 marks a non-key column
            " coalesce(array_position(i.indkey::int2[], a.attnum), -1)"
            " FROM pg_attribute a"
            " JOIN pg_class c ON c.oid = a.attrelid"
            " JOIN pg_namespace n ON n.oid = c.relnamespace"
            " LEFT JOIN pg_index i ON i.indrelid = c.oid AND i.indisprimary"
            " WHERE n.nspname = %s AND c.relname = %s AND a.attnum > 0 AND NOT a.attisdropped"
            " AND a.attgenerated = '' ORDER BY a.attnum",
            target,
        ).fetchall()
        types = {name: kind for name, kind, _ in rows}
        key = tuple(name for name, _, pos in sorted(rows, key=lambda r: r[2]) if pos >= 0)
        return types, key

    def _create_or_extend(self, target: tuple[str, str], schema: TableSchema, exists: bool) -> None:
        ident = sql.Identifier(*target)
        if exists:
            for column in schema.columns:
                self._conn.execute(
                    sql.SQL("ALTER TABLE {} ADD COLUMN IF NOT EXISTS {} {}").format(
                        ident,
                        sql.Identifier(column.name),
                        sql.SQL(pg_type(column, schema.connector)),
                    )
                )
            return
        # the DDL `cdc schema` prints, from what the wire schema tells
        for statement in ddl_postgres.render(TableDef.of(schema), target, Notes()):
            if statement.phase == TABLES:
                self._conn.execute(statement.sql.encode())

    def close(self) -> None:
        self._conn.close()
