"""The direct copy's wiring (`snapshot.mode: direct`): a source hands the
snapshot reader of its tables to `direct_copy(settings)`, which runs the
copy (`cdc.direct_copy`) into the bulk writer of the pipeline's target,
opened for the copy and closed after it."""

from __future__ import annotations

from collections.abc import Iterator

from cdc.app.appliers import build_applier
from cdc.bulk import BulkWriter, DirectCopy, SnapshotReader
from cdc.direct_copy import copy_snapshot
from cdc.settings import PostgresTarget, Settings
from cdc.source import StreamItem
from sinks.direct_writer import DirectWriter
from sinks.mysql.applier import MysqlApplier
from sinks.postgres.applier import PostgresApplier
from sinks.postgres.bulk_writer import PgBulkWriter
from transforms.pipeline import Pipeline


def direct_copy(settings: Settings) -> DirectCopy:
    def copy(reader: SnapshotReader) -> Iterator[StreamItem]:
        writer = bulk_writer(settings)
        try:
            yield from copy_snapshot(reader, writer)
        finally:
            writer.close()

    return copy


def bulk_writer(settings: Settings) -> BulkWriter:
    """The target's writer, on the sink's applier (its session, conflict
    policies, `target.create_tables`) and the pipeline's transforms."""
    applier = build_applier(settings)
    transforms = Pipeline.from_settings(settings.transforms)
    if isinstance(applier, PostgresApplier):
        target = settings.target
        assert isinstance(target, PostgresTarget)
        dsn = target.dsn.get_secret_value()
        parallelism = settings.snapshot.parallelism
        return PgBulkWriter(applier, transforms, dsn, settings.name, parallelism)
    assert isinstance(applier, MysqlApplier)
    return DirectWriter(applier, applier.copy_progress(settings.name), transforms)
