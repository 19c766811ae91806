"""`cdc schema --apply`: create what the target lacks, compare what it has.

Idempotent: every statement first asks the target whether its object exists.
An existing table is never dropped or altered: its columns are compared with
what the DDL would create (the target itself parses the DDL into a scratch
table, so types are compared in the target's own spelling) and differences
are reported."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from cdc.ddl.model import Statement
from cdc.engine.schema import ColumnShape, TargetCatalog


@dataclass(frozen=True, slots=True)
class Outcome:
    statement: Statement
    action: Literal["created", "exists", "differs", "failed"]
    details: list[str] = field(default_factory=list)


def compare(expected: list[ColumnShape], found: list[ColumnShape]) -> list[str]:
    """How an existing table differs from what the DDL would create."""
    have = {name: (kind, nullable) for name, kind, nullable in found}
    differences = []
    for name, kind, nullable in expected:
        if name not in have:
            differences.append(f"column {name} is missing (expected {kind})")
            continue
        found_kind, found_nullable = have.pop(name)
        if found_kind != kind:
            differences.append(f"column {name} is {found_kind}, expected {kind}")
        if found_nullable != nullable:
            wanted = "nullable" if nullable else "NOT NULL"
            differences.append(
                f"column {name} is {'not ' if nullable else ''}nullable, expected {wanted}"
            )
    differences += [f"column {name} is not in the source" for name in have]
    return differences


def apply(
    target: TargetCatalog, statements: Iterable[Statement], errors: tuple[type[Exception], ...]
) -> list[Outcome]:
    """Run each statement whose object the target lacks. A statement the
    target refuses (`errors`: its driver's) is reported; the others still run."""
    outcomes = []
    for statement in statements:
        try:
            if not target.exists(statement):
                target.execute(statement)
                outcomes.append(Outcome(statement, "created"))
            elif statement.kind == "table":
                expected = target.probe(statement)
                found = target.columns(statement.schema, statement.table)
                differences = compare(expected, found)
                outcomes.append(
                    Outcome(statement, "differs" if differences else "exists", differences)
                )
            else:
                outcomes.append(Outcome(statement, "exists"))
        except errors as exc:
            outcomes.append(Outcome(statement, "failed", [str(exc).strip()]))
    return outcomes
