"""The engine seam: what the migration steps (`cdc.migrate`) ask of a database.

One `Engine` per side of a pipeline, made by the face (`cdc.app.engines`) for a
source or target section of the settings; `cdc.postgres.engine` and
`cdc.mysql.engine` implement it. The steps never look at which engine they hold:
what differs between engines is behind these methods, in the engine's package.
A method of a source (the catalog, positions, the reverse start) asks the
engine made for the source section; one of a target (DDL, fences, cdc's own
tables) that made for a target section, or for the source once the sides swap
(a rollback fences the target and unfences the source).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from cdc.ddl.model import TableDef
from cdc.engine.assessment import Assessment, TableFacts
from cdc.engine.cutover import (
    CounterSync,
    FenceResult,
    Marker,
    Partition,
    Published,
    SourceLag,
    TableName,
)
from cdc.engine.schema import TargetCatalog, TargetDdl
from cdc.engine.session import Session
from cdc.engine.verify import VerifySql
from cdc.errors import SetupError
from cdc.settings import Settings, Source, Target
from cdc.settings_kafka import KafkaSettings
from cdc.source_offsets import OffsetStore


class Engine(Protocol):
    """One database of a pipeline, as the migration steps see it."""

    name: str  # "postgresql" or "mysql", as reports print it (and the stream's connector)
    errors: tuple[type[Exception], ...]  # what its driver raises: refused, unreachable
    missing_table: tuple[type[Exception], ...]  # what a statement on a missing table raises

    @property
    def verify(self) -> VerifySql:
        """Its part in `cdc verify`."""
        ...

    # -- sessions and names

    def footprint(self) -> tuple[str, frozenset[str]]:
        """The server this side runs on, the same however it is reached, and
        the databases it reads (a source) or writes (a target)."""
        ...

    def connect(self) -> Session:
        """A session of cdc's own: read-write on a fenced database, so `cdc cutover` and
        `cdc rollback` still record what they do."""
        ...

    def quote(self, name: str) -> str:
        """An identifier as this engine's SQL writes it."""
        ...

    def target_table(self, schema: str, table: str) -> TableName:
        """Where a sink writing into this side puts a table it gets as schema.table
        (PostgreSQL: the same; MySQL: the DSN's database, the same table name)."""
        ...

    def check_takes_back(self, tables: Sequence[TableName]) -> None:
        """TerminalError unless a sink writing into this side would put each of these
        tables of its own back where it is (the reverse pipeline's target)."""
        ...

    # -- a source's catalog

    def tables(self) -> list[TableName]:
        """The tables `source.tables` selects."""
        ...

    def table_names(self) -> list[TableName]:
        """Every table the source has, selected or not (what `source.tables` is checked
        against: `cdc.table_selection`)."""
        ...

    def table_defs(self) -> list[TableDef]:
        """Those tables' definitions, read from the catalog."""
        ...

    # -- a target's schema

    def ddl(self, *, offline: bool = False) -> TargetDdl:
        """How this target's tables are written. The server may be asked what the DDL
        depends on (MySQL: the key collation of its version); `offline`: it is not."""
        ...

    def catalog(self) -> AbstractContextManager[TargetCatalog]:
        """The target's objects, through a session open until the context ends."""
        ...

    # -- cdc's own tables on a target, beside the sink's cdc_offsets

    def own_table(self, name: str) -> str:
        """cdc's table `name`, qualified: PostgreSQL in `public`, MySQL in the DSN's database."""
        ...

    def own_table_ddl(self, name: str) -> str:
        """CREATE TABLE IF NOT EXISTS of cdc's table `name` (cdc_cutover, cdc_verify_runs)."""
        ...

    def upsert(self, key: Sequence[str], columns: Sequence[str]) -> str:
        """The tail of an INSERT that updates `columns` of a row whose `key` exists."""
        ...

    def timestamp(self, at: datetime) -> Any:
        """A time as a parameter of a timestamp column of cdc's tables."""
        ...

    def applied_offsets(self, group: str) -> dict[Partition, int]:
        """The sink's next offset per partition (its cdc_offsets; empty before it ran)."""
        ...

    # -- the cut-over

    def fence(self, terminate_sessions: bool) -> FenceResult:
        """Stop application writes; idempotent."""
        ...

    def unfence(self) -> str:
        """Let applications write again; idempotent. What was unfenced."""
        ...

    def is_fenced(self) -> bool: ...

    def next_value(self, schema: str, table: str, column: str) -> int:
        """The next value this source's counter of schema.table.column gives (1: none)."""
        ...

    def raise_counters(
        self,
        tables: Mapping[TableName, TableName],
        source_next: Callable[[TableName, str], int],
    ) -> list[CounterSync]:
        """Set each counter of these target tables (keys; values: their source tables)
        to the larger of max(column) + 1 and `source_next(source table, column)`."""
        ...

    def mark(self, pipeline: str) -> Marker:
        """The source's current position; where a marker can be written, one written there."""
        ...

    def published(self, kafka: KafkaSettings) -> Published:
        """A reader of how far this source has put everything into Kafka."""
        ...

    def lag(self, kafka: KafkaSettings, pipeline: str) -> SourceLag: ...

    def start_reverse(self, store: OffsetStore) -> str:
        """Fix where the reverse pipeline (this source) starts reading: now, unless a start
        is fixed already. `store`: that pipeline's offsets. What was done."""
        ...

    def retire_reverse(self, pipeline: str, path: str) -> tuple[bool, str]:
        """Release what the reverse pipeline `pipeline` (file `path`) holds on this
        source, unless it still reads it: (done, what was done or what to do)."""
        ...

    # -- `cdc assess`

    def assess_source(self, report: Assessment) -> list[tuple[TableDef, TableFacts]]:
        """Source checks into `report`, and each selected table with its facts. A source
        that cannot be reached raises one of `errors`."""
        ...

    def assess_target(
        self, tables: Sequence[tuple[TableDef, TableName]], source_bytes: int, report: Assessment
    ) -> None:
        """Target checks into `report`: the user's rights for what the sink writes into
        `tables` (definitions and their names here), space for `source_bytes` more."""
        ...


EngineFor = Callable[[Source | Target], Engine]  # the face's choice of engine for a section


@dataclass(frozen=True)
class Sides:
    """The engines of a pipeline's two ends."""

    source: Engine
    target: Engine

    @classmethod
    def of(cls, settings: Settings, engines: EngineFor) -> Sides:
        assert settings.target is not None, "a pipeline with a target"
        return cls(engines(settings.source), engines(settings.target))

    def check_distinct(self) -> None:
        """Refuse a target that is the source itself: every change applied
        would be read back and applied again."""
        server, read = self.source.footprint()
        target_server, written = self.target.footprint()
        both = sorted(read & written)
        if server == target_server and both:
            raise SetupError(
                f"the source and the target are the same database ({', '.join(both)},"
                " on one server)",
                "point target.dsn at the database to migrate into",
            )
