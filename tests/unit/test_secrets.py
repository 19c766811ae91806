"""Secrets never leave the process: DSN masking, the redaction registry, secret types."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic_core import PydanticCustomError

from cdc.secrets import (
    MysqlDsn,
    PostgresDsn,
    forget_secrets,
    mask_dsn,
    read_secret_file,
    redact,
    register_dsn,
    register_secret,
    secret_file_path,
)


@pytest.fixture(autouse=True)
def _empty_registry() -> Iterator[None]:
    forget_secrets()
    yield
    forget_secrets()


@pytest.mark.parametrize(
    ("dsn", "masked"),
    [
        ("postgresql://u:pw@h/db", "postgresql://u:***@h/db"),
        ("postgres://u:pw@h:5432/db?sslmode=require", "postgres://u:***@h:5432/db?sslmode=require"),
        ("mysql://u:pw@h:3306/db", "mysql://u:***@h:3306/db"),
        ("mariadb://u:p%40ss@h/db", "mariadb://u:***@h/db"),
        # Unencoded @ and / in the password: mask through the last @ before the host.
        ("mysql://u:p@ss/w@h/db", "mysql://u:***@h/db"),
        (
            "postgresql://u@h/db?password=pw&sslmode=require",
            "postgresql://u@h/db?password=***&sslmode=require",
        ),
        ("host=h password=pw dbname=db", "host=h password=*** dbname=db"),
        ("host=h password = 'p w\\'x' dbname=db", "host=h password = *** dbname=db"),
        ("host=h sslpassword=pw", "host=h sslpassword=***"),
        ("postgresql://u@h/db", "postgresql://u@h/db"),
        ("host=h dbname=db", "host=h dbname=db"),
    ],
)
def test_mask_dsn_hides_the_password_and_keeps_the_rest(dsn: str, masked: str) -> None:
    assert mask_dsn(dsn) == masked


def test_redact_replaces_every_registered_secret() -> None:
    register_secret("hunter2")
    register_secret("")  # ignored: it would match everywhere
    assert redact("login hunter2 failed, hunter2!") == "login *** failed, ***!"
    assert redact("nothing secret") == "nothing secret"


def test_redact_masks_a_secret_containing_another_whole() -> None:
    register_secret("abc")
    register_secret("abcdef")
    assert redact("x abcdef y") == "x *** y"


def test_register_dsn_registers_the_password_as_written_and_decoded() -> None:
    register_dsn("postgresql://u:p%40ss@h/db")
    assert redact("p%40ss p@ss") == "*** ***"
    register_dsn("host=h password='q w\\'e'")
    assert redact("q w'e") == "***"


def test_dsn_types_never_show_the_password() -> None:
    pg = PostgresDsn.parse("postgresql://u:s3cret@h:5432/db")
    my = MysqlDsn.parse("mysql://u:s3cret@h/db")
    for shown in (repr(pg), str(pg), repr(my), str(my), repr([pg, my])):
        assert "s3cret" not in shown
    assert pg.get_secret_value() == "postgresql://u:s3cret@h:5432/db"
    assert redact("password s3cret") == "password ***"


def test_mysql_dsn_gives_pymysql_connect_kwargs() -> None:
    dsn = MysqlDsn.parse("mariadb://app%2Buser:p%40ss@[::1]:3307/shop")
    assert dsn.connect_kwargs() == {
        "host": "::1",
        "port": 3307,
        "user": "app+user",
        "password": "p@ss",
        "database": "shop",
    }
    assert MysqlDsn.parse("mysql://u@h").connect_kwargs() == {
        "host": "h",
        "port": 3306,
        "user": "u",
        "password": "",
        "database": None,
    }


@pytest.mark.parametrize(
    ("cls", "dsn", "expected"),
    [
        (PostgresDsn, "mysql://u:pw@h/db", "expected a PostgreSQL connection string"),
        (PostgresDsn, "hots=h", 'invalid connection option "hots"'),
        (PostgresDsn, "postgresql://u:pw@h:99999/db", "port must be a number"),
        (PostgresDsn, "   ", "is empty"),
        (MysqlDsn, "postgresql://u:pw@h/db", "expected a MySQL connection string"),
        (MysqlDsn, "host=h user=u", "not a mysql:// or mariadb:// URL"),
        (MysqlDsn, "mysql://h/db", "has no user"),
        (MysqlDsn, "mysql://u:pw@h:abc/db", "port must be a number"),
        (MysqlDsn, "mysql://u:pw@h/db?ssl=1", "query parameters are not supported"),
        (MysqlDsn, "mysql://u:pw@h/db/extra", "one database name"),
    ],
)
def test_bad_dsn_says_what_is_wrong(cls: type[PostgresDsn], dsn: str, expected: str) -> None:
    with pytest.raises(PydanticCustomError) as caught:
        cls.parse(dsn)
    assert expected in caught.value.message()
    assert (caught.value.context or {}).get("hint")


def test_libpq_errors_do_not_echo_the_password() -> None:
    # libpq quotes the offending fragment, here the password with a space in it.
    with pytest.raises(PydanticCustomError) as caught:
        PostgresDsn.parse("postgresql://u:pass word@h/db")
    assert "pass word" not in caught.value.message()
    with pytest.raises(PydanticCustomError) as caught:
        PostgresDsn.parse("host=h Tr0ub4dor")
    assert "Tr0ub4dor" not in caught.value.message()
    # An unparsable DSN is registered whole, so any later echo is redacted.
    assert redact("host=h Tr0ub4dor") == "***"


def test_libpq_option_typo_gets_a_suggestion() -> None:
    with pytest.raises(PydanticCustomError) as caught:
        PostgresDsn.parse("hots=h dbname=db")
    assert (caught.value.context or {}).get("hint") == "did you mean 'host'?"


def test_secret_file_path_prefers_the_credentials_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    assert secret_file_path("/abs/pg.dsn", tmp_path) == Path("/abs/pg.dsn")
    assert secret_file_path("pg.dsn", tmp_path) == tmp_path / "pg.dsn"
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", "/run/credentials/cdc.service")
    assert secret_file_path("pg.dsn", tmp_path) == Path("/run/credentials/cdc.service/pg.dsn")
    assert secret_file_path("/abs/pg.dsn", tmp_path) == Path("/abs/pg.dsn")


def test_read_secret_file_strips_and_names_the_path_on_error(tmp_path: Path) -> None:
    secret = tmp_path / "pg.dsn"
    secret.write_text("  postgresql://u:pw@h/db\n\n")
    assert read_secret_file(secret) == "postgresql://u:pw@h/db"
    with pytest.raises(PydanticCustomError) as caught:
        read_secret_file(tmp_path / "missing.dsn")
    assert f"cannot read {tmp_path / 'missing.dsn'}: No such file or directory" in str(
        caught.value.message()
    )
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(PydanticCustomError, match="is empty"):
        read_secret_file(tmp_path / "empty")
