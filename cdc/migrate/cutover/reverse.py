"""The reverse pipeline of a cut-over: from the new side (the target) back to
the old one (the source), so that the old side stays current and a rollback
loses nothing.

`cdc cutover` writes it as a pipeline file of its own (run it like any other:
`cdc run -c <file>`, a systemd unit or a Kubernetes Deployment) and fixes where
it starts before the new side takes writes (`Engine.start_reverse`: on
PostgreSQL the publication and the slot, on MySQL/MariaDB the binlog position
in the reverse pipeline's offsets topic). It takes no snapshot: at that point
both sides are equal. `cdc rollback` retires it (`Engine.retire_reverse`) once
the old side is current again. The file keeps the connection settings as written in the
forward file (`${ENV}` references and `dsn_file` stay as they are), with the
two sides swapped; transforms are not carried over (they are not reversible),
but a table the old side's sink would write elsewhere (a MySQL table going back
to PostgreSQL) is renamed to where it came from.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from cdc.engine import Sides
from cdc.engine.cutover import TableName
from cdc.kafka.offsets import KafkaOffsetStore
from cdc.settings import Settings
from cdc.settings_load import load_settings, read_yaml
from transforms.registry import check as check_transforms


def reverse_path(settings: Settings, config_path: Path) -> Path:
    chosen = settings.cutover.reverse_config
    if chosen is None:
        return config_path.with_name(f"{config_path.stem}.reverse.yaml")
    return chosen if chosen.is_absolute() else config_path.parent / chosen


def write_reverse(
    settings: Settings, sides: Sides, config_path: Path, tables: list[TableName]
) -> Path:
    """Write the reverse pipeline's file (owner-only: it may hold DSNs); its path."""
    assert settings.target is not None
    raw = read_yaml(config_path)
    sides.source.check_takes_back(tables)
    names = [sides.target.target_table(*table) for table in tables]  # as the sink wrote them
    document: dict[str, Any] = {
        "name": settings.cutover.reverse_name,
        "source": {
            "type": settings.target.type,
            **_connection(raw["target"]),
            "tables": [f"{schema}.{table}" for schema, table in names],
        },
        "target": {"type": settings.source.type, **_connection(raw["source"])},
        "kafka": {k: v for k, v in raw["kafka"].items() if k != "topic_prefix"},
        "snapshot": {"mode": "never"},
    }
    # A MySQL table's schema is its database: going back to PostgreSQL its rows would
    # land in a schema of that name, not in the table they came from.
    renamed = [
        {"type": "rename_table", "table": f"{name[0]}.{name[1]}", "to": f"{table[0]}.{table[1]}"}
        for name, table in zip(names, tables, strict=True)
        if sides.source.target_table(*name) != table
    ]
    if renamed:
        document["transforms"] = renamed
    if "log" in raw:
        document["log"] = raw["log"]
    document["metrics"] = {**raw.get("metrics", {}), "listen": reverse_listen(settings)}
    path = reverse_path(settings, config_path)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        file.write(
            f"# The reverse pipeline of {settings.name}, written by `cdc cutover`:\n"
            f"# the new side back to the old one. Run it with `cdc run -c {path.name}`.\n"
        )
        yaml.safe_dump(document, file, sort_keys=False)
    # a file cdc cannot run must fail here, not at 3 a.m.
    load_settings(path, check_transforms=check_transforms)
    return path


def reverse_listen(settings: Settings) -> str:
    """Both pipelines run on one host for the rollback window: the reverse one
    serves its metrics on the next port (a port of 0 stays "any free one")."""
    host, port = settings.metrics.address
    return f"{host}:{port + 1 if port else 0}"


def _connection(section: dict[str, Any]) -> dict[str, Any]:
    return {key: section[key] for key in ("dsn", "dsn_file") if key in section}


def prepare_start(reverse: Settings, sides: Sides) -> str:
    """Fix where the reverse pipeline starts reading: now. Idempotent; what was done."""
    kafka = reverse.kafka
    store = KafkaOffsetStore(kafka.client_config(), kafka.topic_prefix, kafka.replication_factor)
    return sides.source.start_reverse(store)
