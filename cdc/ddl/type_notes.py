"""What a column's type becomes on the other engine when that is not the
same thing: a warning says what changes, a problem that the target has no
real equivalent (the values travel as text)."""

from __future__ import annotations

import re

from cdc.ddl.model import Notes, Severity, TableDef
from cdc.schemas import Column

_TEXTY_PG = re.compile(r"text|character varying.*|character.*|xml|citext|name|\"?char\"?")
_PG_NUMERIC = re.compile(r"numeric(?:\((\d+),(-?\d+)\))?")
_MYSQL_TO_PG = {
    "year": "YEAR becomes smallint",
    "set": "SET becomes text[] (its labels, sorted)",
    "enum": "ENUM becomes text with a CHECK of its labels",
    "bit": "BIT becomes bytea (the bits as bytes)",
    "geometry": "geometry becomes bytea (SRID + WKB)",
}
_ON_UPDATE_FIX = {
    # the sink's session runs with session_replication_role = replica: no trigger fires
    # for what it applies, so the trigger can exist before the cut-over
    "postgresql": "a BEFORE UPDATE trigger that sets it to CURRENT_TIMESTAMP does"
    " (the sink's session does not fire triggers: create it any time)",
    "mysql": "add ON UPDATE CURRENT_TIMESTAMP to the column once the cut-over is done"
    " (ALTER TABLE ... MODIFY)",
}
_PG_TO_MYSQL = {
    "boolean": "boolean becomes TINYINT(1) (0/1)",
    "interval": "interval becomes VARCHAR(64) holding its ISO-8601 text",
    "inet": "inet becomes VARCHAR(43) holding its text",
    "cidr": "cidr becomes VARCHAR(43) holding its text",
}


def _pg_target(column: Column, connector: str, target_type: str) -> tuple[Severity, str] | None:
    name = column.type
    if connector == "postgresql":
        if target_type != "text" or name == "text":
            return None
        kind = column.extra.get("kind", "b")
        if kind == "d":
            return "warning", f"domain {name} becomes text (its constraints are not carried)"
        if kind == "e":
            return "warning", f"enum {name} becomes text"
        return "problem", f"{name} has no equivalent: its text form is stored as text"
    if name.startswith("time("):
        return "warning", "MySQL TIME (a duration up to ±838 hours) becomes interval"
    if name.endswith(" unsigned"):
        return "warning", f"{name} becomes {target_type} with CHECK (>= 0)"
    if name in _MYSQL_TO_PG:
        return "warning", _MYSQL_TO_PG[name]
    if name.startswith("type "):
        return "problem", f"unknown MySQL {name}: its text form is stored as text"
    return None


def _mysql_target(
    column: Column, connector: str, target_type: str, key: bool
) -> tuple[Severity, str] | None:
    name = column.type
    if target_type.startswith("VARCHAR(255) CHARACTER SET") and key:
        return "warning", "a text key becomes VARCHAR(255): longer values are refused"
    if connector == "mysql":
        if name.startswith("timestamp("):
            return "warning", "TIMESTAMP becomes DATETIME holding UTC (no 2038 limit)"
        return None
    if name.endswith("]"):
        return "warning", f"{name} becomes JSON (an array)"
    if name.startswith("timestamp") and "with time zone" in name:
        return "warning", f"{name} becomes {target_type} holding UTC (the offset is not kept)"
    if name.startswith("time") and "with time zone" in name:
        return "warning", f"{name} becomes {target_type} holding its text"
    numeric = _PG_NUMERIC.fullmatch(name)
    if numeric and target_type != name.upper().replace("NUMERIC", "DECIMAL"):
        return "warning", f"{name} becomes {target_type} (values beyond it are refused)"
    base = name.split("(", maxsplit=1)[0]
    if base in _PG_TO_MYSQL:
        return "warning", _PG_TO_MYSQL[base]
    if target_type != "LONGTEXT" or _TEXTY_PG.fullmatch(name):
        return None
    kind = column.extra.get("kind", "b")
    if kind == "d":
        return "warning", f"domain {name} becomes LONGTEXT (its constraints are not carried)"
    if kind == "e":
        return "warning", f"enum {name} becomes LONGTEXT"
    return "problem", f"{name} has no MySQL equivalent: its text form is stored as LONGTEXT"


def type_note(
    column: Column, connector: str, engine: str, target_type: str, key: bool = False
) -> tuple[Severity, str] | None:
    """The note for a `connector` source column that becomes `target_type` on
    an `engine` ("postgresql" or "mysql") target, or None when it maps cleanly."""
    if engine == "postgresql":
        return _pg_target(column, connector, target_type)
    return _mysql_target(column, connector, target_type, key)


def on_update_comment(table: TableDef, engine: str, notes: Notes) -> str:
    """A warning for each MySQL `ON UPDATE CURRENT_TIMESTAMP` column of `table`, which
    the target DDL does not reproduce; the lines naming them for the DDL's comment."""
    lines = []
    for column in sorted(table.on_update_now):
        message = (
            "ON UPDATE CURRENT_TIMESTAMP is not reproduced: the column gets the source's"
            " values, but an UPDATE made on the target leaves it as it was;"
            f" {_ON_UPDATE_FIX[engine]}"
        )
        notes.warn(table, column, message)
        lines.append(f"{table.qualified}.{column}: {message}")
    return "\n".join(lines)
