"""Source schema changes replayed on the target, in order with the rows.

A schema version names how it differs from the one before it
(`TableSchema.changes`, see `cdc.ddl.schema_diff`); the first batch that carries
a version makes the target follow, under the `schema_changes` policy, before
its rows are written. Other partitions may still deliver rows of the older
version afterwards: a column renamed or dropped since is mapped to its new
name or left out (`upgrade`), never created again. A column the target
lacks is added, whatever the version says: after a restart of the source a
version names no changes, and the target is the reference.

What was done is recorded on the target (`cdc_schema_changes`), so every
sink process and a restarted one know which old names map where, and
`cdc status` can show it. Engines run the DDL (`Step`), this module decides it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Literal

import structlog

from cdc import metrics
from cdc.changes import TableBatch, TableEvent
from cdc.ddl import defaults
from cdc.ddl.schema_diff import fill_of
from cdc.errors import TerminalError
from cdc.events import Op
from cdc.schemas import ChangeKind, Column, TableSchema
from cdc.settings_schema_changes import Action, SchemaChangeSettings

log = structlog.get_logger(__name__)

Operation = Literal["add", "drop", "drop_not_null", "rename", "retype", "none"]
# what a sink that meets a target table it may not create tells the user
MISSING_TABLE_FIX = (
    "create it (`cdc schema --apply` makes it from the source table)"
    " or set target.create_tables: true"
)
TableKind = Literal["truncate", "drop_table", "rename_table"]
_TABLE_KINDS: dict[Op, TableKind] = {
    Op.TRUNCATE: "truncate",
    Op.DROP: "drop_table",
    Op.RENAME: "rename_table",
}


def _stopped(event: TableEvent, kind: TableKind) -> tuple[str, str]:
    """The error and the fix of a table-wide event the policy stops at."""
    again = " and start the sink again"
    if event.renamed_to is not None:
        new = ".".join(event.renamed_to)
        return (
            f"RENAME TABLE on the source: {event.source} is now {new} ({event.name} on the target)",
            f"rename {event.name} to {new} by hand, then set schema_changes.rename_table: apply"
            + again,
        )
    verb = "TRUNCATE" if kind == "truncate" else "DROP TABLE"
    return (
        f"{verb} on the source for {event.name}",
        f"{verb.lower()} {event.name} by hand (or not), then set schema_changes.{kind}: ignore"
        " (or apply)" + again,
    )


@dataclass(frozen=True, slots=True)
class TargetColumnInfo:
    type: str  # as the target names it (format_type, COLUMN_TYPE)
    nullable: bool
    has_default: bool


@dataclass(frozen=True, slots=True)
class Step:
    """One change to make on the target, and the source change it follows."""

    table: str  # the source table, schema.table
    kind: ChangeKind
    column: str  # the column's name after the change
    action: Action
    operation: Operation
    previous: str = ""  # rename: the old name
    source_ddl: str = ""
    new: Column | None = None  # add, retype: the column as the source has it now
    fill: defaults.Default | None = None  # add: what the rows already there hold


@dataclass
class Evolution:
    """What the target's copy of a table has been through: old column names
    that now have another (renamed) or none (dropped or never added)."""

    renamed: dict[str, str] = field(default_factory=dict)
    skipped: set[str] = field(default_factory=set)

    def note(self, step: Step) -> None:
        if step.operation == "rename":
            self.renamed[step.previous] = step.column
        elif step.operation == "drop" or (step.kind == "add_column" and step.action == "ignore"):
            self.skipped.add(step.column)

    def affects(self, schema: TableSchema) -> bool:
        return any(n in self.renamed or n in self.skipped for n in schema.column_names)


class SchemaFollower:
    """Plans the target's side of the source's schema changes for one sink."""

    def __init__(self, policy: SchemaChangeSettings) -> None:
        self._policy = policy
        self._seen: set[str] = set()  # fingerprints of versions whose changes are on the target

    def action(self, kind: ChangeKind | TableKind) -> Action:
        action: Action = getattr(self._policy, kind)
        return action

    def plan(
        self,
        target: str,
        schemas: Sequence[TableSchema],
        columns: Mapping[str, TargetColumnInfo],
        evolution: Evolution,
        target_type: Callable[[TableSchema, Column], str],
        add_missing: bool,
    ) -> list[Step]:
        """The steps that bring the target table (`columns`) to `schemas`:
        each new version's changes in order, then any column still missing
        (`add_missing`: target.create_tables; else that is an error).
        Raises TerminalError at a change the policy says to stop at, or one
        the target cannot follow."""
        steps: list[Step] = []
        present = dict(columns)
        for schema in schemas:
            if not schema.changes or schema.fingerprint in self._seen:
                continue
            for change in schema.changes:
                step = self._step(target, schema, change.kind, change.column, change.previous,
                                  change.ddl, present, target_type)  # fmt: skip
                if step is not None:
                    steps.append(step)
                    _track(step, present, evolution)
        for schema in schemas:
            for column in schema.columns:
                name = column.name
                if name in present or name in evolution.renamed or name in evolution.skipped:
                    continue
                if not add_missing:
                    raise TerminalError(
                        f"target table {target} lacks {name} of the source table",
                        "add it (`cdc schema` prints the DDL) or set target.create_tables: true",
                    )
                step = self._add(target, schema, column, "", present)
                steps.append(step)
                _track(step, present, evolution)
        return steps

    def follows(self, event: TableEvent) -> bool:
        """Whether the target follows a source TRUNCATE, DROP TABLE or RENAME
        TABLE (logged and counted either way); raises TerminalError where the
        policy says stop."""
        kind = _TABLE_KINDS[event.op]
        action = self.action(kind)
        if action == "stop":
            raise TerminalError(*_stopped(event, kind))
        metrics.SCHEMA_CHANGES.labels(table=event.source, kind=kind, action=action).inc()
        renamed_to = ".".join(event.renamed_to) if event.renamed_to else None
        log.info(
            "schema_change_applied",
            table=event.source,
            kind=kind,
            action=action,
            target=event.name,
            renamed_to=renamed_to,
        )
        return action == "apply"

    @contextmanager
    def undone_on_rollback(self) -> Iterator[None]:
        """Around a target transaction that makes the changes: a rollback
        undoes them (PostgreSQL), so they are planned again."""
        seen = set(self._seen)
        try:
            yield
        except BaseException:
            self._seen = seen
            raise

    def pending(self, schemas: Iterable[TableSchema]) -> bool:
        """Whether a version among `schemas` names changes not planned yet."""
        return any(s.changes and s.fingerprint not in self._seen for s in schemas)

    def planned(self, schemas: Iterable[TableSchema]) -> None:
        """`schemas`' changes are on the target: not planned again in this process."""
        self._seen.update(s.fingerprint for s in schemas if s.changes)

    def _step(
        self,
        target: str,
        schema: TableSchema,
        kind: ChangeKind,
        name: str,
        previous: str,
        ddl: str,
        present: Mapping[str, TargetColumnInfo],
        target_type: Callable[[TableSchema, Column], str],
    ) -> Step | None:
        table = f"{schema.schema}.{schema.table}"
        action = self.action(kind)
        if action == "stop":
            _stop(target, kind, name, ddl)
        if kind == "add_column":
            return self._add(target, schema, schema.column(name), ddl, present)
        if kind == "drop_column":
            info = present.get(name)
            if info is None:
                return None
            if action == "apply":
                return Step(table, kind, name, action, "drop", source_ddl=ddl)
            needs_null = not info.nullable and not info.has_default
            return Step(table, kind, name, action, "drop_not_null" if needs_null else "none",
                        source_ddl=ddl)  # fmt: skip
        if kind == "rename_column":
            if previous not in present or name in present:
                return None
            return Step(table, kind, name, action, "rename", previous, ddl)
        column = schema.column(name)
        info = present.get(name)
        if info is None or action == "ignore" or info.type == target_type(schema, column):
            return Step(table, kind, name, action, "none", previous, ddl)
        return Step(table, kind, name, action, "retype", previous, ddl, column)

    def _add(
        self,
        target: str,
        schema: TableSchema,
        column: Column,
        ddl: str,
        present: Mapping[str, TargetColumnInfo],
    ) -> Step:
        table = f"{schema.schema}.{schema.table}"
        action = self.action("add_column")
        if action == "stop":
            _stop(target, "add_column", column.name, ddl)
        if action == "ignore" or column.name in present:
            return Step(table, "add_column", column.name, action, "none", source_ddl=ddl)
        try:
            fill = fill_of(column, schema.connector)
        except ValueError as exc:
            raise TerminalError(
                f"{table} gained column {column.name} on the source, and {exc}:"
                f" {target} cannot be given the same values from the stream",
                f"add {column.name} to {target} and copy its values from the source by hand,"
                " then start the sink again; or set schema_changes.add_column: ignore",
            ) from None
        return Step(table, "add_column", column.name, action, "add", "", ddl, column, fill)


