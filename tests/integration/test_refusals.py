"""A refused login or privilege is terminal, on the real servers: it names the
refusal and the fix instead of being retried forever."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

import psycopg
import pymysql
import pytest

from cdc.refusals import refusal


def _with_password(dsn: str, password: str) -> str:
    parts = urlsplit(dsn)
    netloc = f"{parts.username}:{password}@{parts.hostname}:{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))


def test_wrong_postgres_password_is_terminal(pg_dsn: str) -> None:
    with pytest.raises(psycopg.OperationalError) as caught:
        psycopg.connect(_with_password(pg_dsn, "not-the-password"), connect_timeout=5)
    terminal = refusal(caught.value)
    assert terminal is not None
    assert "password authentication failed" in terminal.message
    assert "not-the-password" not in str(terminal)


def test_wrong_mysql_password_is_terminal(mysql_dsn: str) -> None:
    parts = urlsplit(mysql_dsn)
    with pytest.raises(pymysql.err.OperationalError) as caught:
        pymysql.connect(
            host=parts.hostname, port=parts.port, user=parts.username, password="not-the-password"
        )
    terminal = refusal(caught.value)
    assert terminal is not None
    assert "Access denied" in terminal.message


def test_a_stopped_server_is_not_a_refusal(pg_dsn: str) -> None:
    parts = urlsplit(pg_dsn)
    closed = urlunsplit(parts._replace(netloc=f"{parts.username}@127.0.0.1:1"))
    with pytest.raises(psycopg.OperationalError) as caught:
        psycopg.connect(closed, connect_timeout=5)
    assert refusal(caught.value) is None
