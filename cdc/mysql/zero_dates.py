"""MariaDB's zero dates (`0000-00-00`, a zero month or day), which no target
and no wire type can hold: `source.zero_dates` makes them NULL (`null`) or
stops the source (`error`). NULL is a change of the data, so where it happens
is said: logged once per table and column, counted each time."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import structlog

from cdc import metrics
from cdc.errors import SetupError

log = structlog.get_logger(__name__)

ZeroDates = Literal["null", "error"]
_logged: set[tuple[str, str]] = set()  # per process: once is enough to act on


class ZeroDateError(SetupError):
    """A zero or zero-in-part date ('0000-00-00', '2024-00-10') with
    `zero_dates="error"`: the source stops, exit 2, since the binlog (or the
    table) holds it until a person changes the setting or the row."""


@dataclass(frozen=True, slots=True)
class ZeroPolicy:
    """`source.zero_dates` for one column, which it names when it applies."""

    policy: ZeroDates
    table: str  # database.table
    column: str

    def met(self, what: str, raw: object) -> None:
        """A zero `what` (date, datetime, timestamp) was read: raise under
        `error`; under `null` (the caller returns None) say where, once."""
        if self.policy == "error":
            shown = f" ({raw})" if isinstance(raw, str) else ""  # the binlog's are bare bytes
            raise ZeroDateError(
                f"a zero {what}{shown} in {self.table}.{self.column}, under"
                " source.zero_dates: error",
                "set source.zero_dates: null (such dates become NULL, each column said once"
                " and counted), or fix the rows on the source, then start cdc again",
            )
        metrics.ZERO_DATES.labels(table=self.table, column=self.column).inc()
        if (self.table, self.column) not in _logged:
            _logged.add((self.table, self.column))
            log.warning(
                "zero_date_as_null",
                table=self.table,
                column=self.column,
                fix="source.zero_dates: error stops at the first one instead; fix the rows"
                " on the source to keep their values",
            )
