"""One database of the nemesis (a source or a target) on PostgreSQL or MariaDB:
connections that survive the faults, and reading a table's rows back."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pymysql
from psycopg.types.json import Jsonb

from tests.chaos.tables import Table

# what a server restart or a network fault raises at the client
DOWN = (
    psycopg.OperationalError,
    psycopg.InterfaceError,
    pymysql.err.OperationalError,
    pymysql.err.InterfaceError,
    OSError,
)


@dataclass(frozen=True)
class Database:
    engine: str  # "postgres" | "mysql"
    dsn: str  # the database's own DSN (direct, not through a proxy)
    # PostgreSQL: the schema of the tables (a MariaDB source's database name on its target)
    schema: str = "public"

    @property
    def name(self) -> str:
        return urlsplit(self.dsn).path.strip("/")

    def at(self, host_port: str) -> str:
        """This DSN through another address (a fault proxy)."""
        parts = urlsplit(self.dsn)
        auth = parts.netloc.rsplit("@", 1)[0]
        return urlunsplit(parts._replace(netloc=f"{auth}@{host_port}"))

    def connect(self, *, autocommit: bool = False, timeout: float = 5) -> Any:
        if self.engine == "postgres":
            return psycopg.connect(self.dsn, autocommit=autocommit, connect_timeout=int(timeout))
        parts = urlsplit(self.dsn)
        return pymysql.connect(
            host=parts.hostname,
            port=parts.port or 3306,
            user=parts.username,
            password=parts.password or "",
            database=self.name,
            autocommit=autocommit,
            charset="utf8mb4",
            connect_timeout=int(timeout),
            read_timeout=60,
            write_timeout=60,
        )

    def connect_retrying(self, deadline_s: float = 300, *, autocommit: bool = False) -> Any:
        """A connection, waiting out a server that is down or unreachable for now."""
        deadline = time.monotonic() + deadline_s
        while True:
            try:
                return self.connect(autocommit=autocommit)
            except DOWN:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def adapt(self, column: str, value: Any) -> Any:
        if column == "doc" and value is not None:
            return Jsonb(value) if self.engine == "postgres" else json.dumps(value)
        return value

    def quote(self, name: str) -> str:
        return f'"{name}"' if self.engine == "postgres" else f"`{name}`"

    def table(self, name: str) -> str:
        if self.engine == "postgres":
            return f"{self.quote(self.schema)}.{self.quote(name)}"
        return self.quote(name)

    def rows(self, table: Table, columns: tuple[str, ...]) -> dict[tuple[Any, ...], dict[str, Any]]:
        """Every row of `table` by key: {key: {column: value}} ({} when the table is missing)."""
        listed = ", ".join(self.quote(c) for c in columns)
        conn = self.connect_retrying(autocommit=True)
        try:
            cur = conn.cursor()
            if self.engine == "mysql":
                cur.execute("SET time_zone = '+00:00'")
            try:
                cur.execute(f"SELECT {listed} FROM {self.table(table.name)}")
            except (psycopg.errors.UndefinedTable, pymysql.err.ProgrammingError):
                return {}
            found = {}
            for values in cur.fetchall():
                row = dict(zip(columns, values, strict=True))
                found[tuple(row[k] for k in table.key)] = row
            return found
        finally:
            conn.close()

    def empty(self, table: str) -> None:
        """Delete every row of `table`, if the sink has made it yet."""
        conn = self.connect_retrying(autocommit=True)
        try:
            conn.cursor().execute(f"DELETE FROM {self.table(table)}")
        except (psycopg.errors.UndefinedTable, pymysql.err.ProgrammingError):
            pass  # nothing was ever applied to it
        finally:
            conn.close()

    def columns_of(self, table: str) -> list[str]:
        """The table's column names, in order."""
        conn = self.connect_retrying(autocommit=True)
        try:
            cur = conn.cursor()
            schema = self.schema if self.engine == "postgres" else self.name
            cur.execute(
                "SELECT column_name FROM information_schema.columns"
                " WHERE table_schema = %s AND table_name = %s ORDER BY ordinal_position",
                (schema, table),
            )
            return [str(r[0]) for r in cur.fetchall()]
        finally:
            conn.close()
