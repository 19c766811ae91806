"""What every settings model shares: forbidden unknown keys, host:port checks."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict

from cdc.secrets import setting_error


class SettingsModel(BaseModel):
    # A misspelt key must fail loudly: a silently ignored `slot_nmae` would create a second slot.
    model_config = ConfigDict(extra="forbid")


def no_default(schema: dict[str, Any]) -> None:
    """For defaults derived from the pipeline name: the schema shows none rather than ""."""
    schema.pop("default", None)


def check_host_port(value: str, min_port: int = 1) -> str:
    match = re.fullmatch(r"(\[[0-9A-Fa-f:.]+\]|[^:\s\[\]/]+):(\d{1,5})", value.strip())
    if match is None or not min_port <= int(match.group(2)) <= 65535:
        raise setting_error("must be host:port", "for example 127.0.0.1:9092 or [::1]:9092")
    return value.strip()
