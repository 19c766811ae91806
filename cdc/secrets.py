"""Keep secrets out of every line the process writes.

Two tools:

- `mask_dsn` rewrites a connection string for display (`postgresql://u:***@h/db`).
- A process-wide registry: settings register every secret they load
  (`register_secret`, `register_dsn`) and `redact` replaces each registered value
  in any text. The log processor and the error printers call `redact` as the
  last step, so a secret that slipped into a message (an exception text, a repr)
  still never leaves the process.

It also holds the secret types the settings are built from: `PostgresDsn` and
`MysqlDsn` (connection strings whose repr, str and dumps are masked) and the
reading of `*_file` secrets (systemd `LoadCredential=`).

A short or common password (say `postgres`) is redacted everywhere it appears,
even inside unrelated words: garbled output is the price of never printing it.
"""

from __future__ import annotations

import os
import re
import ssl
import threading
from difflib import get_close_matches
from pathlib import Path
from typing import Annotated, Any, ClassVar, NotRequired, Self, TypedDict
from urllib.parse import unquote, urlsplit

import psycopg
from psycopg.conninfo import conninfo_to_dict
from pydantic import AfterValidator, GetCoreSchemaHandler, PlainSerializer, SecretStr
from pydantic_core import PydanticCustomError, core_schema

MASK = "***"

# libpq keywords whose values are secrets; matched case-insensitively as a
# superset (libpq itself is case-sensitive).
_SECRET_KEYS = "password|sslpassword|oauth_client_secret|scram_client_key|scram_server_key"
_URL_START = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://")
_URL_QUERY_SECRET = re.compile(rf"([?&](?:{_SECRET_KEYS})=)([^&#]*)", re.IGNORECASE)
_KV_SECRET = re.compile(
    rf"(?<![A-Za-z0-9_])((?:{_SECRET_KEYS})\s*=\s*)('(?:[^'\\]|\\.)*'?|[^\s']\S*)",
    re.IGNORECASE,
)

_lock = threading.Lock()
_secrets: set[str] = set()
_pattern: re.Pattern[str] | None = None


def _userinfo_span(dsn: str) -> tuple[int, int] | None:
    """Where the password of a URL-style DSN sits, as (start, end), if it has one.

    Deliberately looser than any real URL parser: a password holding an
    unencoded `/`, `?` or `@` must still be masked, so the userinfo ends at the
    last `@` before the query, or at the last `@` of all when none precedes it.
    Over-masking a stray `@` in a query value is the safe failure.
    """
    start = _URL_START.match(dsn)
    if start is None:
        return None
    query = dsn.find("?", start.end())
    at = dsn.rfind("@", start.end(), query if query >= 0 else len(dsn))
    if at < 0:
        at = dsn.rfind("@", start.end())
    if at < 0:
        return None
    colon = dsn.find(":", start.end(), at)
    if colon < 0:
        return None
    return colon + 1, at


def mask_dsn(dsn: str) -> str:
    """`dsn` with every password replaced by `***`; the rest stays for diagnosis.

    Handles URLs (`postgresql://u:pw@h/db`, `mysql://u:pw@h:3306/db`, including
    `?password=` query parameters) and libpq `key=value` strings
    (`host=h password=pw`, quoted values too).
    """
    if not _URL_START.match(dsn):
        return _KV_SECRET.sub(lambda m: m.group(1) + MASK, dsn)
    span = _userinfo_span(dsn)
    if span is not None:
        dsn = dsn[: span[0]] + MASK + dsn[span[1] :]
    return _URL_QUERY_SECRET.sub(lambda m: m.group(1) + MASK, dsn)


def dsn_secrets(dsn: str) -> list[str]:
    """Every password in `dsn`, both as written and decoded (percent/quote escapes)."""
    found: list[str] = []
    span = _userinfo_span(dsn)
    if span is not None:
        found.append(dsn[span[0] : span[1]])
    if _URL_START.match(dsn):
        found += [m.group(2) for m in _URL_QUERY_SECRET.finditer(dsn)]
        found += [unquote(value) for value in found]
    else:
        for match in _KV_SECRET.finditer(dsn):
            raw = match.group(2)
            found.append(raw)
            if raw.startswith("'"):
                inner = raw[1:-1] if len(raw) > 1 and raw.endswith("'") else raw[1:]
                found += [inner, re.sub(r"\\(.)", r"\1", inner)]
    return [value for value in found if value]


def register_secret(value: str) -> None:
    """From now on, `redact` replaces `value` wherever it appears. Empty values are ignored."""
    global _pattern  # noqa: PLW0603 -- one registry for the whole process, by design
    if not value:
        return
    with _lock:
        if value in _secrets:
            return
        _secrets.add(value)
        # Longest first, so a secret that contains another is masked whole.
        ordered = sorted(_secrets, key=len, reverse=True)
        _pattern = re.compile("|".join(re.escape(secret) for secret in ordered))


