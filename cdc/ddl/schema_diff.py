"""How a table's new version differs from the one its source published
before it: the `ColumnChange`s a sink replays on the target.

The engine says which columns were renamed (PostgreSQL by the column's
number, MySQL from the ALTER statement); everything else follows from the
two column lists. A rename is never a drop and an add: the target column
keeps its data.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from cdc.ddl import defaults
from cdc.schemas import Column, ColumnChange, TableSchema


def changes_between(
    previous: TableSchema, current: TableSchema, renamed: Mapping[str, str], ddl: str = ""
) -> tuple[ColumnChange, ...]:
    """`renamed`: old name -> new name, as the engine knows it."""
    old = {c.name: c for c in previous.columns}
    new = {c.name: c for c in current.columns}
    found = [
        ColumnChange("rename_column", after, before, ddl)
        for before, after in renamed.items()
        if before in old and after in new and before not in new and after not in old
    ]
    old_name = {c.column: c.previous for c in found}
    gone = set(old_name.values())
    found += [
        ColumnChange("drop_column", n, ddl=ddl) for n in old if n not in new and n not in gone
    ]
    for name, column in new.items():
        before = old.get(old_name.get(name, name))
        if before is None:
            found.append(ColumnChange("add_column", name, ddl=ddl))
        elif before.type != column.type:
            found.append(ColumnChange("alter_column_type", name, before.type, ddl))
    return tuple(found)


def next_version(
    previous: TableSchema | None,
    current: TableSchema,
    renamed: Mapping[str, str],
    ddl: str = "",
) -> TableSchema:
    """`current` with its changes from `previous` (none known: as it is)."""
    if previous is None:
        return current
    changes = changes_between(previous, current, renamed, ddl)
    return replace(current, changes=changes) if changes else current


def fill_of(column: Column, connector: str) -> defaults.Default | None:
    """What the rows that existed when `column` was added hold: its fill, or
    else its constant default (an ADD COLUMN gives it to every row), or NULL
    (None). Raises ValueError when only the source knows: a volatile default
    gave each row its own value, and the stream did not carry them."""
    for expression in (column.fill, column.default):
        if expression is None:
            continue
        parsed = defaults.parse(expression, connector)
        if parsed is not None and parsed.kind not in ("now", "today"):
            return parsed
        if expression is column.default:
            raise ValueError(f"DEFAULT {expression} gave each source row its own value")
    return None


def copied_fills(schema: TableSchema) -> tuple[TableSchema, bool]:
    """`schema` for a source that can copy a table again in its stream: a
    column added with values only the source knows (a volatile default)
    fills with NULL, and the table's rows follow with them. Whether a copy is
    needed."""
    added = {c.column for c in schema.changes if c.kind == "add_column"}
    unknown = {c.name for c in schema.columns if c.name in added and not _known_fill(c, schema)}
    if not unknown:
        return schema, False
    columns = tuple(replace(c, fill="NULL") if c.name in unknown else c for c in schema.columns)
    return replace(schema, columns=columns), True


def _known_fill(column: Column, schema: TableSchema) -> bool:
    try:
        fill_of(column, schema.connector)
    except ValueError:
        return False
    return True
