"""Which applier writes a pipeline's target: the sink's side of the one
choice by the target section's `type`."""

from __future__ import annotations

from cdc.applier import Applier
from cdc.settings import PostgresTarget, Settings
from sinks.mysql.applier import MysqlApplier
from sinks.postgres.applier import PostgresApplier


def build_applier(settings: Settings) -> Applier:
    """A connected applier for the pipeline's target."""
    target = settings.target
    assert target is not None
    if isinstance(target, PostgresTarget):
        return PostgresApplier(
            target.dsn.get_secret_value(),
            settings.consumer_group,
            target.conflict_for,
            target.create_tables,
            settings.schema_changes,
        )
    return MysqlApplier(
        target.dsn,
        settings.consumer_group,
        target.conflict_for,
        target.create_tables,
        settings.schema_changes,
    )
