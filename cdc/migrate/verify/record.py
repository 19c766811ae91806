"""The record of finished verify runs, kept on the target in `cdc_verify_runs`, where
`cdc status` and `cdc cutover` read the last result (PostgreSQL: `public.cdc_verify_runs`;
MySQL: in the DSN's database, beside `cdc_offsets`)."""

from __future__ import annotations

from datetime import UTC, datetime

from cdc.engine import Engine

TABLE = "cdc_verify_runs"


def record_run(
    pipeline: str, target: Engine, finished_at: datetime, equal: bool, report: str
) -> None:
    """Store one finished run (`report` is its JSON)."""
    with target.verify.connect() as session:
        session.rows(target.own_table_ddl(TABLE))
        session.rows(
            f"INSERT INTO {target.own_table(TABLE)} VALUES (%s, %s, %s, %s)",
            (pipeline, target.timestamp(finished_at), equal, report),
        )


def last_verify(pipeline: str, target: Engine) -> tuple[datetime, bool] | None:
    """When the pipeline's last verify finished (UTC) and whether it found the sides equal;
    None when it never ran."""
    query = (
        f"SELECT finished_at, {target.quote('equal')} FROM {target.own_table(TABLE)}"
        " WHERE pipeline = %s ORDER BY finished_at DESC LIMIT 1"
    )
    try:
        with target.verify.connect() as session:
            rows = session.rows(query, (pipeline,))
    except target.missing_table:
        return None
    if not rows:
        return None
    finished, equal = rows[0]
    stamp = finished.astimezone(UTC) if finished.tzinfo else finished.replace(tzinfo=UTC)
    return stamp, bool(equal)
