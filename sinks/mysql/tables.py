"""The MySQL/MariaDB target's tables: cdc's own, and the replicated ones as
information_schema describes them (created or extended with
`create_tables: true`, by the mapping of `cdc.mysql.target_types`).

Every statement here is DDL or a catalog read, run between transactions:
MySQL commits an open transaction at any DDL statement.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from cdc.ddl.model import TABLES, Notes, TableDef
from cdc.errors import TerminalError, TransientError
from cdc.mysql import ddl as ddl_mysql
from cdc.mysql.collation import key_collation, version_numbers
from cdc.mysql.dialect import quote
from cdc.mysql.target_values import TargetColumn
from cdc.schemas import TableSchema
from sinks.mysql import schema_changes as schema_ddl
from sinks.mysql.offsets import OFFSETS_DDL
from sinks.mysql.schema_changes import text as _text
from sinks.mysql.truncates import TRUNCATES_DDL
from sinks.mysql.versions import VERSIONS_DDL
from sinks.schema_changes import MISSING_TABLE_FIX, Evolution, SchemaFollower, Step, carry_out

DDL_LOCK = "cdc_sink_ddl"  # a server-wide name: pipelines sharing a server share it, harmlessly
DDL_LOCK_WAIT_S = 60
_JSON_CHECK = re.compile(r"json_valid\(`((?:[^`]|``)+)`\)", re.IGNORECASE)


class Catalog:
    def __init__(
        self,
        conn: Any,
        database: str,
        version: str,
        create_tables: bool,
        follower: SchemaFollower,
    ) -> None:
        self._conn = conn
        self._database = database
        self._create_tables = create_tables
        self._follower = follower
        self._evolutions: dict[str, Evolution] = {}
        self.mariadb = "mariadb" in version.lower()
        # MySQL 8.0.19+ wants `VALUES (...) AS alias` over VALUES(col) in ODKU
        self.row_alias = not self.mariadb and version_numbers(version) >= (8, 0, 19)
        self.key_collation = key_collation(version)
        db = quote(database)
        with conn.cursor() as cur:
            cur.execute(OFFSETS_DDL.format(db=db))
            cur.execute(VERSIONS_DDL.format(db=db))
            cur.execute(schema_ddl.RECORDS_DDL.format(db=db))
            cur.execute(TRUNCATES_DDL.format(db=db))

    def forget(self, name: str) -> None:
        """`name` was dropped or renamed (maybe by another sink process)."""
        self._evolutions.pop(name, None)

    def ensure(
        self, name: str, schemas: Sequence[TableSchema]
    ) -> tuple[dict[str, TargetColumn], tuple[str, ...], Evolution] | None:
        """The table's columns, primary key and what it has been through, after
        creating it or making it follow `schemas` (`sinks.schema_changes`).
        None: it does not exist and there was nothing to create it from."""
        columns, key = self.describe(name)
        evolution = self._evolutions.get(name)
        if evolution is None:
            with self._conn.cursor() as cur:
                evolution = schema_ddl.evolution(cur, self._database, name)
        wanted = {n for schema in schemas for n in schema.column_names}
        covered = set(columns) | set(evolution.renamed) | evolution.skipped
        if not columns or not wanted <= covered or self._follower.pending(schemas):
            with self._ddl_lock(), self._conn.cursor() as cur:
                self._follow(cur, name, schemas)
                evolution = schema_ddl.evolution(cur, self._database, name)
            columns, key = self.describe(name)
        self._evolutions[name] = evolution
        if not columns:
            return None
        if not key and any(not schema.keyless for schema in schemas):  # keyless: `sinks.keyless`
            raise TerminalError(
                f"target table {self._database}.{name} has no primary key",
                "add the source's primary key to the target table",
            )
        return columns, key, evolution

    def _follow(self, cur: Any, name: str, schemas: Sequence[TableSchema]) -> None:
        """Under the DDL lock: another sink process may have just done it all."""
        target = f"{self._database}.{name}"
        if not self.describe(name)[0] and schemas:
            if not self._create_tables:
                raise TerminalError(
                    f"target table {target} does not exist",
                    MISSING_TABLE_FIX,
                )
            self._create(name, schemas[0])
        evolution = schema_ddl.evolution(cur, self._database, name)
        info = schema_ddl.column_info(cur, self._database, name)
        if not info:
            return
        steps = self._follower.plan(
            target, schemas, info, evolution, schema_ddl.target_type, self._create_tables
        )

        def run(schema: TableSchema, step: Step) -> str:
            before = info.get(step.previous or step.column)  # the column as it is now
            return schema_ddl.run(
                cur, self._database, name, schema, step, before, self.key_collation
            )

        carry_out(steps, schemas, run)
        self._follower.planned(schemas)

    def describe(self, name: str) -> tuple[dict[str, TargetColumn], tuple[str, ...]]:
        with self._conn.cursor() as cur:
            json_columns: set[str] = set()
            if self.mariadb:  # MariaDB's JSON is LONGTEXT with a json_valid() check
                cur.execute(
                    "SELECT CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS"
                    " WHERE CONSTRAINT_SCHEMA = %s AND TABLE_NAME = %s",
                    (self._database, name),
                )
                for (clause,) in cur.fetchall():
                    found = _JSON_CHECK.fullmatch(_text(clause).strip())
                    if found:
                        json_columns.add(found.group(1).replace("``", "`"))
            cur.execute(
                "SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, EXTRA FROM information_schema.COLUMNS"
                " WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s ORDER BY ORDINAL_POSITION",
                (self._database, name),
            )
            columns = {}
            for raw in cur.fetchall():
                column, data_type, column_type, extra = (_text(v) for v in raw)
                columns[column] = TargetColumn(
                    column,
                    data_type.lower(),
                    column_type.lower(),
                    json=data_type.lower() == "json" or column in json_columns,
                    generated="GENERATED" in extra.upper() or "PERSISTENT" in extra.upper(),
                )
            cur.execute(
                "SELECT COLUMN_NAME FROM information_schema.STATISTICS"
                " WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s AND INDEX_NAME = 'PRIMARY'"
                " ORDER BY SEQ_IN_INDEX",
                (self._database, name),
            )
            key = tuple(_text(column) for (column,) in cur.fetchall())
        return columns, key

    def _ddl_lock(self) -> AbstractContextManager[None]:
        """Sink processes of one pipeline (sink.workers, replicas) start
        together and may create or extend the same table at once; DDL commits
        on its own, so a named lock takes them one at a time."""
        return self.lock(DDL_LOCK)

    @contextmanager
    def lock(self, name: str) -> Iterator[None]:
        """The server-wide named lock `name`, held by this session meanwhile."""
        with self._conn.cursor() as cur:
            cur.execute("SELECT GET_LOCK(%s, %s)", (name, DDL_LOCK_WAIT_S))
            row = cur.fetchone()
        if not row or row[0] != 1:
            raise TransientError(
                f"another sink process held the lock {name} for {DDL_LOCK_WAIT_S} s"
            )
        try:
            yield
        finally:
            with self._conn.cursor() as cur:
                cur.execute("SELECT RELEASE_LOCK(%s)", (name,))

    def _create(self, name: str, schema: TableSchema) -> None:
        # the DDL `cdc schema` prints, from what the wire schema tells
        target = (self._database, name)
        statements = ddl_mysql.render(TableDef.of(schema), target, self.key_collation, Notes())
        with self._conn.cursor() as cur:
            for statement in statements:
                if statement.phase == TABLES:
                    cur.execute(statement.sql)
