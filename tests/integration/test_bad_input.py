"""Every row of the README's "What cdc refuses, and why", on the real servers and
through `cdc run` as systemd runs it: the bad input, the exit status, what the
`stopped` line says (error and fix), and that nothing was lost. Either the target
ends equal to the source while cdc goes on, or cdc stopped with its position short
of the bad change (PostgreSQL: the slot's confirmed_flush_lsn; MariaDB: the binlog
position on the offsets topic; the sink: its cdc_offsets on the target) and, once
the user made the fix the line names, a restart ends equal.

One pipeline shape serves every row: `items (id, v, d)` holding rows 1-3 on the
source, `cdc run` with both roles, `target.create_tables: true`."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from confluent_kafka import Producer

from cdc.topics import dead_letter_topic
from tests.integration.bad_input_support import (
    DROP,
    Engine,
    Kept,
    Pipe,
    mysql_bad,
    pg_bad,
    sink_bad,
    with_host,
)
from tests.integration.daemon_process import logged, wait_until
from tests.integration.sink_support import end_positions, read_topic
from tests.integration.test_tls import kafka_sasl

TABLE = {
    "postgres": "CREATE TABLE items (id int PRIMARY KEY, v text, d date)",
    "mysql": "CREATE TABLE items (id INT PRIMARY KEY, v VARCHAR(100), d DATE NULL)",
}
ROWS = "INSERT INTO items VALUES (1, 'one', '2024-01-01'), (2, 'two', NULL), (3, 'three', NULL)"
AFTER = "INSERT INTO items (id, v) VALUES (10, 'written after it')"
WRONG = "Wrong-pw-4711"  # a password no server takes; it must never be printed


def held_port(pipe: Pipe) -> dict[str, Any]:
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    pipe.held.append(taken)
    return {"metrics": {"listen": f"127.0.0.1:{taken.getsockname()[1]}"}}


def raise_the_limit(pipe: Pipe) -> None:
    """The setting alone: cdc raises the limit of the topic it created under the old one."""
    pipe.write({"kafka": {"max_message_bytes": 4_194_304}})


def null_and_fix_the_row(pipe: Pipe) -> None:
    pipe.write({"source": {"zero_dates": "null"}})
    pipe.execute("UPDATE items SET d = '2024-02-02' WHERE id = 9")


def without_a_key(pipe: Pipe) -> dict[str, Any]:
    pipe.execute("ALTER TABLE items DROP CONSTRAINT items_pkey")
    return {}


def nowhere(pipe: Pipe) -> dict[str, Any]:
    with socket.socket() as closed:  # a port nothing listens on
        closed.bind(("127.0.0.1", 0))
        return {"kafka": {"bootstrap_servers": f"127.0.0.1:{closed.getsockname()[1]}"}}


def truncate_then_write(pipe: Pipe) -> None:
    pipe.execute(
        "TRUNCATE items",
        "INSERT INTO items VALUES (9, 'after the truncate', NULL)",
        "UPDATE items SET v = 'updated after it' WHERE id = 9",
    )


def poison(pipe: Pipe) -> None:
    producer = Producer({"bootstrap.servers": pipe.bootstrap})
    producer.produce(pipe.topic, b"{not json", b'{"id": 1}', partition=0)
    assert producer.flush(30) == 0


def one_truncate(pipe: Pipe) -> None:
    with psycopg.connect(pipe.dst) as pg:
        recorded = pg.execute("SELECT count(*) FROM cdc_truncates").fetchone()
    assert recorded is not None and recorded[0] > 0


def one_dead_letter(pipe: Pipe) -> None:
    dlq = dead_letter_topic(pipe.name)
    assert [m.value() for m in read_topic(pipe.bootstrap, dlq, 1)] == [b"{not json"]
    assert end_positions(pipe.bootstrap, [dlq], 1) == {(dlq, 0): 1}  # set aside once
    said = [e for e in pipe.runs[-1].log_events() if e["event"] == "dead_lettered"]
    assert [(e["table"], e["reason"]) for e in said] == [(pipe.topic, "decode")], said


@dataclass(frozen=True)
class Case:
    """One row. `bad_file`: the file's sections for the bad run; `plant`: the bad
    input, written while it streams (None: the file is the bad input); `code`: the
    exit status (0: after SIGTERM, as it goes on or waits); `says`: what the `event`
    line's error and fix hold ("…" between parts); `fix`: what the user does before
    the restart (None: no restart)."""

    id: str
    code: int
    says: tuple[str, str] = ("", "")
    event: str = "stopped"  # the log line the user sees it by ("": none)
    bad_file: Callable[[Pipe], dict[str, Any]] = lambda pipe: {}
    plant: Callable[[Pipe], Kept | None] | None = None
    fix: Callable[[Pipe], None] | None = None
    source: Engine = "postgres"
    target: Engine = "postgres"
    seen: Callable[[Pipe], None] | None = None  # where else the user sees it


CASES = [
    Case(
        "misspelt-key-in-the-file",
        2,
        ("source.slot_nme: unknown key", "(hint: did you mean slot_name?)"),
        bad_file=lambda pipe: {"source": {"slot_nme": "x"}},
        fix=lambda pipe: pipe.write({"source": {"slot_nme": DROP}}),
    ),
    Case(
        "table-the-source-lacks",
        1,
        (
            "does not have: public.itmes (closest: public.items)",
            "correct the names in source.tables",
        ),
        bad_file=lambda pipe: {"source": {"tables": ["public.itmes"]}},
        fix=lambda pipe: pipe.write({"source": {"tables": ["public.items"]}}),
    ),
    Case(
        "include-pattern-matching-no-table",
        0,
        ("", "check the pattern in source.tables.include"),
        "tables_pattern_matches_nothing",
        bad_file=lambda pipe: {"source": {"tables": {"include": ["public.items", "public.no_*"]}}},
        plant=lambda pipe: None,
    ),
    Case(
        "postgres-table-without-a-key",
        1,
        (
            "table public.items has no primary key, so its updates and deletes cannot be",
            'ALTER TABLE "public"."items" REPLICA IDENTITY FULL (or add a primary key)',
        ),
        bad_file=without_a_key,
        fix=lambda pipe: pipe.execute("ALTER TABLE items ADD PRIMARY KEY (id)"),
    ),
    Case(
        "kafka-not-answering-at-start",
        0,
        ("", "start the brokers, or check kafka.bootstrap_servers"),
        "kafka_unreachable",
        bad_file=nowhere,
        fix=lambda pipe: pipe.write({"kafka": {"bootstrap_servers": pipe.bootstrap}}),
    ),
    Case(
        "metrics-port-in-use",
        2,
        ("metrics.listen 127.0.0.1:{port}", "set metrics.listen to a free host:port"),
        bad_file=held_port,
        fix=lambda pipe: pipe.write({"metrics": {"listen": "127.0.0.1:0"}}),
    ),
    Case(
        "wrong-target-password",
        1,
        ("MySQL refused access: … Access denied", "fix the credentials"),
        bad_file=lambda pipe: {"target": {"dsn": with_host(pipe.dst, "127.0.0.1", WRONG)}},
        fix=lambda pipe: pipe.write({"target": {"dsn": pipe.dst}}),
        target="mysql",
    ),
    Case(
        "wrong-kafka-sasl-password",
        1,
        ("Kafka refused the connection to … SASL authentication error", "check kafka.sasl"),
        bad_file=lambda pipe: {"kafka": kafka_sasl(pipe.env, WRONG)},
        fix=lambda pipe: pipe.write({"kafka": kafka_sasl(pipe.env)}),
    ),
    Case(
        "target-is-the-source",
        2,
        ("the source and the target are the same database", "point target.dsn at the database"),
        # the same server under another name: still the same database
        bad_file=lambda pipe: {
            "target": {"type": "mysql", "dsn": with_host(pipe.src, "localhost")}
        },
        fix=lambda pipe: pipe.write({"target": {"type": "postgres", "dsn": pipe.dst}}),
        source="mysql",
    ),
    Case(
        "row-above-max-message-bytes",
        2,
        (
            'a change of public.items (key {{"id":9}}) is … bytes as JSON, above'
            " kafka.max_message_bytes (1048576)",
            "raise kafka.max_message_bytes … cdc raises its topics' max.message.bytes",
        ),
        bad_file=lambda pipe: {"kafka": {"max_message_bytes": 1_048_576}},  # the least it takes
        # md5 text does not compress away: 1.3 MB on the wire
        plant=lambda pipe: pg_bad(
            pipe,
            "INSERT INTO items SELECT 9, string_agg(md5(i::text), ''), NULL"
            " FROM generate_series(1, 41000) AS i",
        ),
        fix=raise_the_limit,
    ),
    Case(
        "mariadb-partial-row-image-insert",
        2,
        ("inserts a row of {table} without all its columns", "SET GLOBAL binlog_row_image = FULL"),
        plant=lambda pipe: mysql_bad(
            pipe,
            "SET SESSION binlog_row_image = MINIMAL",
            "INSERT INTO items (id, v) VALUES (9, 'partial')",
        ),
        source="mysql",
    ),
    Case(
        "mariadb-zero-date-under-error",
        2,  # the binlog keeps the zero date: a restart meets it again until the file changes
        ("zero date in {table}.d", "source.zero_dates: null"),
        bad_file=lambda pipe: {"source": {"zero_dates": "error"}},
        plant=lambda pipe: mysql_bad(
            pipe, "SET SESSION sql_mode = ''", "INSERT INTO items VALUES (9, 'zero', '0000-00-00')"
        ),
        fix=null_and_fix_the_row,
        source="mysql",
    ),
    Case(
        "schema-change-under-stop",
        1,
        (
            "schema change on the source (add_column extra) for {table}: ALTER TABLE items",
            "make the change on {table} by hand, then set schema_changes.add_column: ignore",
        ),
        bad_file=lambda pipe: {"schema_changes": {"add_column": "stop"}},
        plant=lambda pipe: sink_bad(
            pipe,
            "ALTER TABLE items ADD COLUMN extra INT DEFAULT 7",
            "INSERT INTO items VALUES (9, 'wider', NULL, 8)",
        ),
        fix=lambda pipe: pipe.write({"schema_changes": {"add_column": "apply"}}),
        source="mysql",
    ),
    Case(
        "truncate-then-writes-at-once",
        0,
        event="",
        plant=truncate_then_write,
        source="mysql",
        seen=one_truncate,
    ),
    Case(
        "poison-message-on-a-table-topic",
        0,
        event="dead_lettered",
        plant=poison,
        target="mysql",
        seen=one_dead_letter,
    ),
]


@pytest.fixture
def pipe(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    dev_env: dict[str, str],
    pg_dsn: str,
    pg_target_dsn: str,
    mysql_dsn: str,
    topic_prefix: str,
) -> Iterator[Pipe]:
    case: Case = request.param
    src = pg_dsn if case.source == "postgres" else mysql_dsn
    dst = pg_target_dsn if case.target == "postgres" else mysql_dsn
    made = Pipe(case.source, src, case.target, dst, topic_prefix, tmp_path, dev_env)
    made.config = {
        "name": topic_prefix,
        "source": {"type": case.source, "dsn": src, "tables": [made.table]},
        "kafka": {"bootstrap_servers": made.bootstrap, "partitions": 2},
        "metrics": {"listen": "127.0.0.1:0"},
        "target": {"type": case.target, "dsn": dst, "create_tables": True},
    }
    made.execute(TABLE[case.source], ROWS)
    yield made
    for daemon in made.runs:
        daemon.stop()
    for taken in made.held:
        taken.close()


def rows() -> list[Any]:
    return [pytest.param(case, case, id=case.id) for case in CASES]


@pytest.mark.parametrize(("case", "pipe"), rows(), indirect=["pipe"])
def test_bad_input(case: Case, pipe: Pipe) -> None:
    pipe.write(case.bad_file(pipe))
    kept = None
    daemon = pipe.start()
    if case.plant is not None:
        pipe.wait_equal(daemon)
        kept = case.plant(pipe)
    if case.code != 0:
        daemon.proc.wait(60)  # it stops by itself
    elif case.plant is None:  # it waits, until SIGTERM
        wait_until(lambda: logged(daemon, case.event), 60, case.event, daemon)
    else:  # it goes on: the rows written after it arrive too
        pipe.execute(AFTER)
        pipe.wait_equal(daemon)
    code, log, events = daemon.stop(), daemon.log_path.read_text(), daemon.log_events()
    assert code == case.code, daemon.log_tail()
    assert "Traceback" not in log and WRONG not in log, daemon.log_tail()
    if events:
        failed = [e["event"] for e in events if e["level"] == "error"]
        assert failed == ["stopped"] if code else set(failed) <= {case.event}, log[-3000:]
        said = [(e.get("error", ""), e.get("fix", "")) for e in events if e["event"] == case.event]
    else:  # a file cdc cannot run: its problems on stderr, one a line, before any log line
        said = [(line, line) for line in log.splitlines()]
    port = pipe.held[0].getsockname()[1] if pipe.held else 0
    error, fix = (part.format(table=pipe.table, port=port).split(" … ") for part in case.says)
    assert not case.event or any(
        all(p in e for p in error) and all(p in f for p in fix) for e, f in said
    ), said
    if case.seen is not None:
        case.seen(pipe)
    if kept is not None:
        assert (passed := kept(pipe)) is None, passed
    if case.fix is not None:
        case.fix(pipe)
        pipe.execute(AFTER)
        daemon = pipe.start()
        pipe.wait_equal(daemon)
        assert daemon.stop() == 0, daemon.log_tail()
