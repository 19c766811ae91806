"""What `cdc assess` finds: readiness checks with a fix each, and per-table facts."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from cdc.secrets import redact

Status = Literal["ok", "warning", "blocker"]
SAMPLE_ROWS = 20_000  # rows read to time the initial copy
EXACT_COUNT_BYTES = 64 * 1024 * 1024  # tables up to this size are counted, not estimated
FREE_SPACE = "free disk space is not visible over SQL: check that the volume holds"


@dataclass(frozen=True, slots=True)
class Check:
    scope: str  # "source", "kafka", "target", or "table schema.table"
    name: str
    status: Status
    detail: str
    fix: str = ""


@dataclass
class TableFacts:
    table: str  # source schema.table
    target: str  # where the sink writes it
    size_bytes: int | None = None
    rows: int | None = None
    rows_exact: bool = False
    key: str = ""  # "primary key (id)", "replica identity full", "none"
    type_changes: list[dict[str, str]] = field(default_factory=list)
    features: list[str] = field(default_factory=list)
    sample_rows: int = 0
    sample_seconds: float = 0.0

    @property
    def copy_seconds(self) -> float | None:
        """The initial copy's duration, extrapolated from the timed sample."""
        if self.rows is None or not self.sample_rows:
            return None if self.rows else 0.0
        if self.rows <= self.sample_rows:
            return self.sample_seconds
        return self.sample_seconds * self.rows / self.sample_rows


@dataclass
class Assessment:
    source: str
    target: str | None
    checks: list[Check] = field(default_factory=list)
    tables: list[TableFacts] = field(default_factory=list)

    def add(self, scope: str, name: str, status: Status, detail: str, fix: str = "") -> None:
        # server messages may quote a connection string: masked before anything prints them
        self.checks.append(Check(scope, name, status, redact(detail), redact(fix)))

    def count(self, status: Status) -> int:
        return sum(1 for check in self.checks if check.status == status)

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": not self.count("blocker"),
            "blockers": self.count("blocker"),
            "warnings": self.count("warning"),
            "source": self.source,
            "target": self.target,
            "checks": [asdict(check) for check in self.checks],
            "tables": [
                {**asdict(table), "copy_seconds_estimate": table.copy_seconds}
                for table in self.tables
            ],
        }


def human_size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if value < 1024 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"
