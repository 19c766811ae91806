"""Applies batches to a PostgreSQL target in one transaction each.

A table batch of whole new rows only is COPYed straight into its table
(`sinks.postgres.direct_inserts`); any other takes the planned path: which
keys exist, the conflict policies (`sinks.plan`), then the staging table
(`sinks.postgres.staging`). The Kafka positions go to `cdc_offsets` in the
same transaction (`sinks.postgres.offsets`), so a batch is applied exactly
once however the process dies.

The session runs with `session_replication_role = replica`: foreign keys and
user triggers do not fire, because tables of one source transaction may
arrive in a different order. It also turns `default_transaction_read_only`
off, so that a database fenced by `cdc cutover` (which sets it on for new
sessions) still takes the reverse stream. Each transaction is marked as
applied by cdc (`cdc.applied_marks`), so a source reading this database skips it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import psycopg
from psycopg import sql

from cdc.applied_marks import PG_APPLICATION_NAME, PG_APPLIED_PREFIX, PG_READ_WRITE_OPTION
from cdc.applier import ApplyResult
from cdc.changes import KeyState, KeyValues, TableBatch, TableEvent
from cdc.events import Op
from cdc.schemas import TableSchema
from cdc.settings_schema_changes import SchemaChangeSettings
from cdc.target_offsets import read_offsets
from sinks import keyless
from sinks.inserts import InsertBatch, Offsets
from sinks.plan import LAST_WRITER_WINS, plan_table
from sinks.postgres import table_ddl
from sinks.postgres.copy_progress import PgCopyProgress
from sinks.postgres.direct_inserts import NotDirectError, copy_messages, copy_new_rows, copy_rows
from sinks.postgres.keyless import PgKeyless
from sinks.postgres.offsets import OFFSETS_DDL, OFFSETS_TABLE, write_offsets
from sinks.postgres.schema_changes import RECORDS_DDL
from sinks.postgres.staging import existing, stage_and_apply
from sinks.postgres.tables import DDL_LOCK, TargetTable, TargetTables
from sinks.postgres.truncates import TRUNCATES_DDL, reach_truncate
from sinks.postgres.versions import VERSIONS_DDL, newer_versions, record_versions
from sinks.schema_changes import SchemaFollower, upgrade
from sinks.table_barriers import DONE

SESSION_OPTIONS = (
    "-c session_replication_role=replica -c TimeZone=UTC -c datestyle=ISO" + PG_READ_WRITE_OPTION
)


class PostgresApplier:
    def __init__(
        self,
        dsn: str,
        group: str,
        policy_for: Callable[[str, str], str],
        create_tables: bool,
        schema_changes: SchemaChangeSettings | None = None,
    ) -> None:
        self._conn = psycopg.connect(
            dsn, options=SESSION_OPTIONS, application_name=PG_APPLICATION_NAME
        )
        self._group = group
        self._policy_for = policy_for
        self._follower = SchemaFollower(schema_changes or SchemaChangeSettings())
        self._tables = TargetTables(self._conn, create_tables, self._follower)
        with self._conn.transaction():
            self._conn.execute(DDL_LOCK)
            self._conn.execute(OFFSETS_DDL)
            self._conn.execute(VERSIONS_DDL)
            self._conn.execute(RECORDS_DDL)
            self._conn.execute(TRUNCATES_DDL)

    def committed_offsets(self, topics: Sequence[str]) -> dict[tuple[str, int], int]:
        """The next offset to read per (topic, partition), as last committed here."""
        with self._conn.transaction(), self._conn.cursor() as cur:
            return read_offsets(cur, OFFSETS_TABLE, self._group, topics)

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
                    if self._tables.follow(batch.target, [schema]).affects(schema):
                        raise NotDirectError  # rows of an older version: renamed on the way
                    table = self._tables.get(batch.target, [schema])
                    if (
                        self._policy_for(schema.schema, schema.table) == LAST_WRITER_WINS
                        or table.direct_copy_wait > 0  # the planned path counts it down
                    ):
                        raise NotDirectError
                    newest = copy_messages(self._conn, table, batch.values)
                    result.rows[(table.qualified, "c")] += len(batch.values)
                    result.last_ts_ms = max(result.last_ts_ms, newest)
        except (NotDirectError, psycopg.DataError, psycopg.IntegrityError):
            return None
        return result

    @contextmanager
    def _batch(self, offsets: Offsets) -> Iterator[None]:
        """One transaction: marked as cdc's, the batch's rows, its offsets."""
        with self._tables.undone_on_rollback(), self._conn.transaction():
            # first in the transaction: a source decoding it drops it before any row
            self._conn.execute(
                "SELECT pg_logical_emit_message(true, %s, %s)",
                (PG_APPLIED_PREFIX, self._group),
            )
            yield
            with self._conn.cursor() as cur:
                write_offsets(cur, self._group, offsets)

    def _apply_table(self, batch: TableBatch, result: ApplyResult) -> None:
        # schema versions are shared objects: few per batch, however many keys
        schemas = list({id(s.schema): s.schema for s in batch.keys.values()}.values())
        evolution = self._tables.follow(batch.target, schemas)
        if any(evolution.affects(s) for s in schemas):
            upgrade(batch, evolution)
            schemas = list({id(s.schema): s.schema for s in batch.keys.values()}.values())
        if not schemas:
            return
        policy = self._policy_for(schemas[0].schema, schemas[0].table)
        if schemas[0].keyless:  # a batch is all keyless or all keyed (`sinks.collapse`)
            statements = PgKeyless(self._conn, self._tables, batch.target)
            keyless.apply(statements, batch.keys.values(), policy, evolution, result)
            return
        # Each key is written through the columns its own version has: a row of
        # an older version leaves a column added since at its default (a new
        # row) or value (an update), as on the source; the union would write NULL.
        if len(schemas) == 1:  # the common case: one version, one shape
            table = self._tables.get(batch.target, schemas)
            self._apply_keys(table, list(batch.keys.items()), policy, result)
            return
        shapes: dict[tuple[str, ...], list[tuple[KeyValues, KeyState]]] = {}
        names = {id(s): s.column_names for s in schemas}
        for key, state in batch.keys.items():
            shapes.setdefault(names[id(state.schema)], []).append((key, state))
        for keys in shapes.values():
            table = self._tables.get(batch.target, [keys[0][1].schema])
            self._apply_keys(table, keys, policy, result)

    def _apply_keys(
        self,
        table: TargetTable,
        keys: list[tuple[KeyValues, KeyState]],
        policy: str,
        result: ApplyResult,
    ) -> None:
        if policy != LAST_WRITER_WINS and copy_new_rows(self._conn, table, keys, result):
            return
        found = existing(self._conn, table, [k for k, _ in keys])
        newer = (
            newer_versions(self._conn, table.qualified, keys)
            if policy == LAST_WRITER_WINS
            else set()
        )
        plan = plan_table(keys, found, newer, policy, table.qualified, result)
        # new rows go straight in, not through the staging table (where a TOASTed
        # value would be written twice); a key that appeared meanwhile is staged
        if plan.creates and not copy_rows(self._conn, table, plan.creates):
            plan.upserts += plan.creates
        stage_and_apply(self._conn, table, plan)
        if policy == LAST_WRITER_WINS:
            record_versions(self._conn, table.qualified, plan.applied)

    def table_event_reached(self, event: TableEvent, partition: int, partitions: int) -> bool:
        """See `sinks.table_barriers.BarrierTarget`."""
        with self._batch({}):
            self._conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"cdc {event.name}",))
            arrived = reach_truncate(self._conn, self._group, event.name, event.event_id, partition)
            if DONE not in arrived:
                if len(arrived) < partitions:
                    return False
                self._carry_out(event)
                reach_truncate(self._conn, self._group, event.name, event.event_id, DONE)
        # what this process knew of the table (and of its new name) is stale
        self._tables.forget(event.target)
        if event.renamed_to is not None:
            self._tables.forget(event.renamed_to)
        return True

    def _carry_out(self, event: TableEvent) -> None:
        if event.op is not Op.TRUNCATE:
            if self._follower.follows(event):
                (table_ddl.drop if event.op is Op.DROP else table_ddl.rename)(self._conn, event)
        # a table the sink never made has no rows
        elif self._tables.describe(event.target)[0] and self._follower.follows(event):
            self._conn.execute(sql.SQL("TRUNCATE {}").format(sql.Identifier(*event.target)))

    # -- the direct copy (snapshot.mode: direct) --------------------------
    def copy_progress(self, pipeline: str) -> PgCopyProgress:
        """The copy progress table, written in the transactions `apply` runs."""
        return PgCopyProgress(self._conn, pipeline)

    def prepare_table(self, target: tuple[str, str], schema: TableSchema) -> dict[str, str]:
        """The target table's column types, the table created first when allowed.
        An existing table may lack its key: the direct copy loads some tables
        bare and builds their keys before the stream (`sinks.postgres.deferred_keys`)."""
        with self._conn.transaction():
            types, _ = self._tables.describe(target)
            if types and set(schema.column_names) <= set(types):
                return types
            self._tables.follow(target, [schema])
            return dict(self._tables.get(target, [schema]).types)

    def close(self) -> None:
        self._conn.close()
