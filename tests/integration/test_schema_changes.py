"""Schema changes while streaming, as a user makes them: `ALTER TABLE` on the source
during a write load, with `sink.workers: 2`, on PG->PG, MariaDB->PG and PG->MariaDB.
Each run ends with `cdc verify` exit 0, an empty dead-letter topic, and the target's
columns as the source's changes made them (default, NOT NULL, type, name). A seeded
randomized run mixes changes, writes and a kill -9 of the sink; its seed replays it."""

from __future__ import annotations

import os
import random
import time
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.integration.schema_load import (
    Db,
    SchemaLoad,
    Shape,
    Value,
    differences,
    end_problems,
    fill,
    streaming,
    wait_snapshot,
)

KEYS = 1000  # ids per table: most rows are not written after the ALTER


@dataclass(frozen=True)
class Case:
    source: str  # postgres | mysql
    target: str

    @property
    def id(self) -> str:
        names = {"postgres": "pg", "mysql": "mariadb"}
        return f"{names[self.source]}-to-{names[self.target]}"


CASES = [Case("postgres", "postgres"), Case("mysql", "postgres"), Case("postgres", "mysql")]


@dataclass(frozen=True)
class Sides:
    source: Db
    target: Db
    sections: dict[str, Any]  # the pipeline file's source and target sections


def sides(case: Case, dsns: dict[str, str], tables: list[str]) -> Sides:
    """`dsns`: pg, pg_target, mysql."""
    database = urlsplit(dsns["mysql"]).path.strip("/")
    if case.source == "mysql":
        source = Db("mysql", dsns["mysql"], database)
        target = Db("postgres", dsns["pg_target"], database)
    else:
        source = Db("postgres", dsns["pg"])
        target = (
            Db("postgres", dsns["pg_target"])
            if case.target == "postgres"
            else Db("mysql", dsns["mysql"], database)
        )
    section: dict[str, Any] = {"type": source.engine, "dsn": source.dsn}
    if source.engine == "postgres":
        section["heartbeat_interval_s"] = 0.5
    section["tables"] = [f"{source.schema}.{t}" for t in tables]
    return Sides(
        source,
        target,
        {
            "source": section,
            "target": {"type": target.engine, "dsn": target.dsn, "create_tables": True},
        },
    )


def equal_rows(sides: Sides, tables: list[str]) -> list[str]:
    """Each table's rows on the source's columns, source against target."""
    found = []
    for table in tables:
        columns = [c for c in sides.source.columns(table) if c != "id"]
        found.append(differences(table, columns, sides.source, sides.target))
    return [f for f in found if f is not None]


# -- the tables and their changes ---------------------------------------------


def label(n: int) -> str:
    return f"row {n} ü"


BASE: dict[str, Value] = {"counter": lambda n: n, "label": label}
NARROW: dict[str, Value] = {
    "big": lambda n: n % 1000,
    "name": lambda n: f"n{n % 1000}",
    "amount": lambda n: Decimal(f"{n % 1000}.25"),
}
WIDE: dict[str, Value] = {  # values only the widened types hold
    "big": lambda n: 2**40 + n,
    "name": lambda n: "w" * 150 + str(n),
    "amount": lambda n: Decimal(f"123456789012.{n % 100:02}"),
}
WIDEN = {
    "postgres": {
        "big": "ALTER COLUMN big TYPE bigint",
        "name": "ALTER COLUMN name TYPE varchar(200)",
        "amount": "ALTER COLUMN amount TYPE numeric(14,2)",
    },
    "mysql": {
        "big": "MODIFY big BIGINT",
        "name": "MODIFY name VARCHAR(200)",
        "amount": "MODIFY amount DECIMAL(14,2)",
    },
}
PLAIN = "(id int PRIMARY KEY, counter int NOT NULL, label text{})"
CREATE = {
    "t_add": PLAIN.format(""),
    "t_addnn": PLAIN.format(""),
    "t_drop": PLAIN.format(", req text NOT NULL"),
    "t_widen": PLAIN.format(", big int, name varchar(50), amount numeric(10,2)"),
    "t_extra": PLAIN.format(""),
    "t_multi": PLAIN.format(""),  # MariaDB only: the ALTER forms applications write
}
SHAPES = {
    "t_add": Shape(BASE, BASE),
    "t_addnn": Shape(BASE, BASE),
    "t_drop": Shape({**BASE, "req": label}, {**BASE, "req": label}),
    "t_widen": Shape({**BASE, **NARROW}, {**BASE, **NARROW}),
    "t_extra": Shape(BASE, BASE),
    "t_multi": Shape(BASE, BASE),
}
EXTRA_COLUMN = {  # the target-only column the application added on the new side
    "postgres": "CREATE TABLE {}.t_extra (id integer PRIMARY KEY, counter integer NOT NULL,"
    " label text, note text NOT NULL DEFAULT 'new side')",
    "mysql": "CREATE TABLE {}t_extra (id INT PRIMARY KEY, counter INT NOT NULL, label LONGTEXT,"
    " note VARCHAR(20) NOT NULL DEFAULT 'new side')",
}


