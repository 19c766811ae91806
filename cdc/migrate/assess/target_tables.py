"""`cdc assess` of the target tables that exist already: do their columns
take what the source sends? The same comparison as `cdc schema --apply`
(the target parses the DDL `cdc schema` makes into a scratch table, so types
are compared in its own spelling), sorted by what it means for the sink:

- a column of another kind of type (text where the source has integers, a
  number where it has timestamps): the sink's writes fail or change the
  values. A blocker.
- the same kind at another size or precision (varchar(50) for text, integer
  for bigint), or NOT NULL where the source allows NULL: some values may not
  fit. A warning.
- a column the target lacks: the sink adds it under target.create_tables,
  else a blocker.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from cdc.ddl.model import Statement
from cdc.engine.assessment import Assessment
from cdc.engine.schema import ColumnShape, TargetCatalog

FIX = (
    "alter the target table to what `cdc schema` prints for it, or drop it and let"
    " `cdc schema --apply` create it"
)
# kinds of types whose values convert into each other without loss of meaning
_KINDS = (
    ("number", r"(small|big|tiny|medium)?int|integer|serial|numeric|decimal|real|double|float"),
    ("text", r"text|character|varchar|char|longtext|mediumtext|tinytext|enum|set|citext"),
    ("time", r"timestamp|datetime|date|time|interval|year"),
    ("bytes", r"bytea|blob|binary|varbinary|longblob|mediumblob|tinyblob"),
    ("boolean", r"bool"),
    ("json", r"jsonb?"),
    ("uuid", r"uuid"),
)


def kind_of(type_name: str) -> str:
    """The kind of a type as a target spells it (`character varying(50)`, `bigint`)."""
    name = type_name.lower().strip()
    for kind, pattern in _KINDS:
        if re.match(rf"(?:{pattern})\b", name):
            return kind
    return name


def check_existing(
    catalog: TargetCatalog,
    statements: Iterable[Statement],
    create_tables: bool,
    report: Assessment,
) -> None:
    """Report each existing target table whose columns differ from what the
    source needs."""
    for statement in statements:
        if statement.kind != "table" or not catalog.exists(statement):
            continue
        expected = catalog.probe(statement)
        found = {name: (kind, nullable) for name, kind, nullable in catalog.columns(
            statement.schema, statement.table
        )}  # fmt: skip
        table = f"{statement.schema}.{statement.table}"
        for name, kind, nullable in expected:
            _column(table, (name, kind, nullable), found.get(name), create_tables, report)


def _column(
    table: str,
    expected: ColumnShape,
    found: tuple[str, bool] | None,
    create_tables: bool,
    report: Assessment,
) -> None:
    name, kind, nullable = expected
    if found is None:
        if not create_tables:
            report.add(
                "target",
                "table columns",
                "blocker",
                f"{table} lacks column {name} ({kind})",
                "add it, or set target.create_tables: true (the sink then adds it)",
            )
        return
    found_kind, found_nullable = found
    if kind_of(found_kind) != kind_of(kind):
        report.add(
            "target",
            "table columns",
            "blocker",
            f"{table}.{name} is {found_kind} on the target, where the source's values need"
            f" {kind}: the sink's writes would fail or change them",
            FIX,
        )
    elif found_kind != kind:
        report.add(
            "target",
            "table columns",
            "warning",
            f"{table}.{name} is {found_kind} on the target, {kind} from the source:"
            " values that do not fit become dead letters",
            FIX,
        )
    if nullable and not found_nullable:
        report.add(
            "target",
            "table columns",
            "warning",
            f"{table}.{name} is NOT NULL on the target, nullable on the source: a row"
            " with NULL there becomes a dead letter",
            FIX,
        )
