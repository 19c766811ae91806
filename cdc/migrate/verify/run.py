"""`cdc verify`: are the target's tables equal to the source's, row for row?

Per table, key ranges are compared by count and checksum on both sides and
mismatching ranges are bisected down to rows (`verify.chunks`), hashing a
canonical row form in the databases where both engines can write it
(`cdc.engine.verify`), else in Python. It runs while replication is live: the
rows found different are read again once the sink has applied everything the
source had at that moment (`positions.wait_applied`), and only those that still differ
are reported. Each finished run is recorded in the target's `cdc_verify_runs`
(`verify.record`), which `last_verify` reads.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import structlog

from cdc import metrics
from cdc.engine import EngineFor, Sides
from cdc.engine.cutover import Published
from cdc.engine.session import Session
from cdc.engine.verify import TableInfo, paired
from cdc.migrate.positions import wait_applied
from cdc.migrate.verify import multiset
from cdc.migrate.verify.canonical import canonical
from cdc.migrate.verify.chunks import (
    ROW_LEVEL_ROWS,
    Key,
    KeyRange,
    RowDiff,
    Summary,
    chunks,
    diff_range,
    settle,
)
from cdc.migrate.verify.plan import TablePlan, plan_table
from cdc.migrate.verify.record import last_verify, record_run
from cdc.migrate.verify.sides import TableSide
from cdc.settings import Settings
from transforms.base import Transform
from transforms.registry import build

__all__ = ["TableResult", "VerifyError", "VerifyReport", "last_verify", "verify"]

log = structlog.get_logger(__name__)

CHUNK_ROWS = 10_000
WAIT_TIMEOUT_S = 120.0
ROUNDS = 5  # at most, re-checks of the rows found different, each after the sink caught up
LISTED_KEYS = 1000  # per kind and table; the counts are always complete


class VerifyError(Exception):
    """Verify could not run at all (exit 2): the message names the problem and the fix."""


@dataclass
class TableResult:
    table: str  # the source's schema.table
    target: str
    status: str  # equal | different | not_verifiable | error
    reason: str = ""
    rows: int = 0  # source rows compared
    chunks: int = 0
    hashing: str = ""  # database | python
    missing: int = 0
    extra: int = 0
    differing: int = 0
    keys: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # kind -> keys listed
    in_flight: int = 0  # rows that differed at first, then matched once the sink caught up
    unconfirmed: bool = False  # the sink did not catch up in time: differences may be in flight
    busy: int = 0  # rows changed between every two re-checks: in flight, not different
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class VerifyReport:
    pipeline: str
    started_at: datetime
    finished_at: datetime
    tables: list[TableResult]

    @property
    def equal(self) -> bool:
        """No table differs and every table could be checked (not verifiable ones aside)."""
        return all(t.status in {"equal", "not_verifiable"} for t in self.tables)

    @property
    def exit_code(self) -> int:
        if any(t.status == "different" for t in self.tables):
            return 1
        return 2 if any(t.status == "error" for t in self.tables) else 0

    def to_json(self) -> dict[str, Any]:
        """The report as JSON-ready data."""
        return {
            "pipeline": self.pipeline,
            "equal": self.equal,
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat(),
            "tables": [t.to_json() for t in self.tables],
        }


def verify(
    settings: Settings,
    engines: EngineFor,
    tables: Sequence[str] | None = None,
    *,
    chunk_rows: int = CHUNK_ROWS,
    wait_timeout_s: float = WAIT_TIMEOUT_S,
    rounds: int = ROUNDS,
    on_table: Callable[[TableResult], None] | None = None,
) -> VerifyReport:
    """Compare every (or each named) table of the pipeline and record the run on the target.
    `engines`: the engine of each side. Raises `VerifyError` when it cannot run at all."""
    if settings.target is None:
        raise VerifyError("the pipeline has no target to compare with: add a target: section")
    sides = Sides.of(settings, engines)
    errors = (*sides.source.errors, *sides.target.errors)
    started = datetime.now(UTC)
    try:
        source, target = sides.source.verify.connect(), sides.target.verify.connect()
    except errors as exc:
        raise VerifyError(
            f"cannot connect: {exc} (check the DSNs and that the servers run)"
        ) from None
    published = sides.source.published(settings.kafka)  # one reader for every wait of the run
    try:
        names = _tables(settings, sides, tables)
        transforms = build(settings.transforms)

        def caught_up() -> bool:
            return _sink_caught_up(settings, sides, published, wait_timeout_s)

        results = []
        for name in names:
            clock = time.monotonic()
            try:
                result = _verify_table(
                    settings,
                    sides,
                    (source, target),
                    transforms,
                    name,
                    chunk_rows,
                    caught_up,
                    rounds,
                )
            except errors as exc:
                # this table could not be read; the others are still worth checking
                result = TableResult(name, "", "error", f"{type(exc).__name__}: {exc}".strip())
            result.seconds = round(time.monotonic() - clock, 3)
            log.info("verify_table_done", table=name, status=result.status, rows=result.rows)
            results.append(result)
            if on_table is not None:
                on_table(result)
    finally:
        published.close()
        source.close()
        target.close()
    report = VerifyReport(settings.name, started, datetime.now(UTC), results)
    if sides.target.is_fenced():
        # a side fenced by a cut-over or rollback takes no writes, not even this
        # record: the report is still printed, and the next verify records its own
        log.warning(
            "verify_not_recorded",
            reason="the target is fenced read-only (cdc cutover or cdc rollback)",
            equal=report.equal,
        )
    else:
        record_run(
            settings.name,
            sides.target,
            report.finished_at,
            report.equal,
            json.dumps(report.to_json()),
        )
    metrics.VERIFY_LAST_EQUAL.labels(pipeline=settings.name).set(1 if report.equal else 0)
    metrics.VERIFY_LAST_FINISHED.labels(pipeline=settings.name).set(report.finished_at.timestamp())
    return report


def _sink_caught_up(
    settings: Settings, sides: Sides, published: Published, timeout_s: float
) -> bool:
    """Whether the sink applied everything the source has now, within `timeout_s`."""
    marker = sides.source.mark(settings.name)
    result = wait_applied(settings, sides, marker, timeout_s, source=published)
    if not result.done:
        stage = "sink" if result.published else "source"
        log.warning("verify_not_caught_up", stage=stage, timeout_s=timeout_s)
    return result.done


def _tables(settings: Settings, sides: Sides, wanted: Sequence[str] | None) -> list[str]:
    selects = settings.source.selects
    if wanted:
        others = [t for t in wanted if "." not in t or not selects(*t.split(".", 1))]
        if others:
            raise VerifyError(
                f"not a table of this pipeline: {', '.join(others)}"
                " (name tables as schema.table, among those source.tables selects)"
            )
        return list(wanted)
    if isinstance(settings.source.tables, list):
        return list(settings.source.tables)
    return [f"{schema}.{table}" for schema, table in sides.source.tables()]


def _verify_table(
    settings: Settings,
    sides: Sides,
    sessions: tuple[Session, Session],
    transforms: list[Transform],
    name: str,
    chunk_rows: int,
    sink_caught_up: Callable[[], bool],
    rounds: int,
) -> TableResult:
    schema, table = name.split(".", 1)
    ours = sides.source.verify.describe(sessions[0], schema, table)
    if ours is None:
        reason = f"the source has no table {name} (check source.tables and --tables)"
        return TableResult(name, "", "error", reason)
    plan = plan_table(
        settings, sides, transforms, (schema, table), tuple(c.name for c in ours.columns), ours.key
    )
    result = TableResult(name, ".".join(plan.target), "not_verifiable", plan.not_verifiable)
    if plan.not_verifiable:
        return result
    theirs = sides.target.verify.describe(sessions[1], *plan.target)
    if (
        theirs is None or any(theirs.column(t) is None for _, t in plan.columns)
    ) and sink_caught_up():
        # the sink creates tables and follows schema changes as their rows come:
        # a table or column it has not made yet is only behind, like a row
        theirs = sides.target.verify.describe(sessions[1], *plan.target)
    if theirs is None:
        result.status = "different"
        result.reason = (
            f"the target has no table {result.target} (cdc schema --apply creates it,"
            " or the sink with target.create_tables: true)"
        )
        return result
    absent = [t for _, t in plan.columns if theirs.column(t) is None]
    if absent:
        result.status = "different"
        result.reason = f"the target table {result.target} lacks {', '.join(absent)}"
        return result
    ours_side, theirs_side, in_sql = _sides(sides, sessions, plan, ours, theirs)
    result.hashing = "database" if in_sql else "python"
    if not plan.key:
        _multiset(result, multiset.compare(ours_side, theirs_side, sink_caught_up, rounds))
        return result
    found = _compare(name, ours_side, theirs_side, chunk_rows, result)
    remaining, busy, caught_up = settle(ours_side, theirs_side, found, sink_caught_up, rounds)
    result.unconfirmed = bool(remaining) and not caught_up
    result.busy = len(busy.keys())
    result.in_flight = len(found.keys()) - len(remaining.keys()) - result.busy
    _report(result, remaining, plan.key)
    if busy:
        result.keys["busy"] = [_shown(plan.key, k) for k in busy.keys()[:LISTED_KEYS]]
    return result


def _sides(
    sides: Sides,
    sessions: tuple[Session, Session],
    plan: TablePlan,
    ours: TableInfo,
    theirs: TableInfo,
) -> tuple[TableSide, TableSide, bool]:
    """Source and target sides of `plan`, keys first, and whether they hash in SQL."""
    renamed = dict(plan.columns)
    order = [*plan.key, *(s for s, _ in plan.columns if s not in plan.key)]
    pairs = [
        (mine, yours)
        for name in order
        if (mine := ours.column(name)) is not None
        and (yours := theirs.column(renamed[name])) is not None
    ]
    same_engine = sides.source.name == sides.target.name
    source_columns, target_columns, in_sql = paired(pairs, same_engine)
    width = len(plan.key)
    return (
        TableSide(
            sessions[0],
            sides.source,
            *plan.source,
            source_columns[:width],
            source_columns,
            in_sql,
        ),
        TableSide(
            sessions[1],
            sides.target,
            *plan.target,
            target_columns[:width],
            target_columns,
            in_sql,
        ),
        in_sql,
    )


def _compare(
    name: str, source: TableSide, target: TableSide, chunk_rows: int, result: TableResult
) -> RowDiff:
    found = RowDiff()
    chunk = KeyRange()

    def counted(keys: KeyRange, ours: Summary, _theirs: Summary) -> None:
        if keys is chunk:  # the chunk itself, not one of its bisected halves
            result.chunks += 1
            result.rows += ours.rows
            metrics.VERIFY_CHUNKS.labels(name).inc()
            metrics.VERIFY_ROWS.labels(name).inc(ours.rows)

    # Hashed in Python, a summary reads every row of its range anyway: compare a differing
    # chunk row by row at once rather than read it again at every level of a bisection.
    row_level_rows = ROW_LEVEL_ROWS if result.hashing == "database" else chunk_rows
    # one thread queries the target while this one queries the source (one connection each)
    with ThreadPoolExecutor(1, thread_name_prefix="verify-target") as pool:
        for chunk in chunks(source, chunk_rows):
            found.add(
                diff_range(source, target, chunk, row_level_rows, on_summary=counted, pool=pool)
            )
    return found


def _multiset(result: TableResult, found: multiset.MultisetResult) -> None:
    result.status = "equal" if found.equal else "different"
    result.rows, result.chunks = found.rows, 1
    result.missing, result.extra = found.missing, found.extra
    result.unconfirmed = found.unconfirmed
    if not found.equal:
        result.reason = "no primary key: the tables differ as multisets of rows"
    for kind, count in (("missing", found.missing), ("extra", found.extra)):
        if count:
            metrics.VERIFY_MISMATCHES.labels(result.table, kind).inc(count)


def _report(result: TableResult, diff: RowDiff, key: tuple[str, ...]) -> None:
    result.status = "different" if diff else "equal"
    for kind, keys in (
        ("missing", diff.missing),
        ("extra", diff.extra),
        ("differing", diff.differing),
    ):
        setattr(result, kind, len(keys))
        if keys:
            metrics.VERIFY_MISMATCHES.labels(result.table, kind).inc(len(keys))
            result.keys[kind] = [_shown(key, k) for k in keys[:LISTED_KEYS]]


def _shown(columns: tuple[str, ...], key: Key) -> dict[str, Any]:
    """A key as JSON: integers as numbers, other values in their canonical text."""
    return {
        column: value
        if isinstance(value, int) and not isinstance(value, bool)
        else canonical(value)
        for column, value in zip(columns, key, strict=True)
    }
