"""Where the local servers are (``.dev/env``) and how to reach them.

The environment wins over ``.dev/env`` so a CI job can point the bench elsewhere
on the loopback; anything but 127.0.0.1 is refused because the bench drops and
creates databases.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

import psycopg
import pymysql
from psycopg.rows import TupleRow

ROOT = Path(__file__).resolve().parent.parent
ENV_FILE = ROOT / ".dev" / "env"
LOOPBACK = "127.0.0.1"


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int
    user: str
    password: str


@dataclass(frozen=True)
class Servers:
    pg: Endpoint
    mysql: Endpoint

    def pg_conninfo(self, dbname: str) -> str:
        """A libpq URI without the password (tools get it from PGPASSWORD)."""
        return f"postgresql://{self.pg.user}@{self.pg.host}:{self.pg.port}/{dbname}"

    def tool_env(self) -> dict[str, str]:
        """Environment for child processes: secrets travel here, not in argv (ps shows argv)."""
        env = dict(os.environ)
        env.update(
            PGPASSWORD=self.pg.password,
            PGHOST=self.pg.host,
            PGPORT=str(self.pg.port),
            PGUSER=self.pg.user,
            PGAPPNAME="cdc-bench",
            MYSQL_PWD=self.mysql.password,
        )
        return env


def _endpoint(dsn: str, default_port: int) -> Endpoint:
    parts = urlsplit(dsn)
    host = parts.hostname or LOOPBACK
    if host != LOOPBACK:
        raise SystemExit(f"bench: refusing to use {host}: the bench only talks to {LOOPBACK}")
    return Endpoint(
        host=host,
        port=parts.port or default_port,
        user=unquote(parts.username or ""),
        password=unquote(parts.password or ""),
    )


def _read_env_file(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            key, sep, value = line.partition("=")
            if sep and not key.startswith("#"):
                values[key.strip()] = value.strip()
    return values


def load_servers(env_file: Path = ENV_FILE) -> Servers:
    values = _read_env_file(env_file) | {
        k: v for k, v in os.environ.items() if k.startswith("CDC_") and v
    }
    missing = [k for k in ("CDC_PG_DSN", "CDC_MYSQL_DSN") if k not in values]
    if missing:
        raise SystemExit(f"bench: {', '.join(missing)} unset; run `bash dev/services.sh up` first")
    return Servers(
        pg=_endpoint(values["CDC_PG_DSN"], 5432),
        mysql=_endpoint(values["CDC_MYSQL_DSN"], 3306),
    )


def pg_connect(servers: Servers, dbname: str = "postgres") -> psycopg.Connection[TupleRow]:
    ep = servers.pg
    return psycopg.connect(
        host=ep.host,
        port=ep.port,
        user=ep.user,
        password=ep.password,
        dbname=dbname,
        autocommit=True,
        application_name="cdc-bench",
    )


@contextmanager
def mysql_connect(servers: Servers, database: str | None = None) -> Iterator[pymysql.Connection]:
    ep = servers.mysql
    conn = pymysql.connect(
        host=ep.host,
        port=ep.port,
        user=ep.user,
        password=ep.password,
        database=database,
        autocommit=True,
        charset="utf8mb4",
    )
    try:
        yield conn
    finally:
        conn.close()


def mysql_settings(servers: Servers) -> dict[str, object]:
    """Connection settings in the shape python-mysql-replication expects."""
    ep = servers.mysql
    return {"host": ep.host, "port": ep.port, "user": ep.user, "passwd": ep.password}
