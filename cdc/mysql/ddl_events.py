"""What the DDL statements read from the binlog change: the table a CREATE
TABLE makes, the columns an ALTER TABLE renames.

The binlog's rows carry the new column list after an ALTER, which tells
added, dropped and retyped columns apart; only a rename needs the statement
(without it, a renamed column would look dropped and another added). The
statement is written by applications, so this reads what they write:
comments, several clauses, backquoted names, `IF [NOT] EXISTS`,
`ALGORITHM=...`, `FIRST`/`AFTER`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_COMMENT = re.compile(r"/\*(?!!).*?\*/|--[ \t][^\n]*|#[^\n]*", re.DOTALL)
# MySQL's executable comments /*!50100 ... */ hold statement text: keep it
_EXECUTABLE = re.compile(r"/\*!\d*(.*?)\*/", re.DOTALL)
_NAME = r"(?:`(?:[^`]|``)+`|[\w$]+)"
_ALTER = re.compile(
    rf"\s*ALTER\s+(?:ONLINE\s+)?(?:IGNORE\s+)?TABLE\s+(?:IF\s+EXISTS\s+)?"
    rf"(?:(?P<db>{_NAME})\s*\.\s*)?(?P<table>{_NAME})(?P<rest>.*)",
    re.IGNORECASE | re.DOTALL,
)
_CREATE = re.compile(
    rf"\s*CREATE\s+(?:OR\s+REPLACE\s+)?TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?"
    rf"(?:(?P<db>{_NAME})\s*\.\s*)?(?P<table>{_NAME})",
    re.IGNORECASE,
)
_RENAME_COLUMN = re.compile(
    rf"\s*RENAME\s+COLUMN\s+(?:IF\s+EXISTS\s+)?(?P<old>{_NAME})\s+TO\s+(?P<new>{_NAME})",
    re.IGNORECASE,
)
_CHANGE = re.compile(
    rf"\s*CHANGE\s+(?:COLUMN\s+)?(?:IF\s+EXISTS\s+)?(?P<old>{_NAME})\s+(?P<new>{_NAME})\s",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class AlterTable:
    database: str
    table: str
    renamed: dict[str, str] = field(default_factory=dict)  # old column name -> new


def _unquote(name: str) -> str:
    return name[1:-1].replace("``", "`") if name.startswith("`") else name


def clauses(text: str) -> list[str]:
    """`text` split at the commas outside parentheses and quotes."""
    out: list[str] = []
    depth, start, quote = 0, 0, ""
    for i, char in enumerate(text):
        if quote:
            if char == quote:
                quote = ""
        elif char in "'\"`":
            quote = char
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "," and depth == 0:
            out.append(text[start:i])
            start = i + 1
    out.append(text[start:])
    return out


def _statement(query: str) -> str:
    return _EXECUTABLE.sub(r" \1 ", _COMMENT.sub(" ", query))


def parse_create(query: str, database: str) -> tuple[str, str] | None:
    """(database, table) a CREATE TABLE makes; None: not a CREATE TABLE.
    `database`: the statement's default database."""
    found = _CREATE.match(_statement(query))
    if found is None:
        return None
    db = found.group("db")
    return (_unquote(db) if db else database, _unquote(found.group("table")))


def parse_alter(query: str, database: str) -> AlterTable | None:
    """The table an ALTER TABLE changes and the columns it renames; None: not
    an ALTER TABLE. `database`: the statement's default database."""
    found = _ALTER.fullmatch(_statement(query))
    if found is None:
        return None
    renamed = {}
    for clause in clauses(found.group("rest")):
        match = _RENAME_COLUMN.match(clause) or _CHANGE.match(clause + " ")
        if match is not None:
            old, new = _unquote(match.group("old")), _unquote(match.group("new"))
            if old != new:
                renamed[old] = new
    db = found.group("db")
    return AlterTable(_unquote(db) if db else database, _unquote(found.group("table")), renamed)
