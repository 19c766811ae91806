"""A table without a primary key, end to end on PG->PG, MariaDB->PG and PG->MariaDB with
`sink.workers: 2`: identical rows and NULLs in the snapshot, then streamed inserts of
identical rows, a delete and an update of one of two duplicates, updates and deletes of
rows holding NULLs, a row differing only in letter case, a float a double cannot equal,
an update that changes nothing. The target ends with the source's rows, duplicates
counted; `cdc verify` compares the two as multisets; no dead letters; the sink alive."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from cdc.cli import main
from cdc.migrate.verify.canonical import row_text
from cdc.schemas import TableSchema
from cdc.topics import schemas_topic
from tests.integration.conftest import CommandFile, pg_execute
from tests.integration.daemon_process import cdc_command
from tests.integration.pipeline import wait_until
from tests.integration.schema_load import Db, end_problems, streaming
from tests.integration.sink_support import read_topic
from tests.integration.test_schema_changes import CASES, Case, sides

TABLE = "t_keyless"
CREATE = {
    "postgres": f"CREATE TABLE {TABLE} (a integer, b varchar(20), f real, j json)",
    "mysql": f"CREATE TABLE {TABLE} (a INT, b VARCHAR(20), f FLOAT, j JSON)",
}
SNAPSHOT = (
    "(1, 'x', 1.5, '{\"k\": 1}'), (1, 'x', 1.5, '{\"k\": 1}'), (1, 'X', 1.5, '{\"k\": 1}'),"
    " (2, NULL, NULL, NULL), (2, NULL, NULL, NULL), (NULL, NULL, NULL, NULL),"
    " (3, 'y', 0.1, '[1, 2]')"
)
KEYED = "CREATE TABLE t_keyed (id int PRIMARY KEY, v int)"
# what is left once the changes below ran: (a, b, f, j)
EXPECTED = [
    (1, "x", 1.5, {"k": 1}),
    (2, "was null", None, None),
    (4, "z", 2.5, {}),
    (4, "z", 2.5, {}),
    (5, "z", 2.5, {}),
    (6, None, None, None),
]


def one(engine: str, where: str) -> str:
    """The `WHERE` of a statement that changes one of the rows `where` selects."""
    if engine == "mysql":
        return f"{where} LIMIT 1"
    return f"ctid = (SELECT ctid FROM {TABLE} WHERE {where} LIMIT 1)"


def changes(engine: str) -> list[str]:
    # MariaDB compares text by the table's case-insensitive collation: BINARY tells x from X
    text = "BINARY b" if engine == "mysql" else "b"
    lower, upper = one(engine, f"a = 1 AND {text} = 'x'"), one(engine, f"{text} = 'X'")
    return [
        f"INSERT INTO {TABLE} VALUES (4, 'z', 2.5, '{{}}'), (4, 'z', 2.5, '{{}}')",
        f"INSERT INTO {TABLE} VALUES (4, 'z', 2.5, '{{}}')",
        # one of two duplicates: the other stays
        f"DELETE FROM {TABLE} WHERE {lower}",
        f"UPDATE {TABLE} SET a = 5 WHERE {one(engine, 'a = 4')}",
        # rows holding NULLs
        f"UPDATE {TABLE} SET b = 'was null' WHERE {one(engine, 'a = 2')}",
        f"DELETE FROM {TABLE} WHERE {one(engine, 'a IS NULL')}",
        f"DELETE FROM {TABLE} WHERE {one(engine, 'a = 2 AND b IS NULL')}",
        # the row that differs from a remaining one by letter case only
        f"DELETE FROM {TABLE} WHERE {upper}",
        # changes nothing, then a float no double literal equals (0.1 as a real)
        f"UPDATE {TABLE} SET a = a WHERE a = 3",
        f"DELETE FROM {TABLE} WHERE {one(engine, 'a = 3')}",
        f"INSERT INTO {TABLE} VALUES (6, NULL, NULL, NULL), (6, NULL, NULL, NULL)",
        f"DELETE FROM {TABLE} WHERE {one(engine, 'a = 6')}",
    ]


def rows(db: Db) -> list[str]:
    """The table's rows in canonical text, sorted: a multiset, duplicates kept."""
    found = db.query(f"SELECT a, b, f, j FROM {db.table(TABLE)}")
    return sorted(row_text(normalised(row)) for row in found)


