"""`cdc status`: where a pipeline (and its reverse, after a cut-over) stands.

Read from the servers, not from a running process: the source's slot or
binlog, the offsets topic, the table topics against the target's
`cdc_offsets`, the dead-letter topic, the last verify, `cdc_cutover` and
the schema changes the target followed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from cdc.engine import EngineFor, Sides
from cdc.kafka.offsets import OffsetsReader
from cdc.migrate.cutover.gates import sink_lag
from cdc.migrate.cutover.state import CutoverState
from cdc.migrate.positions import KafkaView
from cdc.migrate.status.schema_changes import SchemaChangeStatus, schema_changes
from cdc.migrate.verify.record import last_verify
from cdc.settings import Settings
from cdc.settings_load import load_settings
from cdc.topics import table_topic

COMPLETE_KEY = "snapshot/complete"  # as both sources record a finished snapshot


@dataclass
class TableStatus:
    table: str
    phase: str
    lag_seconds: float
    lag_messages: int


@dataclass
class PipelineStatus:
    name: str
    phase: str  # snapshot, streaming, cutting over (<step>), cut over, rolled back
    source_streaming: bool
    source_position: str | None  # what the source acknowledged; None: no position yet
    source_lag_seconds: float | None
    source_lag_bytes: int | None
    retained_bytes: int | None  # PG: WAL the slot holds; MySQL: binlogs from its position on
    dead_letters: int
    last_verify: tuple[datetime, bool] | None  # (finished at, equal); None: never ran
    tables: list[TableStatus] = field(default_factory=list)
    cutover: dict[str, str] = field(default_factory=dict)  # step -> when
    schema_changes: list[SchemaChangeStatus] = field(default_factory=list)  # latest last


def status(settings: Settings, engines: EngineFor) -> list[PipelineStatus]:
    """The pipeline's status, then its reverse pipeline's once a cut-over wrote one.
    `engines`: the engine of each side."""
    steps = (
        CutoverState(settings.name, engines(settings.target)).steps()
        if settings.target is not None
        else {}
    )
    found = [_one(settings, engines, _cutover_phase(steps))]
    found[0].cutover = {step: at.isoformat() for step, (at, _) in steps.items()}
    if "reverse" in steps:
        found.append(_one(load_settings(steps["reverse"][1]), engines, None))
    return found


def _cutover_phase(steps: dict[str, tuple[datetime, str]]) -> str | None:
    if "rolled_back" in steps:
        return "rolled back"
    if "done" in steps:
        return "cut over"
    if steps:
        last = max(steps, key=lambda step: steps[step][0])
        return f"cutting over ({last})"
    return None


def _one(settings: Settings, engines: EngineFor, cutover_phase: str | None) -> PipelineStatus:
    source = engines(settings.source)
    sides = Sides.of(settings, engines) if settings.target is not None else None
    kafka = settings.kafka
    offsets = OffsetsReader(kafka.client_config(), kafka.topic_prefix)
    try:
        recorded = offsets.read()
    finally:
        offsets.close()
    snapshot_done = settings.snapshot.mode == "never" or COMPLETE_KEY in recorded
    phase = cutover_phase or ("streaming" if snapshot_done else "snapshot")
    lag_at_source = source.lag(kafka, settings.name)
    view = KafkaView(settings)
    try:
        lag = sink_lag(settings, sides, view) if sides is not None else {}
        dead = view.dead_letters(None)
    finally:
        view.close()
    verify = last_verify(settings.name, sides.target) if sides is not None else None
    changes = schema_changes(sides.target) if sides is not None else []
    result = PipelineStatus(
        settings.name,
        phase,
        lag_at_source.streaming,
        None if lag_at_source.position is None else str(lag_at_source.position),
        lag_at_source.seconds,
        lag_at_source.bytes,
        lag_at_source.retained_bytes,
        dead,
        verify,
        schema_changes=changes,
    )
    for schema, table in source.tables():
        seconds, messages = lag.get(table_topic(kafka.topic_prefix, schema, table), (0.0, 0))
        result.tables.append(TableStatus(f"{schema}.{table}", phase, seconds, messages))
    return result
