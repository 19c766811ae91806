"""The reverse pipeline of a cut-over: from the new side (the target) back to
the old one (the source), so that the old side stays current and a rollback
loses nothing.

`cdc cutover` writes it as a pipeline file of its own (run it like any other:
`cdc run -c <file>`, a systemd unit or a Kubernetes Deployment) and fixes where
it starts before the new side takes writes: on PostgreSQL it creates the
publication and the slot, on MySQL/MariaDB it stores the binlog position in the
reverse pipeline's offsets topic. It takes no snapshot: at that point both
sides are equal. The file keeps the connection settings as written in the
forward file (`${ENV}` references and `dsn_file` stay as they are), with the
two sides swapped; transforms are not carried over (they are not reversible).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from cdc.errors import TerminalError
from cdc.kafka.offsets import KafkaOffsetStore
from cdc.migrate.connections import is_postgres, mysql_connect, mysql_database, pg_connect
from cdc.mysql.setup import current_position
from cdc.mysql.source import POSITION_KEY
from cdc.postgres import catalog as pg_catalog
from cdc.postgres.setup import ensure_publication
from cdc.postgres.source import SLOT_KEY
from cdc.settings import PostgresSource, Settings
from cdc.settings_load import load_settings, read_yaml


def reverse_path(settings: Settings, config_path: Path) -> Path:
    chosen = settings.cutover.reverse_config
    if chosen is None:
        return config_path.with_name(f"{config_path.stem}.reverse.yaml")
    return chosen if chosen.is_absolute() else config_path.parent / chosen


def target_tables(settings: Settings, tables: list[tuple[str, str]]) -> list[str]:
    """The target's names of the source tables, as the sink names them."""
    assert settings.target is not None
    if is_postgres(settings.target):
        return [f"{schema}.{table}" for schema, table in tables]
    database = mysql_database(settings.target.dsn)
    return [f"{database}.{table}" for _, table in tables]


def write_reverse(settings: Settings, config_path: Path, tables: list[tuple[str, str]]) -> Path:
    """Write the reverse pipeline's file (owner-only: it may hold DSNs); its path."""
    assert settings.target is not None
    raw = read_yaml(config_path)
    if not is_postgres(settings.source):
        database = mysql_database(settings.source.dsn)
        elsewhere = sorted({schema for schema, _ in tables} - {database})
        if database is None or elsewhere:
            raise TerminalError(
                "the reverse pipeline writes into the database source.dsn names, but"
                + (" it names none" if database is None else f" tables live in {elsewhere}"),
                "end source.dsn with /<database> holding every replicated table",
            )
    document: dict[str, Any] = {
        "name": settings.cutover.reverse_name,
        "source": {
            "type": settings.target.type,
            **_connection(raw["target"]),
            "tables": target_tables(settings, tables),
        },
        "target": {"type": settings.source.type, **_connection(raw["source"])},
        "kafka": {k: v for k, v in raw["kafka"].items() if k != "topic_prefix"},
        "snapshot": {"mode": "never"},
    }
    for section in ("metrics", "log"):
        if section in raw:
            document[section] = raw[section]
    path = reverse_path(settings, config_path)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        file.write(
            f"# The reverse pipeline of {settings.name}, written by `cdc cutover`:\n"
            f"# the new side back to the old one. Run it with `cdc run -c {path.name}`.\n"
        )
        yaml.safe_dump(document, file, sort_keys=False)
    load_settings(path)  # a file cdc cannot run must fail here, not at 3 a.m.
    return path


def _connection(section: dict[str, Any]) -> dict[str, Any]:
    return {key: section[key] for key in ("dsn", "dsn_file") if key in section}


def prepare_start(reverse: Settings) -> str:
    """Fix where the reverse pipeline starts reading: now. Idempotent; what was done."""
    source = reverse.source
    kafka = reverse.kafka
    store = KafkaOffsetStore(kafka.client_config(), kafka.topic_prefix, kafka.replication_factor)
    if isinstance(source, PostgresSource):
        with pg_connect(source.dsn) as conn:
            tables = pg_catalog.select_tables(conn, source.selects)
            ensure_publication(conn, source.publication, tables)
            exists = conn.execute(
                "SELECT 1 FROM pg_replication_slots WHERE slot_name = %s", (source.slot_name,)
            ).fetchone()
            if exists:
                return f"slot {source.slot_name} exists"
            row = conn.execute(
                "SELECT lsn::text FROM pg_create_logical_replication_slot(%s, 'pgoutput')",
                (source.slot_name,),
            ).fetchone()
            assert row is not None
        # as the source records a slot it created: should it vanish, the source stops
        store.put(SLOT_KEY, {"slot": source.slot_name, "lsn": row[0]})
        return f"slot {source.slot_name} created at {row[0]}"
    stored = store.get(POSITION_KEY)
    if stored is not None:
        return f"starts at {stored['file']}:{stored['pos']}"
    with mysql_connect(source.dsn) as conn, conn.cursor() as cur:
        position = current_position(cur)
    store.put(POSITION_KEY, position.to_json())
    return f"starts at {position.file}:{position.pos}"
