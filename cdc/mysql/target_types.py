"""Source column types on a MySQL/MariaDB target: the DDL type (for
`create_tables: true` and `cdc schema`). How a wire value is sent for the type
the target column actually has is `cdc.mysql.target_values`.

| PostgreSQL source               | MySQL/MariaDB target                                   |
|---------------------------------|--------------------------------------------------------|
| smallint / integer / bigint     | SMALLINT / INT / BIGINT                                |
| numeric(p,s)                    | DECIMAL(p,s); past MySQL's limits DECIMAL(65,min(s,30)) |
| numeric                         | DECIMAL(65,30)                                         |
| real / double precision         | FLOAT / DOUBLE (no NaN, Infinity: those are dead letters) |
| boolean                         | TINYINT(1)                                             |
| text                            | LONGTEXT                                               |
| varchar(n) / char(n)            | VARCHAR(n) / CHAR(n) up to 255, else LONGTEXT          |
| bytea                           | LONGBLOB                                               |
| date                            | DATE                                                   |
| timestamp(n)                    | DATETIME(n)                                            |
| timestamptz(n)                  | DATETIME(n) holding UTC (TIMESTAMP ends in 2038)       |
| time(n)                         | TIME(n); bare time: TIME(6)                            |
| timetz                          | VARCHAR(32): "12:00:00.000000+02:00"                   |
| interval                        | VARCHAR(64): the ISO-8601 wire text "P1DT2H3M4.000005S" |
| uuid                            | CHAR(36) ascii                                         |
| json, jsonb, arrays             | JSON                                                   |
| inet, cidr                      | VARCHAR(43)                                            |
| enums with known labels (`cdc schema`) | ENUM('a','b')                                   |
| enums, domains, anything else   | LONGTEXT                                               |

A MySQL/MariaDB source keeps its types, except: timestamp(n) becomes
DATETIME(n) holding UTC (no 2038 limit, no implicit ON UPDATE); char and
varchar (the binlog does not carry their length) become LONGTEXT (`cdc
schema`, reading the catalog, keeps CHAR(n) and VARCHAR(n)); binary and
varbinary LONGBLOB; bit BIT(64) (its width is not on the wire either).

Key columns: MySQL indexes neither LONGTEXT nor LONGBLOB whole, so text keys
become VARCHAR(255) (or their declared VARCHAR(n)) and byte keys
VARBINARY(255). Text keys get a binary no-pad collation so that keys
PostgreSQL tells apart ('a', 'A', 'a ') stay distinct rows; other text
columns take the table's utf8mb4 default collation.
"""

from __future__ import annotations

import re

from cdc.schemas import Column

_PG_TYPES = {
    "smallint": "SMALLINT",
    "integer": "INT",
    "bigint": "BIGINT",
    "real": "FLOAT",
    "double precision": "DOUBLE",
    "boolean": "TINYINT(1)",
    "text": "LONGTEXT",
    "bytea": "LONGBLOB",
    "date": "DATE",
    "uuid": "CHAR(36) CHARACTER SET ascii COLLATE ascii_bin",
    "json": "JSON",
    "jsonb": "JSON",
    "inet": "VARCHAR(43)",  # an IPv6 address with its /prefix
    "cidr": "VARCHAR(43)",
}
_PG_NUMERIC = re.compile(r"numeric(?:\((\d+),(-?\d+)\))?")
_PG_TEMPORAL = re.compile(r"(timestamp|time)(?:\((\d)\))? with(out)? time zone")
_PG_CHARS = re.compile(r"(character varying|character)(?:\((\d+)\))?")
_MYSQL_SAME = {
    *(
        f"{i}{u}"
        for i in ("tinyint", "smallint", "mediumint", "int", "bigint")
        for u in ("", " unsigned")
    ),
    *("float", "double", "year", "date", "json", "geometry"),
    *(f"{s}{k}" for s in ("tiny", "", "medium", "long") for k in ("text", "blob")),
}
_MYSQL_TEMPORAL = re.compile(r"(datetime|timestamp|time)\((\d)\)")
_MYSQL_CHARS = re.compile(r"(var)?char\(\d+\)")  # from the catalog; the binlog has no length
_TEXT_DDL = ("LONGTEXT", "TEXT", "TINYTEXT", "MEDIUMTEXT", "JSON", "VARCHAR(", "CHAR(")
_BYTES_DDL = ("LONGBLOB", "BLOB", "TINYBLOB", "MEDIUMBLOB")
MAX_KEY_CHARS = 768  # InnoDB indexes at most 3072 bytes: 768 utf8mb4 characters


