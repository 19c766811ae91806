"""Column defaults across engines: a source expression is read into an
engine-neutral form (a literal, the current time or date) and written in the
target's syntax. Anything else (function calls, sequences) has no safe
translation: the caller drops it with a warning."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

Kind = Literal["number", "string", "boolean", "null", "now", "today"]


@dataclass(frozen=True, slots=True)
class Default:
    kind: Kind
    value: str = ""  # the number's text, the string itself, "true"/"false"


_NUMBER = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
# pg_get_expr: 42, (-1), 'abc'::text, '0'::numeric, NULL::character varying, true
_PG_LITERAL = re.compile(
    rf"\(?(?P<lit>'(?:[^']|'')*'|{_NUMBER}|true|false|null)\)?(?:::[^:']+)*", re.IGNORECASE
)
# MariaDB's COLUMN_DEFAULT: 42, 'abc' (quotes doubled, backslashes escaped), NULL
_MYSQL_LITERAL = re.compile(
    rf"(?P<lit>'(?:[^'\\]|''|\\.)*'|{_NUMBER}|true|false|null)", re.IGNORECASE
)
_NOW = re.compile(
    r"now\(\)|current_timestamp(?:\(\d?\))?|localtimestamp(?:\(\d?\))?"
    r"|transaction_timestamp\(\)|statement_timestamp\(\)",
    re.IGNORECASE,
)
_TODAY = re.compile(r"current_date(?:\(\))?|curdate\(\)", re.IGNORECASE)
_MYSQL_ESCAPES = re.compile(r"\\(.)")
_MYSQL_ESCAPED = {"n": "\n", "t": "\t", "r": "\r", "0": "\0", "Z": "\x1a"}


def _literal(text: str, mysql: bool) -> Default:
    lower = text.lower()
    if lower == "null":
        return Default("null")
    if lower in ("true", "false"):
        return Default("boolean", lower)
    if not text.startswith("'"):
        return Default("number", text)
    inner = text[1:-1].replace("''", "'")
    if mysql:
        inner = _MYSQL_ESCAPES.sub(lambda m: _MYSQL_ESCAPED.get(m.group(1), m.group(1)), inner)
    return Default("string", inner)


def parse(expression: str, engine: str) -> Default | None:
    """The neutral form of a source default (`engine`: "postgresql" or "mysql"),
    or None when it is not a literal, the time or the date."""
    text = expression.strip()
    if _NOW.fullmatch(text):
        return Default("now")
    if _TODAY.fullmatch(text):
        return Default("today")
    found = (_MYSQL_LITERAL if engine == "mysql" else _PG_LITERAL).fullmatch(text)
    return _literal(found.group("lit"), engine == "mysql") if found else None


def postgres(default: Default) -> str:
    """`default` as a PostgreSQL DEFAULT expression."""
    if default.kind == "string":
        return "'" + default.value.replace("'", "''") + "'"
    if default.kind == "now":
        return "CURRENT_TIMESTAMP"
    if default.kind == "today":
        return "CURRENT_DATE"
    if default.kind == "null":
        return "NULL"
    return default.value


_FSP = re.compile(r"(?:DATETIME|TIMESTAMP)(?:\((\d)\))?")
# MySQL takes a literal default only for these; others take an (expression)
_EXPRESSION_ONLY = ("LONGTEXT", "TEXT", "TINYTEXT", "MEDIUMTEXT", "JSON", "LONGBLOB", "BLOB")


def mysql(default: Default, column_type: str) -> str | None:
    """`default` as a MySQL DEFAULT for a column of `column_type`, or None when
    MySQL has no such default for that type (the time on a non-time column)."""
    if default.kind == "now":
        found = _FSP.match(column_type)
        if not found:
            return None
        # MySQL wants the default's precision equal to the column's
        return f"CURRENT_TIMESTAMP({found.group(1)})" if found.group(1) else "CURRENT_TIMESTAMP"
    if default.kind == "today":
        return "(CURDATE())"
    if default.kind == "null":
        return "NULL"
    if default.kind == "boolean":
        return "1" if default.value == "true" else "0"
    if default.kind == "number":
        return default.value
    quoted = "'" + default.value.replace("\\", "\\\\").replace("'", "''") + "'"
    return f"({quoted})" if column_type.startswith(_EXPRESSION_ONLY) else quoted