def changes(engine: str) -> list[tuple[str, list[str], Shape]]:
    """(table, the ALTER statements, what the load writes afterwards) of kinds 1-4."""
    if engine == "mysql":
        add = ["ALTER TABLE t_add ADD COLUMN c TEXT DEFAULT 'd', ALGORITHM=INSTANT"]
        # the second is a no-op the binlog still carries
        add_nn = ["ALTER TABLE t_addnn ADD COLUMN IF NOT EXISTS n INT NOT NULL DEFAULT 7"] * 2
    else:
        add = ["ALTER TABLE t_add ADD COLUMN c text DEFAULT 'd'"]
        add_nn = ["ALTER TABLE t_addnn ADD COLUMN n integer NOT NULL DEFAULT 7"]
    widen = [f"ALTER TABLE t_widen {WIDEN[engine][column]}" for column in NARROW]
    found = [
        ("t_add", add, SHAPES["t_add"].but(set_on_update={"c": lambda n: f"c{n}"})),
        ("t_addnn", add_nn, SHAPES["t_addnn"].but(set_on_update={"n": lambda n: n % 1000})),
        ("t_drop", ["ALTER TABLE t_drop DROP COLUMN req"], SHAPES["t_drop"].but(drop="req")),
        ("t_widen", widen, SHAPES["t_widen"].but(write=WIDE)),
    ]
    if engine == "mysql":
        multi = (
            "ALTER TABLE t_multi /* release 42: two columns */ ADD COLUMN x INT DEFAULT 1"
            " AFTER id, ADD COLUMN y VARCHAR(10) DEFAULT 'z' FIRST"
        )
        new = {"x": lambda n: n, "y": lambda n: f"y{n % 1000}"}
        found.append(("t_multi", [multi], SHAPES["t_multi"].but(set_on_update=new)))
    return found


def column_problems(case: Case, target: Db) -> list[str]:
    """The target's column definitions a user checks after the changes."""
    widened = {"big": {"bigint"}, "name": {"varchar(200)"}, "amount": {"decimal(14,2)"}}
    if case.target == "postgres":
        # a MariaDB VARCHAR reaches a sink-created table as text (the binlog has no length)
        names = {"character varying(200)", "text"} if case.source == "mysql" else set()
        widened = {
            "big": {"bigint"},
            "name": names | {"character varying(200)"},
            "amount": {"numeric(14,2)"},
        }
    wanted = [  # (table, column, nullable, default)
        ("t_add", "c", True, "'d'"),
        ("t_addnn", "n", False, "7"),
        ("t_extra", "note", False, "'new side'"),
    ]
    if case.source == "mysql":
        wanted += [("t_multi", "x", True, "1"), ("t_multi", "y", True, "'z'")]
    problems = []
    for table, column, nullable, default in wanted:
        found = target.columns(table).get(column)
        if found is None or (found.nullable, found.default) != (nullable, default):
            problems.append(
                f"{table}.{column} on the target is {found}, wanted nullable={nullable}"
                f" default={default}"
            )
    kept = target.columns("t_drop").get("req")
    if kept is not None and not kept.nullable:
        problems.append(f"t_drop.req is kept on the target as NOT NULL: {kept}")
    for column, types in widened.items():
        found = target.columns("t_widen").get(column)
        if found is None or found.type not in types:
            problems.append(f"t_widen.{column} on the target is {found}, wanted one of {types}")
    other = target.query(f"SELECT count(*) FROM {target.table('t_extra')} WHERE note <> 'new side'")
    if other[0][0]:
        problems.append(f"{other[0][0]} rows of t_extra lack the target's default 'new side'")
    return problems


