"""The cut-over's progress, kept on the target (`cdc_cutover`): one row per
step done, so that an interrupted `cdc cutover` continues where it stopped and
`cdc rollback` knows what to undo. The table is made by the first step
recorded: reading (`cdc status`) leaves the target as it was."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime
from typing import Any

from cdc.engine import Engine

TABLE = "cdc_cutover"
Step = tuple[datetime, str]  # when, what was found or done


class CutoverState:
    def __init__(self, pipeline: str, target: Engine) -> None:
        self._pipeline = pipeline
        self._target = target
        self._table = target.own_table(TABLE)

    def steps(self) -> dict[str, Step]:
        try:
            rows = self._run(
                f"SELECT step, at, detail FROM {self._table} WHERE pipeline = %s",
                (self._pipeline,),
            )
        except self._target.missing_table:
            return {}  # no step was ever recorded
        return {step: (_utc(at), detail) for step, at, detail in rows}

    def record(self, step: str, detail: str = "", at: datetime | None = None) -> datetime:
        at = at or datetime.now(UTC)
        self._run(self._target.own_table_ddl(TABLE))
        self._run(
            f"INSERT INTO {self._table} (pipeline, step, at, detail) VALUES (%s, %s, %s, %s)"
            + self._target.upsert(("pipeline", "step"), ("at", "detail")),
            (self._pipeline, step, self._target.timestamp(at), detail),
        )
        return at

    def clear(self, keep: tuple[str, ...] = ()) -> None:
        with contextlib.suppress(*self._target.missing_table):  # no table: nothing to clear
            self._run(
                f"DELETE FROM {self._table} WHERE pipeline = %s"
                + "".join(" AND step <> %s" for _ in keep),
                (self._pipeline, *keep),
            )

    def _run(self, query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._target.connect() as session:
            return session.rows(query, params)


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)
