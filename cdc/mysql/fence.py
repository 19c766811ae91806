"""The write fence of a MySQL/MariaDB server.

`SET GLOBAL read_only = ON`, and `super_read_only` where the server has it
(MySQL). It is server-wide, not per database, and users with SUPER (MySQL) or
READ ONLY ADMIN (MariaDB 10.11, part of ALL PRIVILEGES) are not held by
read_only: applications must use accounts without them.
"""

from __future__ import annotations

from typing import Any


def fence(cur: Any) -> None:
    cur.execute("SET GLOBAL read_only = ON")
    if _has_super_read_only(cur):
        cur.execute("SET GLOBAL super_read_only = ON")


def unfence(cur: Any) -> None:
    if _has_super_read_only(cur):
        cur.execute("SET GLOBAL super_read_only = OFF")
    cur.execute("SET GLOBAL read_only = OFF")


def is_fenced(cur: Any) -> bool:
    cur.execute("SELECT @@GLOBAL.read_only AS r")
    found = cur.fetchone()
    return bool(found and int(found["r"]))


def _has_super_read_only(cur: Any) -> bool:
    cur.execute("SHOW GLOBAL VARIABLES LIKE 'super_read_only'")
    return cur.fetchone() is not None
