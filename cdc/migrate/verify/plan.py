"""Which target table and columns hold each source table's rows, through the transforms.

The sink writes a source table `schema.table` to the target table of the same names (as
the target engine places them: `Engine.target_table`) unless `rename_table` or `route`
sends it elsewhere; `rename_column` renames and `columns` leaves columns out, and both
are followed here, so such a table still verifies. Any other transform that applies to
a table (filter, mask, cast, add_column, python) changes its rows on purpose: the table
is reported as not verifiable, with that reason, rather than as different.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cdc.changes import Change
from cdc.engine import Sides
from cdc.engine.cutover import TableName
from cdc.events import Op
from cdc.schemas import Column, TableSchema
from cdc.settings import Settings
from transforms.base import SchemaError, Transform
from transforms.columns import Columns
from transforms.rename_column import RenameColumn
from transforms.rename_table import RenameTable
from transforms.route import Route


@dataclass
class TablePlan:
    source: tuple[str, str]
    target: tuple[str, str]
    columns: list[tuple[str, str]] = field(default_factory=list)  # (source name, target name)
    key: tuple[str, ...] = ()  # source names; none: the table has no primary key
    not_verifiable: str = ""  # the reason, when it cannot be compared

    @property
    def name(self) -> str:
        return ".".join(self.source)


def plan_table(
    settings: Settings,
    sides: Sides,
    transforms: list[Transform],
    source: TableName,
    columns: tuple[str, ...],
    key: tuple[str, ...],
) -> TablePlan:
    """Where `source` (with these columns and primary key) lands on the target."""
    schema = TableSchema(
        sides.source.name, *source, tuple(Column(name, "") for name in columns), key
    )
    plan = TablePlan(source, source, key=key)  # no key: compared as multisets (`verify.multiset`)
    names = [(name, name) for name in columns]  # (source name, current name)
    for index, transform in enumerate(transforms):
        kind = settings.transforms[index].type
        try:
            if isinstance(transform, RenameTable | Route):
                continue  # they only name the target: target_table
            if isinstance(transform, RenameColumn | Columns):
                renamed = transform.schema(schema)
                kept = renamed.column_names
                if isinstance(transform, RenameColumn):
                    names = [(s, n) for (s, _), n in zip(names, kept, strict=True)]
                else:
                    names = [(s, n) for s, n in names if n in kept]
                schema = renamed
                continue
        except SchemaError as exc:
            plan.not_verifiable = f"transforms[{index}] ({kind}) does not fit it: {exc.message}"
            return plan
        selector = getattr(transform, "tables", None)
        if selector is None:
            plan.not_verifiable = f"transforms[{index}] ({kind}) may change the rows of any table"
            return plan
        if selector.matches(schema):
            plan.not_verifiable = f"transforms[{index}] ({kind}) changes its rows on the way"
            return plan
    plan.target = target_table(sides, transforms, source)
    plan.columns = names
    return plan


def target_table(sides: Sides, transforms: list[Transform], source: TableName) -> TableName:
    """The target table the sink writes `source`'s rows to: the same names unless
    `rename_table` or `route` sends them elsewhere, placed as the target engine does."""
    schema = TableSchema(sides.source.name, *source, (), ())
    change = Change(Op.READ, schema, source, None, None, None, (), 0, "", 0, 0)
    for transform in transforms:
        if isinstance(transform, RenameTable | Route):
            change = transform.apply(change) or change
    return sides.target.target_table(*change.target)