def _track(step: Step, present: dict[str, TargetColumnInfo], evolution: Evolution) -> None:
    """The target's columns as they will be after `step`."""
    if step.operation == "add":
        present[step.column] = TargetColumnInfo("", True, step.fill is not None)
    elif step.operation == "drop":
        present.pop(step.column, None)
    elif step.operation == "rename":
        present[step.column] = present.pop(step.previous)
    evolution.note(step)


def _stop(target: str, kind: str, column: str, ddl: str) -> None:
    statement = f": {ddl}" if ddl else ""
    raise TerminalError(
        f"schema change on the source ({kind} {column}) for {target}{statement}",
        f"make the change on {target} by hand, then set schema_changes.{kind}: ignore"
        f" (or apply, to let the sink make it) and start the sink again",
    )


def carry_out(
    steps: Sequence[Step],
    schemas: Sequence[TableSchema],
    run: Callable[[TableSchema, Step], str],
) -> None:
    """Make each step on the target (`run`: its DDL, given the schema version
    whose column it is), then log and count it. A "none" step under `apply`
    (another sink process made it) leaves no trace; an ignored one is recorded."""
    by_column = {c.name: s for s in schemas for c in s.columns}
    for step in steps:
        ddl = ""
        if step.operation != "none" or step.action == "ignore":
            ddl = run(by_column.get(step.column, schemas[0]), step)
        counted(step, ddl)


