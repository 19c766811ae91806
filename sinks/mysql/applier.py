"""Applies batches to a MySQL/MariaDB target in one transaction each.

Bulk path, per table and batch: one existence query
`SELECT key FROM t WHERE (key) IN (...)`, then multi-row
`DELETE ... WHERE (key) IN (...)`, multi-row
`INSERT ... ON DUPLICATE KEY UPDATE` and, for rows whose unchanged TOAST
columns were left out, `UPDATE ... SET c = CASE key WHEN ... END` per column
set (built by `sinks.mysql.statements`, each at most `MAX_ROWS` rows and
below max_allowed_packet). The Kafka positions go to `cdc_offsets` in the
same transaction (`sinks.mysql.offsets`), so a batch is applied exactly once
however the process dies.

Names: the DSN's database holds `cdc_offsets`, `cdc_row_versions` and every
target table; the source schema (PostgreSQL's `public`, a MySQL database) is
not part of the target name, and two source tables that would meet in one
target table stop the sink.

DDL commits the open transaction in MySQL, so missing tables are created
before a batch's transaction begins, and a truncate is a `DELETE`.

Session: `foreign_key_checks = 0` because tables of one source transaction
may arrive in a different order; `unique_checks` stays on (ON DUPLICATE KEY
needs it); `time_zone = '+00:00'` as the wire's timestamps are UTC; utf8mb4;
READ COMMITTED, as the sink needs no snapshot and takes fewer gap locks;
`SQL_MODE` below; and a `server_id` of the range kept for sinks
(`cdc.applied_marks`), a privileged setting (SUPER; on MySQL 8
SYSTEM_VARIABLES_ADMIN).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

import pymysql

from cdc.applied_marks import apply_server_id
from cdc.applier import ApplyResult
from cdc.changes import KeyState, KeyValues, TableBatch, TableEvent
from cdc.errors import TerminalError
from cdc.events import Op
from cdc.mysql.dialect import qualified
from cdc.mysql.target_values import Convert, TargetColumn, converter, key_normalizer
from cdc.secrets import MysqlDsn
from cdc.settings_schema_changes import SchemaChangeSettings
from cdc.target_offsets import read_offsets
from sinks import keyless
from sinks.mysql import statements, table_ddl
from sinks.mysql.copy_progress import MysqlCopyProgress
from sinks.mysql.keyless import MysqlKeyless
from sinks.mysql.offsets import OFFSETS_TABLE, write_offsets
from sinks.mysql.server_errors import classify, transient
from sinks.mysql.tables import Catalog
from sinks.mysql.target_database import target_database
from sinks.mysql.truncates import reach_truncate
from sinks.mysql.versions import newer_versions, record_versions
from sinks.plan import LAST_WRITER_WINS, plan_table
from sinks.schema_changes import Evolution, SchemaFollower, upgrade
from sinks.table_barriers import DONE

# Strict: a value the column cannot hold is an error (the change goes to the
# dead letters), never a silent clamp or truncation. NO_AUTO_VALUE_ON_ZERO: a
# replicated id 0 stays 0 instead of drawing the next AUTO_INCREMENT. Zero
# dates never come from the wire: refuse them. NO_ENGINE_SUBSTITUTION: created
# tables are InnoDB (transactional) or fail. Deliberately without
# NO_BACKSLASH_ESCAPES (PyMySQL escapes with backslashes) and ANSI_QUOTES,
# whatever the server's default.
SQL_MODE = (
    "STRICT_ALL_TABLES,NO_ZERO_IN_DATE,NO_ZERO_DATE,NO_AUTO_VALUE_ON_ZERO,NO_ENGINE_SUBSTITUTION"
)
SESSION = f"SET SESSION foreign_key_checks = 0, time_zone = '+00:00', sql_mode = '{SQL_MODE}'"
_T = TypeVar("_T")


@dataclass
class TargetTable:
    database: str
    name: str
    columns: dict[str, TargetColumn]
    key: tuple[str, ...]  # the target's primary key
    converters: dict[tuple[str, str], Convert] = field(default_factory=dict)
    evolution: Evolution | None = None  # what the table has been through, when last prepared

    @property
    def ident(self) -> str:
        return qualified(self.database, self.name)

    @property
    def qualified(self) -> str:
        return f"{self.database}.{self.name}"


class MysqlApplier:
    def __init__(
        self,
        dsn: MysqlDsn,
        group: str,
        policy_for: Callable[[str, str], str],
        create_tables: bool,
        schema_changes: SchemaChangeSettings | None = None,
    ) -> None:
        args = dsn.connect_kwargs()
        database = target_database(args)
        # autocommit between batches: every offsets read sees the last commit;
        # `apply` opens its own transaction
        self._conn = pymysql.connect(
            **args, charset="utf8mb4", autocommit=True, init_command=SESSION
        )
        self._database: str = database
        self._group = group
        self._policy_for = policy_for
        with self._conn.cursor() as cur:
            cur.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
            # marks every event this session writes to the binlog as applied by cdc
            # (cdc.applied_marks), so a source reading this server skips it
            cur.execute("SET SESSION server_id = %s", (apply_server_id(group),))
            cur.execute("SELECT VERSION(), @@max_allowed_packet")
            version, packet = cur.fetchone()
        self._follower = SchemaFollower(schema_changes or SchemaChangeSettings())
        self._catalog = Catalog(self._conn, database, str(version), create_tables, self._follower)
        self._alias = self._catalog.row_alias
        # Budget in characters: a character is at most 4 bytes in utf8mb4,
        # plus room for the statement around the rows.
        self._packet = int(packet) - min(65536, int(packet) // 4)
        self._budget = self._packet // 4
        self._session = statements.Session(database, self._conn.escape, self._budget, self._alias)
        self._owners: dict[str, str] = {}
        self._tables: dict[str, TargetTable] = {}

    def committed_offsets(self, topics: Sequence[str]) -> dict[tuple[str, int], int]:
        """The next offset to read per (topic, partition), as last committed here."""
        with self._conn.cursor() as cur:
            return read_offsets(cur, self._session.table(OFFSETS_TABLE), self._group, topics)

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
        try:
            tables = {batch.target: self._prepare(batch) for step in steps for batch in step}
            self._conn.begin()
            with self._conn.cursor() as cur:
                for step in steps:
                    for batch in step:
                        table = tables[batch.target]
                        if table is not None:
                            self._apply_table(cur, table, batch, result)
                write_offsets(cur, self._session, self._group, offsets)
            if before_commit is not None:
                before_commit(result)
            self._conn.commit()
        except pymysql.err.MySQLError as exc:
            self._rollback()
            classified = classify(exc)
            if classified is exc:
                raise
            raise classified from exc
        except BaseException:
            self._rollback()
            raise
        return result

    def _rollback(self) -> None:
        with contextlib.suppress(pymysql.err.MySQLError):  # gone: the server rolled back
            self._conn.rollback()

    # -- one table --------------------------------------------------------
    def _apply_table(
        self, cur: Any, table: TargetTable, batch: TableBatch, result: ApplyResult
    ) -> None:
        if not batch.keys:
            return
        schema = next(iter(batch.keys.values())).schema
        policy = self._policy_for(schema.schema, schema.table)
        if schema.keyless:  # a batch is all keyless or all keyed (`sinks.collapse`)
            target = MysqlKeyless(cur, table, self._conn.escape, self._budget)
            keyless.apply(target, batch.keys.values(), policy, table.evolution, result)
            return
        names = schema.key
        keys, key_sql, matches = self._render(table, batch, names, result)
        existing = self._existing(cur, table, names, keys, key_sql, matches)
        newer = (
            newer_versions(cur, self._session, table.qualified, keys)
            if policy == LAST_WRITER_WINS
            else set()
        )
        plan = plan_table(keys, existing, newer, policy, table.qualified, result)
        deletes = [key_sql[key] for key in plan.deletes]
        for sql in statements.deletes(table.ident, names, deletes, self._budget):
            cur.execute(sql)
        groups: dict[tuple[str, ...], list[str]] = {}
        for row in [*plan.creates, *plan.upserts]:  # a column added mid-batch: two shapes
            groups.setdefault(tuple(row), []).append("(" + ", ".join(row.values()) + ")")
        for columns, values in groups.items():
            others = [c for c in columns if c not in table.key] or [table.key[0]]
            self._execute(
                cur,
                statements.upserts(table.ident, columns, values, others, self._budget, self._alias),
            )
        for column_set, rows in plan.partial.items():
            self._execute(
                cur, statements.partial_updates(table.ident, names, column_set, rows, self._budget)
            )
        if policy == LAST_WRITER_WINS:
            record_versions(cur, self._session, table.qualified, plan.applied)

    def _render(
        self, table: TargetTable, batch: TableBatch, names: tuple[str, ...], result: ApplyResult
    ) -> tuple[list[tuple[KeyValues, KeyState]], dict[KeyValues, str], dict[KeyValues, Any]]:
        """Each key's SQL literal and match form, each row's column literals;
        a change whose values the target cannot hold becomes a dead letter
        here, before it counts as applied."""
        escape = self._conn.escape
        normalizers = [key_normalizer(table.columns[n]) for n in names]
        keys: list[tuple[KeyValues, KeyState]] = []
        key_sql: dict[KeyValues, str] = {}
        matches: dict[KeyValues, Any] = {}
        for key, state in batch.keys.items():
            try:
                values = [
                    self._convert(table, state, n, v) for n, v in zip(names, key, strict=True)
                ]
                row = None
                if state.row is not None:
                    row = {
                        n: escape(self._convert(table, state, n, v))
                        for n, v in state.row.items()
                        if not table.columns[n].generated
                    }
                    if sum(len(text) for text in row.values()) > self._budget:
                        encoded = sum(len(text.encode()) for text in row.values())
                        if encoded > self._packet:
                            raise ValueError(f"row of {encoded} bytes > max_allowed_packet")
            except (ValueError, TypeError, ArithmeticError) as exc:
                result.dead.append((state.first, f"value: {exc}"))
                continue
            key_sql[key] = "(" + ", ".join(escape(v) for v in values) + ")"
            matches[key] = tuple(norm(v) for norm, v in zip(normalizers, values, strict=True))
            keys.append((key, state if row is None else replace(state, row=row)))
        return keys, key_sql, matches

    def _convert(self, table: TargetTable, state: KeyState, name: str, value: Any) -> Any:
        if value is None:
            return None
        source = state.schema.column(name)
        convert = table.converters.get((name, source.type))
        if convert is None:
            convert = table.converters[(name, source.type)] = converter(table.columns[name], source)
        try:
            return convert(value)
        except (ValueError, TypeError, ArithmeticError) as exc:
            raise ValueError(f"column {name}: {exc}") from exc

    def _existing(
        self,
        cur: Any,
        table: TargetTable,
        names: tuple[str, ...],
        keys: list[tuple[KeyValues, KeyState]],
        key_sql: dict[KeyValues, str],
        matches: dict[KeyValues, Any],
    ) -> set[KeyValues]:
        """Which keys have a target row: one query per table and batch (per
        `MAX_ROWS` keys), matched back in Python by converted value: the
        server's own comparison (collations, padding) is not reproduced, but
        create_tables gives text keys a binary no-pad collation."""
        normalizers = [key_normalizer(table.columns[n]) for n in names]
        literals = [key_sql[key] for key, _ in keys]
        found: set[Any] = set()
        for sql in statements.selects(table.ident, names, literals, self._budget):
            cur.execute(sql)
            for row in cur.fetchall():
                found.add(tuple(norm(v) for norm, v in zip(normalizers, row, strict=True)))
        return {key for key, _ in keys if matches[key] in found}

    def _execute(self, cur: Any, sqls: Iterator[str]) -> None:
        for sql in sqls:
            cur.execute(sql)

    # -- target tables ----------------------------------------------------
    def _prepare(self, batch: TableBatch) -> TargetTable | None:
        """The batch's target table, created or extended first when allowed
        (outside the transaction: DDL would commit it). None: a truncate of a
        table that was never created."""
        source_schema, name = batch.target
        owner = self._owners.setdefault(name, source_schema)
        if owner != source_schema:
            raise TerminalError(
                f"{source_schema}.{name} and {owner}.{name} would both be"
                f" {self._database}.{name} on the target",
                "replicate one of them, or each schema to its own target database"
                " (one pipeline each)",
            )
        # schema objects are shared per fingerprint: few distinct ones per batch
        schemas = list({id(s.schema): s.schema for s in batch.keys.values()}.values())
        table = self._tables.get(name)
        if (
            table is not None
            and all(set(s.column_names) <= set(table.columns) for s in schemas)
            and not self._follower.pending(schemas)
        ):
            return table
        try:
            described = self._catalog.ensure(name, schemas)
        except pymysql.err.MySQLError as exc:
            if transient(exc):
                raise
            # a key too long to index, a type the server lacks: not worth retrying
            raise TerminalError(
                f"preparing target table {self._database}.{name}: {exc}",
                "create the table by hand (cdc/mysql/target_types.py has the type mapping)",
            ) from exc
        if described is None:
            return None
        columns, key, evolution = described
        if any(evolution.affects(s) for s in schemas):
            upgrade(batch, evolution)  # rows of an older version: renamed on the way
        table = TargetTable(self._database, name, columns, key, evolution=evolution)
        self._tables[name] = table
        return table

    def table_event_reached(self, event: TableEvent, partition: int, partitions: int) -> bool:
        """See `sinks.table_barriers.BarrierTarget`."""
        name = f"{self._database}.{event.target[1]}"

        def reach(cur: Any, at: int) -> set[int]:
            return reach_truncate(cur, self._session, self._group, name, event.event_id, at)

        with self._catalog.lock(f"cdc_truncate {name}"):
            arrived = self._in_transaction(lambda cur: reach(cur, partition))
            if DONE not in arrived:
                if len(arrived) < partitions:
                    return False
                if event.op is Op.TRUNCATE:
                    self._in_transaction(lambda cur: self._truncate(cur, event, reach))
                else:
                    if self._follower.follows(event):
                        ddl = table_ddl.drop if event.op is Op.DROP else table_ddl.rename
                        with self._conn.cursor() as cur:  # DDL commits on its own
                            ddl(cur, self._database, event)
                    self._in_transaction(lambda cur: reach(cur, DONE))
        # what this process knew of the table (and of its new name) is stale
        for target in (event.target, event.renamed_to):
            if target is not None:
                self._tables.pop(target[1], None)
                self._catalog.forget(target[1])
        return True

    def _truncate(self, cur: Any, event: TableEvent, reach: Callable[[Any, int], object]) -> None:
        """Truncate the table and mark the event done, in one transaction."""
        table = self._prepare(TableBatch(event.target))
        # a table the sink never made has no rows
        if table is not None and self._follower.follows(event):
            cur.execute(f"DELETE FROM {table.ident}")  # TRUNCATE would commit
        reach(cur, DONE)

    def _in_transaction(self, work: Callable[[Any], _T]) -> _T:
        try:
            self._conn.begin()
            with self._conn.cursor() as cur:
                result = work(cur)
            self._conn.commit()
        except BaseException:
            self._rollback()
            raise
        return result

    def copy_progress(self, pipeline: str) -> MysqlCopyProgress:
        """The copy progress table (snapshot.mode: direct), written in the
        transactions `apply` runs."""
        return MysqlCopyProgress(self._conn, self._database, pipeline)

    def close(self) -> None:
        if self._conn.open:  # a connection the server dropped is closed already
            self._conn.close()