def normalised(row: tuple[Any, ...]) -> tuple[Any, ...]:
    """MariaDB's JSON is text; a single-precision float as the shortest decimal."""
    a, b, f, j = row
    return (
        a,
        b,
        None if f is None else float(f"{f:.6g}"),
        json.loads(j) if isinstance(j, str) else j,
    )


def schemas(bootstrap: str, prefix: str) -> dict[str, set[bool]]:
    """Each table's `keyless` flags, over every schema version the source published."""
    found: dict[str, set[bool]] = {}
    for message in read_topic(bootstrap, schemas_topic(prefix), 1000, timeout=3):
        value = message.value()
        assert value is not None
        schema = TableSchema.from_json(value)
        found.setdefault(schema.table, set()).add(schema.keyless)
    return found


def verified(config: Path) -> tuple[int, str, int, int, int]:
    """`cdc verify` of the keyless table: exit status, status, source rows, missing, extra."""
    command = [*cdc_command(), "verify", "-c", str(config), "--json", "--wait-timeout", "30"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    try:
        (table,) = [t for t in json.loads(done.stdout)["tables"] if t["table"].endswith(TABLE)]
    except (ValueError, KeyError) as exc:
        raise AssertionError(f"cdc verify printed no report: {done.stderr[-2000:]}") from exc
    return done.returncode, table["status"], table["rows"], table["missing"], table["extra"]


@pytest.fixture
def dsns(pg_dsn: str, pg_target_dsn: str, mysql_dsn: str) -> dict[str, str]:
    return {"pg": pg_dsn, "pg_target": pg_target_dsn, "mysql": mysql_dsn}


@pytest.mark.parametrize("mode", ["initial", "direct"])
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_a_keyless_table_ends_with_the_source_rows_duplicates_counted(
    case: Case,
    mode: str,
    tmp_path: Path,
    dsns: dict[str, str],
    kafka_bootstrap: str,
    topic_prefix: str,
) -> None:
    """`mode`: the snapshot through Kafka, or copied straight into the target."""
    both = sides(case, dsns, [TABLE, "t_keyed"])
    both.source.execute(CREATE[case.source], f"INSERT INTO {TABLE} VALUES {SNAPSHOT}")
    both.source.execute(KEYED, "INSERT INTO t_keyed VALUES (1, 1)")
    if case.source == "postgres":
        both.source.execute(f"ALTER TABLE {TABLE} REPLICA IDENTITY FULL")
    snapshot = {"chunk_rows": 1000, "mode": mode}
    with streaming(
        tmp_path, topic_prefix, kafka_bootstrap, both.sections, snapshot=snapshot
    ) as run:
        copied = rows(both.source)
        if not wait_until(lambda: both.target.count(TABLE) == len(copied), timeout=90):
            raise AssertionError(f"the snapshot did not arrive\n{run.log_summary()}")
        assert rows(both.target) == copied
        for statement in changes(case.source):
            both.source.execute(statement)
        both.source.execute("INSERT INTO t_keyed VALUES (2, 2)", "UPDATE t_keyed SET v = 3")
        wanted = rows(both.source)
        arrived = wait_until(lambda: rows(both.target) == wanted, timeout=60)
        problems = end_problems(run, topic_prefix, kafka_bootstrap)
        summary = run.log_summary()
        found = rows(both.target)
        equal = verified(run.config)
        published = schemas(kafka_bootstrap, topic_prefix)
        # a third identical row on the target alone: a difference only a count finds
        both.target.execute(f"INSERT INTO {both.target.table(TABLE)} VALUES (4, 'z', 2.5, '{{}}')")
        extra = verified(run.config)
    assert wanted == sorted(row_text(row) for row in EXPECTED)
    assert arrived, f"target {found}\nsource {wanted}\n{summary}"
    assert not problems, "\n".join([*problems, summary])
    assert equal == (0, "equal", 6, 0, 0), equal
    assert extra == (1, "different", 6, 0, 1), extra
    # the snapshot's schema and the stream's say the same: keyless, or keyed
    assert published == {TABLE: {True}, "t_keyed": {False}}, published
    here = "DATABASE()" if case.target == "mysql" else "current_database()"
    column = "table_schema" if case.target == "mysql" else "table_catalog"
    keys = both.target.query(
        "SELECT count(*) FROM information_schema.table_constraints WHERE table_name = %s"
        f" AND {column} = {here} AND constraint_type = 'PRIMARY KEY'",
        (TABLE,),
    )
    assert keys == [(0,)], "the target table was given a primary key"


def test_assess_and_schema_say_what_a_keyless_table_costs(
    command_file: CommandFile, pg_dsn: str, pg_target_dsn: str
) -> None:
    """PostgreSQL: a keyless table with an index, and one without, whose columns are all
    NOT NULL (keyless all the same: the catalog says it has no primary key)."""
    pg_execute(pg_dsn, f"{CREATE['postgres']}; ALTER TABLE {TABLE} REPLICA IDENTITY FULL")
    pg_execute(pg_dsn, f"CREATE INDEX t_keyless_a ON {TABLE} (a)")
    pg_execute(pg_dsn, "CREATE TABLE t_strict (a int NOT NULL, b text NOT NULL)")
    pg_execute(pg_dsn, "ALTER TABLE t_strict REPLICA IDENTITY FULL")
    config = command_file(
        {"type": "postgres", "dsn": pg_dsn, "tables": [f"public.{TABLE}", "public.t_strict"]},
        {"type": "postgres", "dsn": pg_target_dsn},
    )
    assessed = CliRunner().invoke(main, ["assess", "-c", str(config), "--json"])
    report = json.loads(assessed.stdout)
    checks = {c["scope"]: c for c in report["checks"] if c["name"] == "key"}
    assert assessed.exit_code == 0, report
    keyless = checks[f"table public.{TABLE}"]
    assert keyless["status"] == "warning"
    assert "finds its row by every column: an index (t_keyless_a)" in keyless["detail"]
    assert keyless["fix"] == f'ALTER TABLE "public"."{TABLE}" ADD PRIMARY KEY (...)'
    # every column NOT NULL: keyless all the same (the catalog says it has no key)
    strict = checks["table public.t_strict"]
    assert strict["status"] == "warning", strict
    assert "each one scans the whole target table" in strict["detail"], strict

    made = CliRunner().invoke(main, ["schema", "-c", str(config), "--apply"])
    assert made.exit_code == 0, made.output
    assert "no primary key: the target table has none either" in made.stderr
    keys = Db("postgres", pg_target_dsn).query(
        "SELECT conrelid::regclass::text FROM pg_constraint WHERE contype = 'p'"
        f" AND conrelid IN ('public.{TABLE}'::regclass, 'public.t_strict'::regclass)"
    )
    assert keys == []  # none invented for either


def test_a_keyless_table_of_not_null_columns_with_toasted_values(
    tmp_path: Path, dsns: dict[str, str], kafka_bootstrap: str, topic_prefix: str
) -> None:
    """PostgreSQL -> PostgreSQL. Every column NOT NULL, no primary key: keyless all the
    same (two identical rows stay two). A TOASTed value an update leaves alone is not
    in the new row pgoutput sends; REPLICA IDENTITY FULL's old row has it."""
    both = sides(Case("postgres", "postgres"), dsns, ["t_toast"])
    both.source.execute(
        "CREATE TABLE t_toast (a integer NOT NULL, big text NOT NULL)",
        "ALTER TABLE t_toast ALTER COLUMN big SET STORAGE EXTERNAL",
        "ALTER TABLE t_toast REPLICA IDENTITY FULL",
        "INSERT INTO t_toast SELECT 1, string_agg(md5(i::text), '') FROM generate_series(1, 700) i",
    )
    with streaming(tmp_path, topic_prefix, kafka_bootstrap, both.sections) as run:
        if not wait_until(lambda: both.target.count("t_toast") == 1, timeout=90):
            raise AssertionError(f"the snapshot did not arrive\n{run.log_summary()}")
        both.source.execute(
            "INSERT INTO t_toast SELECT * FROM t_toast",  # an identical second row
            "UPDATE t_toast SET a = 2 WHERE ctid = (SELECT ctid FROM t_toast LIMIT 1)",
        )
        query = "SELECT a, md5(big) FROM {} ORDER BY a"
        wanted = both.source.query(query.format("t_toast"))
        arrived = wait_until(
            lambda: both.target.query(query.format(both.target.table("t_toast"))) == wanted,
            timeout=60,
        )
        problems = end_problems(run, topic_prefix, kafka_bootstrap)
        summary = run.log_summary()
        found = both.target.query(query.format(both.target.table("t_toast")))
    assert len(wanted) == 2 and wanted[0][1] == wanted[1][1]
    assert arrived, f"target {found}, source {wanted}\n{summary}"
    assert not problems, "\n".join([*problems, summary])
