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

from cdc.schemas import ColumnChange, TableSchema


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
