"""The collation of text key columns on a MySQL/MariaDB target, by the server's
VERSION(): binary and NO PAD, so 'a' and 'a ' are two keys, as in PostgreSQL."""

from __future__ import annotations

import re

_VERSION = re.compile(r"(\d+)\.(\d+)\.(\d+)")


def version_numbers(version: str) -> tuple[int, ...]:
    """(major, minor, patch) of a VERSION() text; zeros when it has none."""
    found = _VERSION.match(version)
    return tuple(int(n) for n in found.groups()) if found else (0, 0, 0)


def key_collation(version: str) -> str:
    if "mariadb" in version.lower():
        return "utf8mb4_nopad_bin"
    return "utf8mb4_0900_bin" if version_numbers(version) >= (8, 0, 0) else "utf8mb4_bin"
