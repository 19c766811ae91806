"""The tables a binlog stream captures, and what its query events do to them.

A row's table is known by the name its table map gives; the DDL read from the
binlog keeps that knowledge right as the stream gets there:

- ALTER TABLE: the table as information_schema describes it now, and the
  columns the statement renames (for the next schema version's changes);
- CREATE TABLE of a table `source.tables` selects: it joins from its first row;
- TRUNCATE: a table-wide `Op.TRUNCATE`;
- DROP TABLE: a table-wide `Op.DROP`, and the table is forgotten, so that one
  created again under its name joins as any created table does;
- RENAME TABLE, ALTER TABLE ... RENAME TO: a table-wide `Op.RENAME` (`after`
  names the new name) when `source.tables` selects the new name, and the table
  goes on under it; an `Op.DROP` when it does not, the table leaving the
  stream. A table renamed into the selection joins from its next row, its
  rows from before missing (said once, with the remedy).

Each table-wide event names the schema the table's rows were last published
with, so that a sink meeting it on any partition knows the table as it is.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import pymysql
import structlog

from cdc.captured_tables import ADDED_FIX, note_captured
from cdc.ddl.schema_diff import next_version
from cdc.events import ChangeEvent, Op
from cdc.mysql import catalog, schema
from cdc.mysql.ddl_events import (
    Name,
    parse_alter,
    parse_create,
    parse_drop,
    parse_rename,
    parse_truncate,
)
from cdc.mysql.position import BinlogPosition
from cdc.mysql.row_events import schema_of
from cdc.mysql.rows import RowDecoder, RowDecoders
from cdc.schemas import TableSchema
from cdc.source import StreamItem
from cdc.source_offsets import OffsetStore

log = structlog.get_logger(__name__)


class TableEvents:
    """The captured tables of one stream, by (database, table).

    `by_name` and `schemas` are read on the stream's hot path (a rows event
    of a table not in `by_name` is not captured; `schemas` holds each table
    map's published schema and its fingerprint); both are changed in place
    only. `watched` is the list given to the binlog reader as `only_schemas`:
    the reader keeps that very list and drops the table maps of a database
    not in it, so a table joining from another database adds it there.
    """

    def __init__(
        self,
        tables: list[catalog.MyTable],
        seeded: bool,
        connect: Callable[[], pymysql.Connection[Any]],
        offsets: OffsetStore,
        selects: Callable[[str, str], bool],
        decoders: RowDecoders,
    ) -> None:
        """`seeded`: the snapshot of this run read `tables`, whose schemas
        the stream's first versions name their changes from (a column
        renamed during the snapshot stays one)."""
        self.by_name: dict[Name, catalog.MyTable] = {(t.schema, t.name): t for t in tables}
        self.schemas: dict[int, tuple[TableSchema, str]] = {}  # by id of the decoder
        self.watched: list[str] = sorted({t.schema for t in tables})
        self._connect = connect
        self._offsets = offsets
        self._selects = selects
        self._decoders = decoders
        # each table's last published schema, and the column renames and
        # statement of an ALTER TABLE read since: the next version names its
        # changes from them
        self._latest: dict[Name, TableSchema] = {
            name: _catalog_schema(t) for name, t in self.by_name.items() if seeded
        }
        self._altered: dict[Name, tuple[dict[str, str], str]] = {}

    # -- rows ---------------------------------------------------------------
    def row_schema(self, decoder: RowDecoder) -> tuple[TableSchema, str]:
        """The schema of the rows of `decoder`'s table map, a captured table's
        (the first time: `schemas` has it from then on), and its fingerprint."""
        name = (decoder.schema, decoder.table)
        renamed, ddl = self._altered.pop(name, ({}, ""))
        current = schema_of(decoder, self.by_name[name])
        table_schema = next_version(self._latest.get(name), current, renamed, ddl)
        self._latest[name] = table_schema
        known = self.schemas[id(decoder)] = (table_schema, table_schema.fingerprint)
        return known

    # -- query events -------------------------------------------------------
    def query(
        self, query: str, database: str, ts_ms: int, tx_start: BinlogPosition
    ) -> Iterator[StreamItem]:
        """What a query event (`database`: its default database, `tx_start`:
        where it starts in the binlog) means for the stream: the table-wide
        events, each after its table's schema."""
        truncated = parse_truncate(query, database)
        if truncated is not None:
            if truncated in self.by_name:
                yield from self._table_event(Op.TRUNCATE, truncated, ts_ms, tx_start)
            return
        dropped = parse_drop(query, database)
        if dropped is not None:
            for name in dropped:
                if name in self.by_name:
                    yield from self._table_event(Op.DROP, name, ts_ms, tx_start)
                    self._forget(name)
                    self._record()
                    log.info("schema_change", table=_qualified(name), op="drop", ddl=query)
            return
        renames = parse_rename(query, database)
        if renames is not None:
            for old, new in renames:
                yield from self._rename(old, new, query, ts_ms, tx_start)
            return
        alter = parse_alter(query, database)
        if alter is not None:
            name = (alter.database, alter.table)
            if alter.renamed_to is not None:
                yield from self._rename(name, alter.renamed_to, query, ts_ms, tx_start)
                name = alter.renamed_to
            if name in self.by_name and self._reload(name):
                self._altered[name] = (alter.renamed, query)
                if alter.renamed_to is None:  # a rename has said it
                    log.info("schema_change", table=_qualified(name), ddl=query)
            return
        created = parse_create(query, database)
        if created is not None and self._selects(*created) and self._reload(created):
            self._altered[created] = ({}, query)
            log.info("schema_change", table=_qualified(created), ddl=query)

    def _rename(
        self, old: Name, new: Name, query: str, ts_ms: int, tx_start: BinlogPosition
    ) -> Iterator[StreamItem]:
        table = self.by_name.get(old)
        selected = self._selects(*new)
        if table is None:
            # renamed into the selection: its rows from now on are captured
            if selected and new not in self.by_name and self._reload(new):
                log.warning(
                    "table_added_without_snapshot",
                    table=_qualified(new),
                    renamed_from=_qualified(old),
                    ddl=query,
                    error="its rows from before the rename are not in the stream",
                    fix=ADDED_FIX,
                )
            return
        if not selected:
            yield from self._table_event(Op.DROP, old, ts_ms, tx_start)
            self._forget(old)
            self._record()
            log.warning(
                "schema_change",
                table=_qualified(old),
                op="drop",
                renamed_to=_qualified(new),
                ddl=query,
                error="source.tables does not select the new name: the table is no longer captured",
                fix=f"to capture it again, add {_qualified(new)} to source.tables and restart"
                " (the restart names the table and how to copy its rows)",
            )
            return
        after = {"schema": new[0], "table": new[1]}
        yield from self._table_event(Op.RENAME, old, ts_ms, tx_start, after)
        # The same table: what is known of it carries over to its new name
        # (information_schema may show a later state already).
        latest, altered = self._latest.get(old), self._altered.get(old)
        self._forget(old)
        self.by_name[new] = replace(table, schema=new[0], name=new[1])
        self._decoders.json_columns[new] = table.json_columns
        self._watch(new)
        if latest is not None:
            self._latest[new] = latest
        if altered is not None:
            self._altered[new] = altered
        self._record()
        log.info(
            "schema_change",
            table=_qualified(old),
            op="rename",
            renamed_to=_qualified(new),
            ddl=query,
        )

    def _table_event(
        self,
        op: Op,
        name: Name,
        ts_ms: int,
        tx_start: BinlogPosition,
        after: dict[str, Any] | None = None,
    ) -> Iterator[StreamItem]:
        table_schema = self._latest.get(name)
        if table_schema is None:  # no row of it published yet in this run
            table_schema = _catalog_schema(self.by_name[name])
        yield table_schema
        yield ChangeEvent(
            op=op,
            schema=name[0],
            table=name[1],
            key=None,
            before=None,
            after=after,
            ts_ms=ts_ms,
            position=tx_start,
            fingerprint=table_schema.fingerprint,
            source={
                "connector": "mysql",
                "db": name[0],
                "file": tx_start.file,
                "pos": tx_start.pos,
                "gtid": tx_start.gtid,
            },
        )

    # -- what is known of a table ---------------------------------------------
    def _reload(self, name: Name) -> bool:
        """Take the table as information_schema describes it now (key, JSON
        columns, defaults), read when the stream gets there: a later ALTER may
        show already. False: it is gone since, and what was known stays."""
        with self._connect() as conn, conn.cursor() as cursor:
            found = catalog.load_table(cursor, *name)
        if not found.columns:
            return False
        joins = name not in self.by_name
        self.by_name[name] = found
        self._decoders.json_columns[name] = found.json_columns
        if joins:
            self._watch(name)
            self._record()
        return True

    def _forget(self, name: Name) -> None:
        """The table is no longer captured under `name` (a table created
        under it later joins as a new one); the caller records it."""
        del self.by_name[name]
        self._decoders.json_columns.pop(name, None)
        self._latest.pop(name, None)
        self._altered.pop(name, None)
        # a table map alike (the same name and columns) reuses its decoder:
        # its schema is named afresh
        for key, (known, _) in list(self.schemas.items()):
            if (known.schema, known.table) == name:
                del self.schemas[key]

    def _watch(self, name: Name) -> None:
        if name[0] not in self.watched:
            self.watched.append(name[0])

    def _record(self) -> None:
        """The captured tables as the offsets remember them: a restart then
        neither takes a renamed table for one added nor misses a dropped one."""
        note_captured(self._offsets, [t.qualified for t in self.by_name.values()], False)


def _catalog_schema(table: catalog.MyTable) -> TableSchema:
    return schema.table_schema(table.schema, table.name, table.columns, table.key, table.defaults)


def _qualified(name: Name) -> str:
    return f"{name[0]}.{name[1]}"
