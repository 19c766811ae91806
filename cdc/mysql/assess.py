"""`cdc assess` of a MySQL/MariaDB source: binlog settings, the source
user's grants, binlog retention, and each table's size, key and copy speed."""

from __future__ import annotations

import time
from typing import Any

import pymysql
import pymysql.cursors
from pymysqlreplication.constants import FIELD_TYPE

from cdc.ddl.model import TableDef, keyless_cost
from cdc.engine.assessment import EXACT_COUNT_BYTES, SAMPLE_ROWS, Assessment, TableFacts
from cdc.mysql.catalog import MyTable
from cdc.mysql.dialect import qualified, quote
from cdc.mysql.setup import is_mariadb, server_problems
from cdc.settings import MysqlSource

SOURCE = "source"
ONE_DAY_S = 86_400
_ACCESS_DENIED = {1142, 1143, 1044}
_DATES = {
    FIELD_TYPE.DATE, FIELD_TYPE.NEWDATE, FIELD_TYPE.DATETIME, FIELD_TYPE.DATETIME2,
    FIELD_TYPE.TIMESTAMP, FIELD_TYPE.TIMESTAMP2,
}  # fmt: skip  # table, column, database access denied


def _value(cursor: Any, expression: str) -> Any:
    cursor.execute(f"SELECT {expression} AS v")
    return cursor.fetchone()["v"]


def check_server(cursor: Any, source: MysqlSource, report: Assessment) -> None:
    problems = server_problems(cursor, source.server_id)
    for problem in problems:
        report.add(SOURCE, "server", "blocker", problem.message, problem.remedy)
    if not problems:
        report.add(
            SOURCE,
            "server",
            "ok",
            "binlog_format ROW, binlog_row_image FULL, binlog_row_metadata FULL,"
            f" server_id {_value(cursor, '@@server_id')} (cdc reads as {source.server_id}),"
            " REPLICATION SLAVE/CLIENT and SELECT granted",
        )
    if is_mariadb(cursor):
        gtid = f"gtid_strict_mode {'ON' if int(_value(cursor, '@@gtid_strict_mode')) else 'OFF'}"
    else:
        gtid = f"gtid_mode {_value(cursor, '@@gtid_mode')}"
    report.add(SOURCE, "gtid", "ok", f"{gtid} (cdc resumes by file:position, GTID kept beside)")
    _check_retention(cursor, report)


def _check_retention(cursor: Any, report: Assessment) -> None:
    try:
        seconds = float(_value(cursor, "@@binlog_expire_logs_seconds"))
    except pymysql.err.OperationalError:  # before MariaDB 10.6: days only
        seconds = 0.0
    if not seconds:
        seconds = float(_value(cursor, "@@expire_logs_days") or 0) * ONE_DAY_S
    if not seconds:
        report.add(SOURCE, "binlog retention", "ok", "binlogs never expire: watch the disk")
    elif seconds < ONE_DAY_S:
        report.add(
            SOURCE,
            "binlog retention",
            "warning",
            f"binlogs expire after {seconds / 3600:.1f} h: a source stopped longer than that"
            " must take a new snapshot",
            "SET GLOBAL binlog_expire_logs_seconds = 604800 (and in the configuration)",
        )
    else:
        report.add(SOURCE, "binlog retention", "ok", f"binlogs kept {seconds / ONE_DAY_S:.1f} days")


def table_facts(
    conn: pymysql.Connection[Any], table: MyTable, definition: TableDef, report: Assessment
) -> TableFacts:
    facts = TableFacts(table.qualified, "")
    scope = f"table {table.qualified}"
    name = qualified(table.schema, table.name)
    facts.key = f"primary key ({', '.join(table.primary_key)})" if table.primary_key else "none"
    if not table.primary_key:
        report.add(
            scope,
            "key",
            "warning",
            keyless_cost(definition),
            f"ALTER TABLE {name} ADD PRIMARY KEY (...), or an AUTO_INCREMENT id column",
        )
    with conn.cursor() as cursor:
        cursor.execute(
            "SELECT DATA_LENGTH + INDEX_LENGTH AS size, TABLE_ROWS AS estimate"
            " FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s",
            (table.schema, table.name),
        )
        row = cursor.fetchone()
        facts.size_bytes = int(row["size"] or 0)
        facts.rows = int(row["estimate"] or 0)
        try:
            if facts.size_bytes <= EXACT_COUNT_BYTES:
                cursor.execute(f"SELECT COUNT(*) AS n FROM {name}")
                facts.rows = int(cursor.fetchone()["n"])
                facts.rows_exact = True
            facts.sample_rows, facts.sample_seconds = _sample(conn, name)
            _check_zero_dates(cursor, table, facts.size_bytes, report)
        except (pymysql.err.OperationalError, pymysql.err.ProgrammingError) as exc:
            if exc.args[0] not in _ACCESS_DENIED:
                raise
            report.add(
                scope,
                "select privilege",
                "blocker",
                f"the source user may not read {table.qualified}: {exc.args[1]}",
                f"GRANT SELECT ON {name} TO <user>",
            )
    if definition.identity:
        facts.features.append(
            f"AUTO_INCREMENT column {', '.join(sorted(definition.identity))}: the target's"
            " counter is set above the source's at cutover"
        )
    for column in definition.generated:
        facts.features.append(
            f"generated column {column.name} ({column.expression}): streamed as a value;"
            " a plain column on a PostgreSQL target"
        )
    return facts


def _check_zero_dates(cursor: Any, table: MyTable, size: int, report: Assessment) -> None:
    """Which date columns hold zero dates, which no target can hold: one scan,
    on tables small enough for an exact count."""
    dates = [c.name for c in table.columns if c.type in _DATES]
    if not dates:
        return
    scope = f"table {table.qualified}"
    if size > EXACT_COUNT_BYTES:
        report.add(scope, "zero dates", "ok", f"not looked for in {', '.join(dates)}: too large")
        return
    sums = ", ".join(
        f"COALESCE(SUM(MONTH({quote(c)}) = 0 OR DAYOFMONTH({quote(c)}) = 0), 0)" for c in dates
    )
    cursor.execute(f"SELECT {sums} FROM {qualified(table.schema, table.name)}")
    counts = list(cursor.fetchone().values())
    for column, count in zip(dates, counts, strict=True):
        if count:
            report.add(
                scope,
                "zero dates",
                "warning",
                f"{column}: {int(count)} rows hold a zero date (a zero month or day), which"
                " becomes NULL (source.zero_dates: null, logged and counted) or stops the"
                " source (error)",
                f"UPDATE the rows of {table.qualified} to NULL or a real date, or accept NULL",
            )


def _sample(conn: pymysql.Connection[Any], name: str) -> tuple[int, float]:
    """Rows read and seconds taken, streaming (unbuffered), of the first rows."""
    rows = 0
    started = time.monotonic()
    with conn.cursor(pymysql.cursors.SSCursor) as cursor:
        cursor.execute(f"SELECT * FROM {name} LIMIT {SAMPLE_ROWS}")
        for _ in cursor:
            rows += 1
    return rows, time.monotonic() - started