def register_dsn(dsn: str) -> None:
    """Register every password found in `dsn` (see `dsn_secrets`)."""
    for value in dsn_secrets(dsn):
        register_secret(value)


def redact(text: str) -> str:
    """`text` with every registered secret replaced by `***`."""
    pattern = _pattern
    if pattern is None:
        return text
    return pattern.sub(MASK, text)


def forget_secrets() -> None:
    """Empty the registry. For tests only: a daemon never forgets a secret."""
    global _pattern  # noqa: PLW0603
    with _lock:
        _secrets.clear()
        _pattern = None


def _registered(value: SecretStr) -> SecretStr:
    register_secret(value.get_secret_value())
    return value


# A password written in the settings (say kafka.sasl.password): registered for redaction, dumped
# as `***` like the DSN passwords; `get_secret_value()` gives it to the client library.
Secret = Annotated[
    SecretStr, AfterValidator(_registered), PlainSerializer(lambda _: MASK, return_type=str)
]


def setting_error(message: str, hint: str = "") -> PydanticCustomError:
    """A validation error worded by us: the loader prints `message` and `hint`, never the input."""
    return PydanticCustomError("cdc_config", "{message}", {"message": message, "hint": hint})


# --- secret files -----------------------------------------------------------------------------


def secret_file_path(raw: str, config_dir: Path | None = None) -> Path:
    """Where a `*_file` setting points: absolute as written, else under $CREDENTIALS_DIRECTORY
    (systemd `LoadCredential=`: the unit knows credential names, not where systemd puts them),
    else under the config file's directory (so a checkout works from any cwd), else the cwd."""
    path = Path(raw)
    if path.is_absolute():
        return path
    base = os.environ.get("CREDENTIALS_DIRECTORY") or config_dir or Path.cwd()
    return Path(base) / path


def read_secret_file(path: Path) -> str:
    """The file's text, surrounding whitespace stripped; errors name the path and the OS reason."""
    try:
        text = path.read_text(encoding="utf-8").strip()
    except OSError as error:
        raise setting_error(
            f"cannot read {path}: {error.strerror or type(error).__name__}",
            "check the path, and that the user running cdc may read the file",
        ) from None
    except UnicodeDecodeError:
        raise setting_error(
            f"{path} is not UTF-8 text", "the file must hold only the secret"
        ) from None
    if not text:
        raise setting_error(f"{path} is empty", "the file must hold only the secret")
    return text


# --- connection strings -----------------------------------------------------------------------

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*)://")
PG_DSN_FORM = (
    "use postgresql://user:password@host:5432/dbname or the libpq form"
    " 'host=... port=5432 dbname=... user=... password=...'"
)
MYSQL_DSN_FORM = (
    "use mysql://user:password@host:3306/database (or mariadb://...);"
    " percent-encode special characters in the password (@ as %40, / as %2F)"
)


class Dsn:
    """A connection string that never shows its password (see `cdc.secrets.mask_dsn`)."""

    __slots__ = ("_value",)
    engine: ClassVar[str] = ""  # the `type:` value that goes with this DSN
    label: ClassVar[str] = ""
    form_hint: ClassVar[str] = ""

    def __init__(self, value: str) -> None:
        self._value = value

    def get_secret_value(self) -> str:
        """The real connection string, password included: hand it to the driver, nowhere else."""
        return self._value

    def masked(self) -> str:
        return mask_dsn(self._value)

    def __str__(self) -> str:
        return self.masked()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.masked()!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Dsn) and type(other) is type(self) and other._value == self._value

    def __hash__(self) -> int:
        return hash((type(self), self._value))

    @classmethod
    def parse(cls, text: str) -> Self:
        text = text.strip()
        register_dsn(text)
        if not text:
            raise setting_error(f"the {cls.label} connection string is empty", cls.form_hint)
        try:
            cls._check(text)
        except PydanticCustomError:
            # The password of a malformed DSN may sit where dsn_secrets cannot find it.
            register_secret(text)
            raise
        return cls(text)

    @classmethod
    def _check(cls, text: str) -> None:
        raise NotImplementedError

    @classmethod
    def _wrong_engine(cls, scheme: str) -> PydanticCustomError:
        other, label = (
            ("mysql", "MySQL/MariaDB") if cls.engine == "postgres" else ("postgres", "PostgreSQL")
        )
        return setting_error(
            f"expected a {cls.label} connection string, got a {scheme}:// URL",
            f"{cls.form_hint}; if this database is {label}, set type: {other}",
        )

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        def coerce(value: Any) -> Dsn:
            if isinstance(value, cls):
                return value
            if isinstance(value, str):
                return cls.parse(value)
            raise PydanticCustomError("string_type", "Input should be a valid string")

        return core_schema.json_or_python_schema(
            json_schema=core_schema.no_info_after_validator_function(
                cls.parse, core_schema.str_schema()
            ),
            python_schema=core_schema.no_info_plain_validator_function(coerce),
            serialization=core_schema.plain_serializer_function_ser_schema(lambda v: v.masked()),
        )


