"""The reverse pipeline of a cut-over: from the new side (the target) back to
the old one (the source), so that the old side stays current and a rollback
loses nothing.

`cdc cutover` writes it as a pipeline file of its own (run it like any other:
`cdc run -c <file>`, a systemd unit or a Kubernetes Deployment) and fixes where
it starts before the new side takes writes: on PostgreSQL it creates the
publication and the slot, on MySQL/MariaDB it stores the binlog position in the
reverse pipeline's offsets topic. It takes no snapshot: at that point both
sides are equal. `cdc rollback` retires it (`retire`) once the old side is
current again. The file keeps the connection settings as written in the
forward file (`${ENV}` references and `dsn_file` stay as they are), with the
two sides swapped; transforms are not carried over (they are not reversible),
but a MySQL table going back to PostgreSQL is renamed to the schema it came from.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import psycopg.errors
import yaml
from psycopg import sql

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
    if is_postgres(settings.source) and not is_postgres(settings.target):
        # A MySQL table's schema is its database: without these its rows would land
        # in a PostgreSQL schema of that name, not in the table they came from.
        document["transforms"] = [
            {"type": "rename_table", "table": reverse_table, "to": f"{schema}.{table}"}
            for reverse_table, (schema, table) in zip(
                target_tables(settings, tables), tables, strict=True
            )
        ]
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


def retire(reverse: Settings, path: str) -> tuple[bool, str]:
    """After a rollback the reverse pipeline has nothing left to carry, but its slot on
    the new side would keep WAL there for ever: drop it and the publication, unless the
    reverse pipeline still reads it. (done, what was done or what to do)."""
    source = reverse.source
    if not isinstance(source, PostgresSource):
        return True, (
            f"nothing of the reverse pipeline {reverse.name} holds the target's binlogs:"
            f" stop it (cdc run -c {path})"
        )
    slot = source.slot_name
    still_read = (
        f"the reverse pipeline {reverse.name} still reads its slot {slot} on the target,"
        f" which keeps WAL there while it exists: stop it (cdc run -c {path}) and run"
        " `cdc rollback` again to drop the slot"
    )
    with pg_connect(source.dsn) as conn:
        row = conn.execute(
            "SELECT active FROM pg_replication_slots WHERE slot_name = %s", (slot,)
        ).fetchone()
        if row is not None and row[0]:
            return False, still_read
        try:
            if row is not None:
                conn.execute("SELECT pg_drop_replication_slot(%s)", (slot,))
        except psycopg.errors.ObjectInUse:  # it started reading a moment ago
            return False, still_read
        conn.execute(
            sql.SQL("DROP PUBLICATION IF EXISTS {}").format(sql.Identifier(source.publication))
        )
    return True, (
        f"the reverse pipeline's slot {slot} and publication {source.publication}"
        " dropped on the target"
    )