@pytest.fixture
def dsns(pg_dsn: str, pg_target_dsn: str, mysql_dsn: str) -> dict[str, str]:
    return {"pg": pg_dsn, "pg_target": pg_target_dsn, "mysql": mysql_dsn}


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_schema_changes_under_load_end_equal(
    case: Case, tmp_path: Path, dsns: dict[str, str], kafka_bootstrap: str, topic_prefix: str
) -> None:
    tables = [t for t in CREATE if t != "t_multi" or case.source == "mysql"]
    both = sides(case, dsns, tables)
    for table in tables:
        both.source.execute(f"CREATE TABLE {table} {CREATE[table]}")
        fill(both.source, table, SHAPES[table], KEYS)
    if case.target == "postgres":
        both.target.execute(
            f'CREATE SCHEMA IF NOT EXISTS "{both.target.schema}"',
            EXTRA_COLUMN["postgres"].format(f'"{both.target.schema}"'),
        )
    else:
        both.target.execute(EXTRA_COLUMN["mysql"].format(""))
    with streaming(tmp_path, topic_prefix, kafka_bootstrap, both.sections) as run:
        wait_snapshot(run, both.target, tables, KEYS)
        load = SchemaLoad(both.source, {t: SHAPES[t] for t in tables}, KEYS, seed=1)
        load.start()
        time.sleep(1.5)  # rows written before the changes, in flight as they happen
        for table, statements, shape in changes(case.source):
            load.alter(table, statements, shape)
            time.sleep(0.3)
        time.sleep(2)
        writes = load.stop()
        problems = end_problems(run, topic_prefix, kafka_bootstrap)
        problems += equal_rows(both, tables)
        problems += column_problems(case, both.target)
        summary = run.log_summary(both.target)
    assert writes > 1000
    assert not problems, "\n".join([*problems, summary])


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_a_renamed_column_keeps_its_data(
    case: Case, tmp_path: Path, dsns: dict[str, str], kafka_bootstrap: str, topic_prefix: str
) -> None:
    """RENAME COLUMN (MariaDB also CHANGE old new type): renamed on the target, never a
    drop and an add."""
    tables = ["t_ren", "t_chg"] if case.source == "mysql" else ["t_ren"]
    both = sides(case, dsns, tables)
    shape = Shape({**BASE, "a": label}, {**BASE, "a": label})
    renamed = shape.but(drop="a", write={"b": lambda n: f"b{n}"})
    for table in tables:
        both.source.execute(f"CREATE TABLE {table} {PLAIN.format(', a text')}")
        fill(both.source, table, shape, KEYS)
    with streaming(tmp_path, topic_prefix, kafka_bootstrap, both.sections) as run:
        wait_snapshot(run, both.target, tables, KEYS)
        load = SchemaLoad(both.source, dict.fromkeys(tables, shape), KEYS, seed=2)
        load.start()
        time.sleep(1)
        load.alter("t_ren", ["ALTER TABLE t_ren RENAME COLUMN a TO b"], renamed)
        if case.source == "mysql":
            load.alter("t_chg", ["ALTER TABLE t_chg CHANGE a b TEXT"], renamed)
        time.sleep(2)
        load.stop()
        problems = end_problems(run, topic_prefix, kafka_bootstrap)
        problems += equal_rows(both, tables)
        for table in tables:
            names = list(both.target.columns(table))
            if "b" not in names or "a" in names:
                problems.append(f"{table} on the target has columns {names}: wanted b, not a")
        summary = run.log_summary(both.target)
    assert not problems, "\n".join([*problems, summary])


# -- randomized ------------------------------------------------------------------

RANDOM_KEYS = 300
RANDOM_COLUMNS = {**BASE, "req": label, "opt": label, **NARROW}  # req: NOT NULL, no default
RANDOM_CREATE = PLAIN.format(
    ", req text NOT NULL, opt text, big int, name varchar(50), amount numeric(10,2)"
)


def random_change(
    rng: random.Random, engine: str, table: str, shape: Shape, k: int
) -> tuple[str, Shape]:
    """One schema change of kinds 1-4 on `table`, which the load writes as `shape`."""
    narrow = [c for c in NARROW if shape.inserts.get(c) is NARROW[c]]
    droppable = sorted({*shape.inserts, *shape.updates} - {"counter"})
    kind = rng.choice(["add", "add_not_null", "drop", "drop", "widen"])
    if kind == "widen" and narrow:
        column = rng.choice(narrow)
        return f"ALTER TABLE {table} {WIDEN[engine][column]}", shape.but(
            write={column: WIDE[column]}
        )
    if kind == "drop" and droppable:
        column = rng.choice(droppable)
        return f"ALTER TABLE {table} DROP COLUMN {column}", shape.but(drop=column)
    if kind == "add_not_null":
        added = {f"n{k}": lambda n: n % 1000}
        ddl = f"ALTER TABLE {table} ADD COLUMN n{k} integer NOT NULL DEFAULT {k}"
        return ddl, shape.but(set_on_update=added)
    ddl = f"ALTER TABLE {table} ADD COLUMN c{k} text DEFAULT 'd{k}'"
    return ddl, shape.but(set_on_update={f"c{k}": lambda n: f"v{n}"})


