"""A database that refuses the login or a privilege: terminal, not retried.

A wrong password or a missing grant does not heal by waiting, and a daemon
that retries it forever only hides it behind a reconnect counter. The
process stops with one line naming the refusal and the fix; systemd's or
Kubernetes' restart policy takes it from there once the grant is fixed.
"""

from __future__ import annotations

import psycopg
import pymysql

from cdc.errors import TerminalError

# ER_DBACCESS_DENIED, ER_ACCESS_DENIED, ER_TABLEACCESS_DENIED, ER_COLUMNACCESS_DENIED,
# ER_SPECIFIC_ACCESS_DENIED (needs a privilege such as REPLICATION SLAVE)
_MYSQL_REFUSALS = {1044, 1045, 1142, 1143, 1227}
# invalid_authorization_specification, invalid_password, insufficient_privilege
_PG_REFUSALS = {"28000", "28P01", "42501"}
# libpq reports a refused login before any session exists: no SQLSTATE, only its text
_PG_LOGIN_TEXTS = ("password authentication failed", "no pg_hba.conf entry")

_FIX = "fix the credentials, or grant what the README's section 'Least-privilege roles' lists"


def refusal(error: BaseException) -> TerminalError | None:
    """The terminal error `error` stands for, or None if it may be transient."""
    if isinstance(error, pymysql.err.MySQLError):
        code = error.args[0] if error.args else None
        if code in _MYSQL_REFUSALS:
            return TerminalError(f"MySQL refused access: {error.args[1]}", _FIX)
        return None
    if isinstance(error, psycopg.Error):
        text = str(error).strip()
        if error.sqlstate in _PG_REFUSALS or any(t in text for t in _PG_LOGIN_TEXTS):
            return TerminalError(f"PostgreSQL refused access: {text.splitlines()[-1]}", _FIX)
    return None