def counted(step: Step, target_ddl: str) -> None:
    """Log and count a step the target has taken."""
    metrics.SCHEMA_CHANGES.labels(table=step.table, kind=step.kind, action=step.action).inc()
    log.info(
        "schema_change_applied",
        table=step.table,
        kind=step.kind,
        column=step.column,
        previous=step.previous or None,
        action=step.action,
        source_ddl=step.source_ddl or None,
        target_ddl=target_ddl or None,
    )


def upgrade(batch: TableBatch, evolution: Evolution) -> None:
    """Rows of an older schema version, written after the target followed a
    newer one: renamed columns under their new names, dropped ones left out."""
    renamed, skipped = evolution.renamed, evolution.skipped
    upgraded: dict[int, TableSchema] = {}
    for state in batch.keys.values():
        schema = state.schema
        if not evolution.affects(schema):
            continue
        new = upgraded.get(id(schema))
        if new is None:
            columns = tuple(
                replace(c, name=renamed.get(c.name, c.name))
                for c in schema.columns
                if c.name not in skipped
            )
            key = tuple(renamed.get(k, k) for k in schema.key)
            new = upgraded[id(schema)] = replace(schema, columns=columns, key=key, changes=())
        state.schema = new
        if state.row is not None:
            state.row = {renamed.get(n, n): v for n, v in state.row.items() if n not in skipped}