def _labels(labels: list[str]) -> str:
    return ",".join("'" + v.replace("\\", "\\\\").replace("'", "''") + "'" for v in labels)


def _pg_ddl(column: Column, key: bool) -> str:
    name = column.type
    labels = column.extra.get("labels")
    if column.extra.get("kind") == "e" and labels:
        return f"ENUM({_labels(labels)})"
    if name in _PG_TYPES:
        return _PG_TYPES[name]
    if name.endswith("]"):
        return "JSON"
    if name.startswith("interval"):
        return "VARCHAR(64)"
    numeric = _PG_NUMERIC.fullmatch(name)
    if numeric:
        if numeric.group(1) is None:
            return "DECIMAL(65,30)"
        precision, scale = int(numeric.group(1)), int(numeric.group(2))
        if scale < 0:  # PostgreSQL 15 rounds to tens, hundreds...: whole numbers
            return f"DECIMAL({min(precision - scale, 65)},0)"
        scale = min(scale, 30)  # PostgreSQL 15 allows a scale above the precision
        return f"DECIMAL({max(min(precision, 65), scale)},{scale})"
    temporal = _PG_TEMPORAL.fullmatch(name)
    if temporal:
        kind, fsp, without = temporal.groups()
        if kind == "time" and not without:
            return "VARCHAR(32)"
        return f"{'DATETIME' if kind == 'timestamp' else 'TIME'}({fsp or 6})"
    chars = _PG_CHARS.fullmatch(name)
    if chars and chars.group(2) is not None:
        length = int(chars.group(2))
        limit = MAX_KEY_CHARS if key and chars.group(1) == "character varying" else 255
        kind = "VARCHAR" if chars.group(1) == "character varying" else "CHAR"
        if length <= limit:
            return f"{kind}({length})"
    return "LONGTEXT"


def _mysql_ddl(column: Column) -> str:
    name = column.type
    if name in _MYSQL_SAME:
        return name.upper()
    if name.startswith("decimal") or _MYSQL_CHARS.fullmatch(name):
        return name.upper()
    temporal = _MYSQL_TEMPORAL.fullmatch(name)
    if temporal:
        kind, fsp = temporal.groups()
        return f"{'TIME' if kind == 'time' else 'DATETIME'}({fsp})"
    if name in ("binary", "varbinary"):
        return "LONGBLOB"
    if name == "bit":
        return "BIT(64)"
    labels = column.extra.get("labels")
    if name in ("enum", "set") and labels:
        return f"{name.upper()}({_labels(labels)})"
    return "LONGTEXT"


def mysql_type(column: Column, connector: str, key: bool, key_collation: str) -> str:
    """The target DDL type of a source column (`key`: part of the primary key)."""
    ddl = _pg_ddl(column, key) if connector == "postgresql" else _mysql_ddl(column)
    if not key:
        return ddl
    if ddl.startswith(_BYTES_DDL):
        return "VARBINARY(255)"
    if ddl.startswith(_TEXT_DDL) and "CHARACTER SET" not in ddl:
        sized = ddl if ddl.startswith(("VARCHAR(", "CHAR(")) else "VARCHAR(255)"
        return f"{sized} CHARACTER SET utf8mb4 COLLATE {key_collation}"
    return ddl
