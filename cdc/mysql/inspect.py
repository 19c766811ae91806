"""A MySQL/MariaDB source table as `cdc schema` and `cdc assess` need it: the
stream's schema (`cdc.mysql.schema`) plus what only the catalog knows."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from cdc.ddl.model import ForeignKey, Generated, Index, TableDef
from cdc.mysql.catalog import MyTable
from cdc.mysql.schema import table_schema
from cdc.schemas import Column

_RULES = {"NO ACTION": "", "RESTRICT": "RESTRICT", "CASCADE": "CASCADE", "SET NULL": "SET NULL"}


def _default(raw: Any, extra: str, mariadb: bool) -> str | None:
    """COLUMN_DEFAULT as an expression: MariaDB quotes literals (and says
    'NULL' for a NULL default), MySQL 8 does not and marks expressions."""
    if raw is None:
        return None
    text = str(raw)
    if mariadb:
        return None if text == "NULL" else text
    if "DEFAULT_GENERATED" in extra.upper():
        return text
    return "'" + text.replace("\\", "\\\\").replace("'", "''") + "'"


def _sized(column: Column, data_type: str, length: Any) -> Column:
    # the catalog knows what the binlog does not: the declared length
    if data_type in ("varchar", "char") and length is not None:
        return replace(column, type=f"{data_type}({int(length)})")
    return column


def table_def(cursor: Any, table: MyTable, mariadb: bool) -> TableDef:
    """`cursor`: a DictCursor."""
    schema = table_schema(
        table.schema, table.name, table.columns, table.primary_key, table.defaults
    )
    cursor.execute(
        "SELECT COLUMN_NAME, DATA_TYPE, COLUMN_DEFAULT, EXTRA, GENERATION_EXPRESSION,"
        " CHARACTER_MAXIMUM_LENGTH FROM information_schema.COLUMNS"
        " WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s ORDER BY ORDINAL_POSITION",
        (table.schema, table.name),
    )
    rows = {r["COLUMN_NAME"]: r for r in cursor.fetchall()}
    defaults: dict[str, str] = {}
    identity: set[str] = set()
    on_update_now: set[str] = set()
    generated: list[Generated] = []
    for name, row in rows.items():
        extra = str(row["EXTRA"] or "")
        if "on update" in extra.lower():  # always the current time: MySQL allows no other
            on_update_now.add(name)
        if "GENERATED" in extra.upper() and "DEFAULT_GENERATED" not in extra.upper():
            stored = "STORED" in extra.upper() or "PERSISTENT" in extra.upper()
            generated.append(
                Generated(name, row["DATA_TYPE"], str(row["GENERATION_EXPRESSION"]), stored)
            )
        elif "auto_increment" in extra.lower():
            identity.add(name)
        else:
            default = _default(row["COLUMN_DEFAULT"], extra, mariadb)
            if default is not None:
                defaults[name] = default
    columns = tuple(
        _sized(c, rows[c.name]["DATA_TYPE"].lower(), rows[c.name]["CHARACTER_MAXIMUM_LENGTH"])
        for c in schema.columns
    )
    cursor.execute(
        "SELECT INDEX_NAME, NON_UNIQUE, COLUMN_NAME, INDEX_TYPE FROM information_schema.STATISTICS"
        " WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s AND INDEX_NAME <> 'PRIMARY'"
        " ORDER BY INDEX_NAME, SEQ_IN_INDEX",
        (table.schema, table.name),
    )
    grouped: dict[str, list[dict[str, Any]]] = {}
    for row in cursor.fetchall():
        grouped.setdefault(row["INDEX_NAME"], []).append(row)
    uniques: list[Index] = []
    indexes: list[Index] = []
    for name, parts in grouped.items():
        unique = not int(parts[0]["NON_UNIQUE"])
        names = tuple(p["COLUMN_NAME"] for p in parts)
        if None in names or parts[0]["INDEX_TYPE"] in ("FULLTEXT", "SPATIAL"):
            # functional, full-text and spatial indexes have no portable form
            indexes.append(Index(name, (), unique, f"{parts[0]['INDEX_TYPE']} index"))
        else:
            (uniques if unique else indexes).append(Index(name, names, unique))
    cursor.execute(
        "SELECT k.CONSTRAINT_NAME, k.COLUMN_NAME, k.REFERENCED_TABLE_SCHEMA,"
        " k.REFERENCED_TABLE_NAME, k.REFERENCED_COLUMN_NAME, r.DELETE_RULE, r.UPDATE_RULE"
        " FROM information_schema.KEY_COLUMN_USAGE k"
        " JOIN information_schema.REFERENTIAL_CONSTRAINTS r"
        "   ON r.CONSTRAINT_SCHEMA = k.CONSTRAINT_SCHEMA AND r.CONSTRAINT_NAME = k.CONSTRAINT_NAME"
        "   AND r.TABLE_NAME = k.TABLE_NAME"
        " WHERE k.TABLE_SCHEMA = %s AND k.TABLE_NAME = %s"
        " AND k.REFERENCED_TABLE_NAME IS NOT NULL"
        " ORDER BY k.CONSTRAINT_NAME, k.ORDINAL_POSITION",
        (table.schema, table.name),
    )
    keys: dict[str, list[dict[str, Any]]] = {}
    for row in cursor.fetchall():
        keys.setdefault(row["CONSTRAINT_NAME"], []).append(row)
    foreign_keys = tuple(
        ForeignKey(
            name,
            tuple(p["COLUMN_NAME"] for p in parts),
            parts[0]["REFERENCED_TABLE_SCHEMA"],
            parts[0]["REFERENCED_TABLE_NAME"],
            tuple(p["REFERENCED_COLUMN_NAME"] for p in parts),
            _RULES.get(parts[0]["DELETE_RULE"], ""),
            _RULES.get(parts[0]["UPDATE_RULE"], ""),
        )
        for name, parts in keys.items()
    )
    return TableDef(
        schema=replace(schema, columns=columns),
        primary_key=table.primary_key,
        defaults=defaults,
        identity=frozenset(identity),
        on_update_now=frozenset(on_update_now),
        generated=tuple(generated),
        uniques=tuple(uniques),
        indexes=tuple(indexes),
        foreign_keys=foreign_keys,
    )
