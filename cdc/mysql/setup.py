"""Checks before start, each with the fix."""

from __future__ import annotations

from typing import Any

import structlog

from cdc.errors import TerminalError
from cdc.mysql.position import BinlogPosition

log = structlog.get_logger(__name__)

_REQUIRED = {
    "log_bin": ("1", "log_bin = ON in the server configuration (needs a restart)"),
    "binlog_format": ("ROW", "SET GLOBAL binlog_format = 'ROW' (and in the configuration)"),
    "binlog_row_image": ("FULL", "SET GLOBAL binlog_row_image = 'FULL' (and in the config)"),
    "binlog_row_metadata": (
        "FULL",
        "SET GLOBAL binlog_row_metadata = 'FULL' (and in the configuration)",
    ),
}


def is_mariadb(cursor: Any) -> bool:
    cursor.execute("SELECT @@version AS v")
    return "mariadb" in str(cursor.fetchone()["v"]).lower()


def check_server(cursor: Any, server_id: int) -> None:
    problems = server_problems(cursor, server_id)
    if problems:
        raise problems[0]


def server_problems(cursor: Any, server_id: int) -> list[TerminalError]:
    """Every reason the server cannot be a source (`cdc assess` lists them all)."""
    problems = []
    for variable, (required, fix) in _REQUIRED.items():
        cursor.execute(f"SELECT @@GLOBAL.{variable} AS v")
        value = str(cursor.fetchone()["v"]).upper()
        if value != required:
            problems.append(TerminalError(f"{variable} is {value}; cdc needs {required}", fix))
    cursor.execute("SELECT @@server_id AS v")
    if int(cursor.fetchone()["v"]) == server_id:
        problems.append(
            TerminalError(
                f"source.server_id {server_id} is the server's own server_id",
                "set source.server_id to a number no server or replica of this topology uses",
            )
        )
    cursor.execute("SHOW GRANTS FOR CURRENT_USER()")
    grants = " ".join(str(next(iter(row.values()))) for row in cursor.fetchall()).upper()
    if "ALL PRIVILEGES ON *.*" not in grants:
        wanted = ("REPLICATION SLAVE", "SELECT")
        missing = [p for p in wanted if p not in grants and _alias(p) not in grants]
        if "REPLICATION CLIENT" not in grants and "BINLOG MONITOR" not in grants:
            missing.append("REPLICATION CLIENT")
        if missing:
            problems.append(
                TerminalError(
                    f"the source user lacks {', '.join(missing)}",
                    f"GRANT {', '.join(missing)} ON *.* TO <user>",
                )
            )
    return problems


def _alias(privilege: str) -> str:
    # MariaDB 10.5+ and MySQL 8.0.22+ also spell it REPLICATION REPLICA
    return privilege.replace("SLAVE", "REPLICA")


def current_position(cursor: Any) -> BinlogPosition:
    cursor.execute("SHOW MASTER STATUS")
    row = cursor.fetchone()
    if row is None:
        raise TerminalError("the server has no binary log", "enable log_bin and restart it")
    gtid = ""
    if is_mariadb(cursor):
        cursor.execute("SELECT @@gtid_binlog_pos AS g")
        gtid = cursor.fetchone()["g"] or ""
    else:
        gtid = row.get("Executed_Gtid_Set", "") or ""
    return BinlogPosition(row["File"], int(row["Position"]), gtid)


def check_not_purged(cursor: Any, position: BinlogPosition) -> None:
    cursor.execute("SHOW BINARY LOGS")
    files = [row["Log_name"] for row in cursor.fetchall()]
    if position.file not in files:
        raise TerminalError(
            f"binlog {position.file} (the stored resume position) was purged from the server;"
            " the changes since then cannot be read",
            "take a new snapshot into emptied tables: stop the sink, delete every row of the"
            " pipeline's tables on the target (a snapshot adds and updates rows; rows deleted"
            " meanwhile would stay), delete the pipeline's offsets topic"
            " <topic_prefix>.__offsets (or use a new pipeline name) and start again; keep"
            " binlogs longer (binlog_expire_logs_seconds)",
        )
