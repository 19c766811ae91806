"""`cdc assess` of a MySQL/MariaDB target: the target user's rights to write
what the sink writes, the tables it finds there, and the space they take."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import pymysql

from cdc.ddl.model import TableDef
from cdc.engine.assessment import FREE_SPACE, Assessment, human_size
from cdc.engine.cutover import TableName
from cdc.mysql.dialect import quote
from cdc.settings import MysqlTarget

TARGET = "target"
_DML = ("SELECT", "INSERT", "UPDATE", "DELETE")
_GRANT = re.compile(r"GRANT (.+?) ON (\S+) TO", re.IGNORECASE)


def _mysql_rights(conn: Any, database: str) -> set[str]:
    """The privileges the target user holds on every table of `database`."""
    with conn.cursor() as cur:
        cur.execute("SHOW GRANTS FOR CURRENT_USER()")
        lines = [str(next(iter(r.values()))) for r in cur.fetchall()]
    held: set[str] = set()
    scopes = {"*.*", f"{quote(database)}.*", f"{quote(database.replace('_', chr(92) + '_'))}.*"}
    for line in lines:
        found = _GRANT.match(line)
        if found and found.group(2) in scopes:
            privileges = {p.strip().upper() for p in found.group(1).split(",")}
            held |= (
                set(_DML) | {"CREATE", "ALTER"} if "ALL PRIVILEGES" in privileges else privileges
            )
    return held


def check_target(
    conn: Any,
    target: MysqlTarget,
    tables: Sequence[tuple[TableDef, TableName]],
    source_bytes: int,
    report: Assessment,
) -> None:
    database = target.dsn.connect_kwargs()["database"] or ""
    held = _mysql_rights(conn, database)
    wanted = [*_DML, "CREATE", *(("ALTER",) if target.create_tables else ())]
    missing = [p for p in wanted if p not in held]
    if missing:
        report.add(
            TARGET,
            "privileges",
            "blocker",
            f"the target user lacks {', '.join(missing)} on {database}"
            " (DML for the rows, CREATE for cdc_offsets and create_tables, ALTER to add columns)",
            f"GRANT {', '.join(missing)} ON {quote(database)}.* TO <user>",
        )
    else:
        report.add(TARGET, "privileges", "ok", f"{', '.join(wanted)} on {database}")
    with conn.cursor() as cur:
        try:  # the sink marks what it applies with its own server_id (cdc.applied_marks)
            cur.execute("SET SESSION server_id = @@server_id")
        except pymysql.err.OperationalError as exc:
            report.add(
                TARGET,
                "server_id",
                "blocker",
                f"the target user may not set its session's server_id: {exc.args[1]}",
                "GRANT BINLOG REPLAY ON *.* TO <user> (MariaDB 10.5+;"
                " MySQL 8: SESSION_VARIABLES_ADMIN)",
            )
        for definition, (_, name) in tables:
            cur.execute(
                "SELECT TRIGGER_NAME FROM information_schema.TRIGGERS"
                " WHERE EVENT_OBJECT_SCHEMA = %s AND EVENT_OBJECT_TABLE = %s",
                (database, name),
            )
            triggers = [r["TRIGGER_NAME"] for r in cur.fetchall()]
            if triggers:
                report.add(
                    f"table {definition.qualified}",
                    "target triggers",
                    "warning",
                    f"{database}.{name} has triggers ({', '.join(triggers)}): they fire for"
                    " every row cdc applies",
                    "drop or disable them for the migration, or make them idempotent",
                )
            elif not target.create_tables:
                cur.execute(
                    "SELECT 1 FROM information_schema.TABLES"
                    " WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s",
                    (database, name),
                )
                if cur.fetchone() is None:
                    report.add(
                        f"table {definition.qualified}",
                        "target table",
                        "warning",
                        f"{database}.{name} does not exist on the target",
                        "create it with `cdc schema -c FILE --apply`"
                        " (or set target.create_tables: true)",
                    )
        cur.execute(
            "SELECT COALESCE(SUM(DATA_LENGTH + INDEX_LENGTH), 0) AS size"
            " FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s",
            (database,),
        )
        size = int(cur.fetchone()["size"])
    report.add(
        TARGET,
        "space",
        "ok",
        f"target database {human_size(size)}; {FREE_SPACE} about {human_size(source_bytes)} more",
    )
