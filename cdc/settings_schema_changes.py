"""The `schema_changes` section: what the sink does with each kind of source
schema change it meets in the stream (README "Schema changes while streaming")."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from cdc.settings_base import SettingsModel

Action = Literal["apply", "ignore", "stop"]
_STOP = "stop: the sink stops at the change, with its DDL and the fix, so a person can act"


class SchemaChangeSettings(SettingsModel):
    """Each kind: apply (make the target follow), ignore (log and count it), or stop."""

    add_column: Action = Field(
        "apply",
        description="apply: add the column, with the source's default and the value the"
        " rows already there hold; ignore: the target goes on without it; " + _STOP,
    )
    drop_column: Action = Field(
        "ignore",
        description="apply: drop the target column; ignore: keep it (made nullable when"
        " NOT NULL without a default, since rows no longer carry it); " + _STOP,
    )
    rename_column: Literal["apply", "stop"] = Field(
        "apply", description="apply: rename the target column, keeping its data; " + _STOP
    )
    alter_column_type: Action = Field(
        "apply",
        description="apply: change the target column's type to the translated new one"
        " (a change the target refuses stops the sink with the DDL); ignore: keep the"
        " target type (values that do not fit become dead letters); " + _STOP,
    )
    truncate: Action = Field(
        "apply", description="apply: truncate the target table too; ignore: keep its rows; " + _STOP
    )
    drop_table: Action = Field(
        "apply",
        description="apply: drop the target table too, once every row written before the"
        " DROP is applied; ignore: keep it with its rows; " + _STOP,
    )
    rename_table: Literal["apply", "stop"] = Field(
        "apply",
        description="apply: rename the target table, keeping its rows (rows under the new"
        " name wait for it); " + _STOP,
    )
