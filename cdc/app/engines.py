"""Which engine serves a side of a pipeline: the one place that looks at a
settings section's `type`. The migration steps get their engines from here."""

from __future__ import annotations

from cdc.engine import Engine
from cdc.mysql.engine import MysqlEngine
from cdc.postgres.engine import PostgresEngine
from cdc.settings import PostgresSource, PostgresTarget, Source, Target


def engine_for(endpoint: Source | Target) -> Engine:
    """The engine of a source or target section (it connects only when asked)."""
    if isinstance(endpoint, PostgresSource | PostgresTarget):
        return PostgresEngine(endpoint)
    return MysqlEngine(endpoint)
