"""The database a MySQL/MariaDB target DSN names: where cdc's own tables
(`cdc_offsets`, ...) and the target tables live."""

from __future__ import annotations

from cdc.errors import TerminalError
from cdc.secrets import MysqlConnectArgs


def target_database(args: MysqlConnectArgs) -> str:
    """`args`: the DSN's connect arguments."""
    database: str | None = args["database"]
    if not database:
        raise TerminalError(
            "the MySQL target DSN names no database",
            "end target.dsn with /database: it holds cdc_offsets and the target tables",
        )
    return database
