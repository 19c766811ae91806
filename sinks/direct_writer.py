"""Snapshot rows written straight into the target (`snapshot.mode: direct`),
through the sink's own path: the same wire values, transforms, table
creation and type conversion as a streamed change, minus Kafka.

Each chunk is one target transaction together with its progress row (see
`sinks.postgres.copy_progress`). Copied rows are inserts on a target that lacks them;
a key the target holds after all (a chunk of a newer snapshot on resume,
rows put there by hand) is resolved by the conflict policy, as in the sink.
"""

from __future__ import annotations

from collections.abc import Sequence

import orjson

from cdc import values
from cdc.changes import Change
from cdc.errors import TerminalError
from cdc.events import ChangeEvent
from cdc.schemas import TableSchema
from cdc.settings import Settings
from sinks.collapse import collapse
from sinks.mysql.applier import MysqlApplier
from sinks.postgres.applier import PostgresApplier
from sinks.postgres.copy_progress import CopyProgress, RangeState
from sinks.worker import build_applier
from transforms.base import TransformError
from transforms.pipeline import Pipeline


class DirectWriter:
    """Writes chunks of one pipeline's snapshot into its target."""

    def __init__(self, settings: Settings) -> None:
        applier = build_applier(settings)
        assert isinstance(applier, PostgresApplier | MysqlApplier)
        self._applier = applier
        self._transforms = Pipeline.from_settings(settings.transforms)
        self.progress: CopyProgress = applier.copy_progress(settings.name)

    @property
    def transforms(self) -> bool:
        return bool(self._transforms)

    def prepare_table(self, schema: TableSchema) -> dict[str, str] | None:
        """A PostgreSQL target's column types (the table created first when
        allowed); None on a MySQL target."""
        if isinstance(self._applier, PostgresApplier):
            return self._applier.prepare_table((schema.schema, schema.table), schema)
        return None

    def write(self, schema: TableSchema, events: Sequence[ChangeEvent], state: RangeState) -> None:
        """A chunk's rows (`op: r` events of `schema`) and its progress
        (`state`) in one target transaction."""
        # the wire form a sink decodes: one encode and decode for the chunk
        rows = orjson.loads(values.dumps([event.after for event in events]))
        changes = []
        for event, row in zip(events, rows, strict=True):
            try:
                change = self._transforms.apply(
                    Change(
                        op=event.op,
                        schema=schema,
                        target=(schema.schema, schema.table),
                        key={k: row[k] for k in schema.key},
                        before=None,
                        after=row,
                        unchanged=(),
                        ts_ms=event.ts_ms,
                        topic="",
                        partition=0,
                        offset=0,
                    )
                )
            except TransformError as exc:
                raise TerminalError(
                    f"copying {schema.schema}.{schema.table}: {exc}",
                    "fix the transform or the row; the copy resumes at this chunk",
                ) from exc
            if change is not None:
                changes.append(change)
        self._applier.apply(
            list(collapse(changes)), {}, lambda _: self.progress.record(state, len(events))
        )

    def close(self) -> None:
        self._applier.close()
