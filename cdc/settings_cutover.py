"""The `cutover:` section of a pipeline: the gates `cdc cutover` checks, how it
fences writes on the source, and the reverse pipeline it prepares."""

from __future__ import annotations

from pathlib import Path

from pydantic import AwareDatetime, Field

from cdc.settings_base import SettingsModel, no_default


class FenceSettings(SettingsModel):
    """How writes are stopped on the side being left (the source; the target on rollback)."""

    terminate_sessions: bool = Field(
        True,
        description="PostgreSQL: end the database's other sessions, so that none keeps writing"
        " (new sessions are read-only); false only when the applications are already stopped",
    )
    timeout_s: float = Field(
        120.0, gt=0, description="seconds to wait for the sink to apply the last change"
    )


class CutoverSettings(SettingsModel):
    """`cdc cutover` / `cdc rollback`: switch the application to the target and back."""

    max_lag_seconds: float = Field(
        10.0, ge=0, description="gate: the sink at most this far behind the source"
    )
    dlq_since: AwareDatetime | None = Field(
        None,
        description="gate: no dead letters at or after this time (ISO-8601 with offset);"
        " default: none at all since the pipeline started",
    )
    require_verify: bool = Field(
        True, description="gate: the last `cdc verify` found both sides equal"
    )
    final_verify: bool = Field(
        True, description="verify once more after the last change is applied, before reporting"
    )
    fence: FenceSettings = Field(default_factory=FenceSettings)
    reverse: bool = Field(
        False,
        description="true: prepare replication from the target back to the source, so the old"
        " side stays current (run it with `cdc run -c <reverse_config>`)",
    )
    reverse_name: str = Field(
        "",
        pattern=r"^[a-z0-9_]{1,63}$",
        json_schema_extra=no_default,
        description="the reverse pipeline's name (slot, topics, group); default: <name>_reverse",
    )
    reverse_config: Path | None = Field(
        None,
        description="where the reverse pipeline's file is written; default: next to this file,"
        " <file name>.reverse.yaml",
    )