@pytest.mark.chaos  # a minute of randomized runs: `make test-chaos`
@pytest.mark.parametrize(
    ("case", "seconds"), [(CASES[0], 40), (CASES[1], 20)], ids=[c.id for c in CASES[:2]]
)
def test_random_schema_changes_writes_and_a_sink_kill_end_equal(
    case: Case,
    seconds: float,
    tmp_path: Path,
    dsns: dict[str, str],
    kafka_bootstrap: str,
    topic_prefix: str,
) -> None:
    """`seconds` of changes; CDC_SCHEMA_SECONDS sets another, CDC_SCHEMA_SEED replays a run."""
    seconds = float(os.environ.get("CDC_SCHEMA_SECONDS", seconds))
    seed = int(os.environ.get("CDC_SCHEMA_SEED", time.time_ns() % 1_000_000))
    rng = random.Random(seed)
    tables = ["r1", "r2", "r3"]
    both = sides(case, dsns, tables)
    shape = Shape(RANDOM_COLUMNS, RANDOM_COLUMNS)
    for table in tables:
        both.source.execute(f"CREATE TABLE {table} {RANDOM_CREATE}")
        fill(both.source, table, shape, RANDOM_KEYS)
    delays: list[float] = []
    while sum(delays) < seconds:
        delays.append(rng.uniform(0.2, 2.0))
    kill_after, down_s = rng.randrange(1, len(delays) - 1), rng.uniform(0, 3)
    with streaming(tmp_path, topic_prefix, kafka_bootstrap, both.sections) as run:
        wait_snapshot(run, both.target, tables, RANDOM_KEYS)
        load = SchemaLoad(both.source, dict.fromkeys(tables, shape), RANDOM_KEYS, seed)
        load.start()
        for step, delay in enumerate(delays):
            time.sleep(delay)
            table = rng.choice(tables)
            ddl, changed = random_change(rng, case.source, table, load.shapes[table], step)
            load.alter(table, [ddl], changed)
            if step == kill_after:
                run.crash(down_s)
        time.sleep(1)
        load.stop()
        problems = end_problems(run, topic_prefix, kafka_bootstrap, wait_s=120)
        problems += equal_rows(both, tables)
        summary = run.log_summary(both.target)
    changes = "\n".join(f"  {at:6.2f}s {ddl}" for at, ddl in load.ddl)
    assert not problems, "\n".join(
        [
            f"seed {seed} (CDC_SCHEMA_SEED={seed} replays these changes); the sink was killed"
            f" with -9 after change {kill_after + 1}, down {down_s:.1f}s",
            *problems,
            summary,
            f"changes:\n{changes}",
        ]
    )


def test_drop_column_policy_apply_drops_the_target_column(
    tmp_path: Path, dsns: dict[str, str], kafka_bootstrap: str, topic_prefix: str
) -> None:
    both = sides(CASES[0], dsns, ["t_pol"])
    shape = Shape({**BASE, "gone": label}, {**BASE, "gone": label})
    both.source.execute(f"CREATE TABLE t_pol {PLAIN.format(', gone text NOT NULL')}")
    fill(both.source, "t_pol", shape, KEYS)
    policy = {"drop_column": "apply"}
    with streaming(
        tmp_path, topic_prefix, kafka_bootstrap, both.sections, schema_changes=policy
    ) as run:
        wait_snapshot(run, both.target, ["t_pol"], KEYS)
        load = SchemaLoad(both.source, {"t_pol": shape}, KEYS, seed=3)
        load.start()
        time.sleep(1)
        load.alter("t_pol", ["ALTER TABLE t_pol DROP COLUMN gone"], shape.but(drop="gone"))
        time.sleep(2)
        load.stop()
        problems = end_problems(run, topic_prefix, kafka_bootstrap)
        problems += equal_rows(both, ["t_pol"])
        columns = list(both.target.columns("t_pol"))
        if "gone" in columns:
            problems.append(f"t_pol on the target still has gone: {columns}")
        summary = run.log_summary(both.target)
    assert not problems, "\n".join([*problems, summary])
