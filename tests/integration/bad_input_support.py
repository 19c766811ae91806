"""The pipeline every row of tests/integration/test_bad_input.py runs: its source and
target, its file as a user edits it, `cdc run` as systemd starts it, and how each side
shows that its position did not pass a bad change."""

from __future__ import annotations

import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

import psycopg
import yaml

from cdc.kafka.offsets import KafkaOffsetStore
from cdc.mysql.position import BinlogPosition, parse_gtids
from cdc.mysql.source import POSITION_KEY
from cdc.topics import table_topic
from tests.integration.conftest import mysql_connect
from tests.integration.convergence import Digest, mysql_digest, pg_digest
from tests.integration.daemon_process import DaemonProcess, current_lsn, slot_state, wait_until
from tests.integration.sink_support import end_positions

Engine = Literal["postgres", "mysql"]
DROP = "<drop>"  # a value of `Pipe.write` that removes its key


@dataclass
class Pipe:
    """One row's pipeline: its source and target, its file and its runs."""

    source: Engine
    src: str
    target: Engine
    dst: str
    name: str
    tmp_path: Path
    env: dict[str, str]  # .dev/env: the brokers, the SASL listener and its password
    config: dict[str, Any] = field(default_factory=dict)
    runs: list[DaemonProcess] = field(default_factory=list)
    held: list[socket.socket] = field(default_factory=list)  # ports kept busy

    @property
    def bootstrap(self) -> str:
        return self.env["CDC_KAFKA_BOOTSTRAP"]

    @property
    def table(self) -> str:
        """The source table; a PostgreSQL target keeps its name, a MariaDB one puts it
        in the DSN's database."""
        return "public.items" if self.source == "postgres" else f"{database(self.src)}.items"

    @property
    def topic(self) -> str:
        return table_topic(self.name, *self.table.split("."))

    def write(self, sections: dict[str, Any]) -> None:
        """The file with `sections` merged into it, as a user edits it."""
        self.config = merged(self.config, sections)
        (self.tmp_path / "pipeline.yaml").write_text(yaml.safe_dump(self.config))

    def start(self) -> DaemonProcess:
        log = self.tmp_path / f"run-{len(self.runs)}.log"
        self.runs.append(DaemonProcess(self.tmp_path / "pipeline.yaml", log, "all"))
        return self.runs[-1]

    def execute(self, *statements: str) -> None:
        """`statements` in one session on the source, each its own transaction."""
        if self.source == "mysql":
            with mysql_connect(self.src) as conn, conn.cursor() as cur:
                for statement in statements:
                    cur.execute(statement)
            return
        with psycopg.connect(self.src, autocommit=True) as pg:
            for statement in statements:
                pg.execute(statement.encode())

    def digests(self) -> tuple[Digest | None, Digest | None]:
        columns = ["id", "v", "d"]
        mine = pg_digest if self.source == "postgres" else mysql_digest
        target = self.table if self.target == "postgres" else f"{database(self.dst)}.items"
        theirs = pg_digest if self.target == "postgres" else mysql_digest
        return mine(self.src, self.table, columns), theirs(self.dst, target, columns)

    def wait_equal(self, daemon: DaemonProcess) -> None:
        def equal() -> bool:
            source, target = self.digests()
            return source is not None and source == target

        wait_until(equal, 60, f"the target to equal the source: {self.digests()}", daemon)


def merged(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in changes.items():
        if value == DROP:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(base.get(key), dict):
            out[key] = merged(base[key], value)
        else:
            out[key] = value
    return out


def database(dsn: str) -> str:
    return urlsplit(dsn).path.strip("/")


def with_host(dsn: str, host: str, password: str | None = None) -> str:
    parts = urlsplit(dsn)
    netloc = f"{parts.username}:{password or parts.password}@{host}:{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))


# After the stop: how the position passed the bad change, or None if it did not.
Kept = Callable[[Pipe], str | None]


def pg_bad(pipe: Pipe, statement: str) -> Kept:
    """`statement` in a transaction of its own; the slot must not confirm its writes."""
    with psycopg.connect(pipe.src) as pg:
        pg.execute(statement.encode())
        written = current_lsn(pg)

    def kept(pipe: Pipe) -> str | None:
        with psycopg.connect(pipe.src, autocommit=True) as pg:
            confirmed = slot_state(pg, pipe.name).confirmed_flush
        return None if confirmed < written else f"the slot confirmed {confirmed:X} >= {written:X}"

    return kept


def mysql_bad(pipe: Pipe, *statements: str) -> Kept:
    """`statements` in one session, the last one writing; the binlog position stored
    on the offsets topic must not include that transaction's GTID."""
    with mysql_connect(pipe.src) as conn, conn.cursor() as cur:
        for statement in statements:
            cur.execute(statement)
        cur.execute("SELECT @@last_gtid")
        domain, _, seq = cur.fetchone()[0].split("-")

    def kept(pipe: Pipe) -> str | None:
        stored = KafkaOffsetStore(pipe.bootstrap, pipe.name).get(POSITION_KEY)
        assert stored is not None, "the source stored no position"
        gtids = parse_gtids(BinlogPosition.from_json(stored).gtid)
        assert domain in gtids, f"the stored position {stored} names no GTID of domain {domain}"
        done = int(gtids[domain].split("-")[2])
        return None if done < int(seq) else f"stored {stored}, at or past {domain}-x-{seq}"

    return kept


def sink_bad(pipe: Pipe, *statements: str) -> Kept:
    """`statements` on the source once the sink applied every message before them;
    the sink's cdc_offsets on the target must stay where they were."""
    ends = end_positions(pipe.bootstrap, [pipe.topic], 2)
    before = {key: end for key, end in ends.items() if end}
    wait_until(lambda: applied(pipe) == before, 30, f"the sink to apply {before}")
    pipe.execute(*statements)
    return lambda pipe: None if applied(pipe) == before else f"{applied(pipe)} past {before}"


def applied(pipe: Pipe) -> dict[tuple[str, int], int]:
    with psycopg.connect(pipe.dst) as pg:
        rows = pg.execute(
            "SELECT topic, kafka_partition, next_offset FROM cdc_offsets WHERE topic = %s",
            (pipe.topic,),
        ).fetchall()
    return {(topic, partition): offset for topic, partition, offset in rows}
