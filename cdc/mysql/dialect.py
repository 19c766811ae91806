"""MySQL/MariaDB identifier quoting, the one every statement cdc writes uses."""

from __future__ import annotations


def quote(name: str) -> str:
    """`name` as a quoted identifier: backticks, a backtick inside doubled
    (whatever the server's ANSI_QUOTES)."""
    return "`" + name.replace("`", "``") + "`"


def qualified(database: str, table: str) -> str:
    """`database`.`table`, each part quoted."""
    return f"{quote(database)}.{quote(table)}"
