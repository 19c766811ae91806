"""`source.tables` against the tables the source really has.

A listed table that does not exist would otherwise be skipped without a word:
`cdc run` streams the others and the table's rows never arrive. So a listed
name that matches no table is an error at start (with the closest names the
source has: usually a typo or the wrong case), and an include pattern that
matches nothing is a warning (a pattern may wait for tables still to come).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass, field
from fnmatch import fnmatchcase

import structlog

from cdc.errors import TerminalError
from cdc.settings_names import TableFilter, Tables

log = structlog.get_logger(__name__)

CLOSEST = 3  # suggestions per missing name


@dataclass(frozen=True)
class Selection:
    """What `source.tables` names that the source does not have."""

    missing: dict[str, list[str]] = field(default_factory=dict)  # listed name -> closest
    unmatched: list[str] = field(default_factory=list)  # include patterns matching no table

    def describe_missing(self) -> str:
        return "; ".join(
            f"{name} (closest: {', '.join(close)})" if close else name
            for name, close in self.missing.items()
        )

    def enforce(self) -> None:
        """At start: stop on a missing table, warn of each pattern matching nothing."""
        if self.missing:
            raise self.error()
        for pattern in self.unmatched:
            log.warning(
                "tables_pattern_matches_nothing",
                pattern=pattern,
                fix="check the pattern in source.tables.include (schema.table; MySQL:"
                " database.table)",
            )

    def error(self) -> TerminalError:
        return TerminalError(
            f"source.tables names tables the source does not have: {self.describe_missing()}",
            "correct the names in source.tables (schema.table; MySQL: database.table, the case"
            " as the server shows it), create the tables first, or grant the source user"
            " SELECT on them (MySQL lists only the tables a user may read)",
        )


def check_selection(tables: Tables, existing: Iterable[tuple[str, str]]) -> Selection:
    """Compare `tables` (a list of names or include/exclude patterns) with the
    source's (schema, table) pairs."""
    names = [f"{schema}.{table}" for schema, table in existing]
    if isinstance(tables, TableFilter):
        unmatched = [p for p in tables.include if not any(fnmatchcase(n, p) for n in names)]
        return Selection(unmatched=unmatched)
    have = set(names)
    return Selection(missing={name: _closest(name, names) for name in tables if name not in have})


def _closest(name: str, names: list[str]) -> list[str]:
    """The same name in another case first (PostgreSQL folds unquoted names to lower
    case, MySQL may not), then the most similar spellings."""
    same_letters = [n for n in names if n.lower() == name.lower()]
    similar = difflib.get_close_matches(name, names, n=CLOSEST)
    return list(dict.fromkeys(same_letters + similar))[:CLOSEST]
