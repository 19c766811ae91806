"""Sessions of cdc's migration steps on a PostgreSQL database.

They carry cdc's application_name and stay read-write, like the stream's own
sessions (`cdc.applied_marks`): a fenced database must still let `cdc cutover`
and `cdc rollback` record and mark what they do. Verify's sessions fix every
setting that changes how a value prints instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg

from cdc.applied_marks import PG_APPLICATION_NAME, PG_READ_WRITE_OPTION
from cdc.secrets import PostgresDsn

# the same output for the same value on every PostgreSQL connection of a verify
VERIFY_OPTIONS = (
    "-c TimeZone=UTC -c DateStyle=ISO -c IntervalStyle=postgres"
    " -c extra_float_digits=1 -c bytea_output=hex"
)


def connect(dsn: PostgresDsn) -> psycopg.Connection[Any]:
    return psycopg.connect(
        dsn.get_secret_value(),
        autocommit=True,
        application_name=PG_APPLICATION_NAME,
        options="-c TimeZone=UTC" + PG_READ_WRITE_OPTION,
    )


def connect_verify(dsn: PostgresDsn) -> psycopg.Connection[Any]:
    return psycopg.connect(dsn.get_secret_value(), autocommit=True, options=VERIFY_OPTIONS)


class PgSession:
    """`cdc.engine.session.Session` over a psycopg connection."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.conn = conn

    def rows(self, query: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        # bytes: the query is built from quoted identifiers, not from a literal
        cur = self.conn.execute(query.encode(), tuple(params))
        return cur.fetchall() if cur.description else []

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> PgSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