class PostgresDsn(Dsn):
    """A PostgreSQL connection string: URL (`postgresql://`, `postgres://`) or libpq key=value."""

    __slots__ = ()
    engine = "postgres"
    label = "PostgreSQL"
    form_hint = PG_DSN_FORM

    @classmethod
    def _check(cls, text: str) -> None:
        scheme = _SCHEME.match(text)
        if scheme and scheme.group(1).lower() not in ("postgresql", "postgres"):
            raise cls._wrong_engine(scheme.group(1))
        try:
            params = conninfo_to_dict(text)
        except psycopg.ProgrammingError as error:
            reason, hint = _libpq_reason(str(error))
            raise setting_error(
                f"not a valid PostgreSQL connection string: {reason}", hint or PG_DSN_FORM
            ) from None
        for key in ("password", "sslpassword", "oauth_client_secret"):
            register_secret(str(params.get(key) or ""))
        for port in str(params.get("port") or "").split(","):
            if port and not (port.isdigit() and 1 <= int(port) <= 65535):
                raise setting_error("port must be a number between 1 and 65535", PG_DSN_FORM)


def _libpq_reason(message: str) -> tuple[str, str]:
    """libpq's parse error minus the DSN fragments it quotes (they may hold the password)."""
    reason = (message.strip().splitlines() or ["unparsable"])[0]
    option = re.fullmatch(r'invalid connection option "([^"]*)"', reason)
    if option:
        # The quoted token sits left of an '=', so it is a key the user mistyped, not a value.
        keywords = [opt.keyword.decode() for opt in psycopg.pq.Conninfo.get_defaults()]
        close = get_close_matches(option.group(1), keywords, n=1)
        return reason, f"did you mean '{close[0]}'?" if close else ""
    if reason.startswith("invalid URI query parameter"):
        return reason, ""
    return re.sub(r'"[^"]*"', '"..."', reason), ""


class MysqlConnectArgs(TypedDict):
    """Keyword arguments for `pymysql.connect` (and the binlog reader's connection settings)."""

    host: str
    port: int
    user: str
    password: str
    database: str | None
    ssl: NotRequired[ssl.SSLContext]


class MysqlDsn(Dsn):
    """A MySQL/MariaDB connection URL: `mysql://user:password@host[:port][/database]`.

    The endpoint's `tls:` block travels with it (`with_tls`), so that every connection made
    from `connect_kwargs` (source, binlog stream, sink, migration commands) uses TLS alike.
    """

    __slots__ = ("_ssl",)
    engine = "mysql"
    label = "MySQL"
    form_hint = MYSQL_DSN_FORM

    def __init__(self, value: str, ssl_context: ssl.SSLContext | None = None) -> None:
        super().__init__(value)
        self._ssl = ssl_context

    def with_tls(self, ssl_context: ssl.SSLContext) -> MysqlDsn:
        """The same DSN, connecting over TLS with `ssl_context`."""
        return MysqlDsn(self._value, ssl_context)

    @classmethod
    def _check(cls, text: str) -> None:
        scheme = _SCHEME.match(text)
        if scheme is None:
            raise setting_error("not a mysql:// or mariadb:// URL", MYSQL_DSN_FORM)
        if scheme.group(1).lower() not in ("mysql", "mariadb"):
            raise cls._wrong_engine(scheme.group(1))
        parts = urlsplit(text)
        if parts.query or parts.fragment:
            raise setting_error(
                "query parameters are not supported in a MySQL URL", "remove the '?...' part"
            )
        if not parts.username:
            raise setting_error("the MySQL URL has no user", MYSQL_DSN_FORM)
        if not parts.hostname:
            raise setting_error("the MySQL URL has no host", MYSQL_DSN_FORM)
        try:
            port = parts.port
        except ValueError:
            port = 0
        if port == 0:
            raise setting_error("port must be a number between 1 and 65535", MYSQL_DSN_FORM)
        if "/" in parts.path.strip("/"):
            raise setting_error("the MySQL URL path must be one database name", MYSQL_DSN_FORM)

    def connect_kwargs(self) -> MysqlConnectArgs:
        parts = urlsplit(self._value)
        args: MysqlConnectArgs = {
            "host": parts.hostname or "",
            "port": parts.port or 3306,
            "user": unquote(parts.username or ""),
            "password": unquote(parts.password or ""),
            "database": unquote(parts.path.strip("/")) or None,
        }
        if self._ssl is not None:
            args["ssl"] = self._ssl
        return args
