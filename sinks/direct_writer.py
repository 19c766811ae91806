"""Snapshot rows written straight into the target (`snapshot.mode: direct`),
through the sink's own path: the same wire values, transforms, table
creation and type conversion as a streamed change, minus Kafka.

Each chunk is one target transaction together with its progress row (the
applier's `copy_progress`, `cdc.bulk`). Copied rows are inserts on a target
that lacks them; a key the target holds after all (a chunk of a newer
snapshot on resume, rows put there by hand) is resolved by the conflict
policy, as in the sink.
"""

from __future__ import annotations

from collections.abc import Sequence

import orjson

from cdc import values
from cdc.applier import Applier
from cdc.bulk import CopyProgress, CopyTarget, RangeState
from cdc.changes import Change
from cdc.errors import TerminalError
from cdc.events import ChangeEvent
from cdc.schemas import TableSchema
from sinks.collapse import collapse
from transforms.base import TransformError
from transforms.pipeline import Pipeline


class DirectWriter:
    """Writes chunks of one pipeline's snapshot into its target as rows: the
    `BulkWriter` of a target that takes no COPY stream (MySQL), and the rows
    path of one that does (`sinks.postgres.bulk_writer`).

    `progress` is on the applier's connection: `record` runs in the
    transaction `apply` writes the chunk in."""

    def __init__(self, applier: Applier, progress: CopyProgress, transforms: Pipeline) -> None:
        self._applier = applier
        self._progress = progress
        self._transforms = transforms

    @property
    def progress(self) -> CopyProgress:
        return self._progress

    @property
    def transforms(self) -> bool:
        return bool(self._transforms)

    def prepare(self, schema: TableSchema) -> CopyTarget | None:
        """None: every table takes rows, created by the applier when allowed."""
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
            list(collapse(changes)), {}, lambda _: self._progress.record(state, len(events))
        )

    def defer_keys(self, tables: Sequence[TableSchema], todo: Sequence[RangeState]) -> None:
        """Nothing to defer: no table is loaded as a COPY stream."""

    def build_keys(self) -> None:
        """Nothing deferred to build."""

    def close(self) -> None:
        self._applier.close()
