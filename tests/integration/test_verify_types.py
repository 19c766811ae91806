"""`cdc verify` is exact across engines and types. Random values (seeded: the seed is in
every failure message; CDC_TEST_SEED replays one) of every type pair the target type map
produces go through a real pipeline (PG->MariaDB, MariaDB->PG, PG->PG, MariaDB->MariaDB)
and verify finds the sides equal. Then, on the target, one value per type is changed by
hand to another value, as near as the type allows (the next float, one microsecond, a
trailing space on text, a JSON number as a string), and others are written again in
another spelling of the same value (an unsorted, repeated SET array, an interval in other
units, a CHAR's padding, JSON in other key order and spacing, an upper-case uuid): verify
reports exactly the rows really changed."""

from __future__ import annotations

import json
import math
import os
import random
import re
import struct
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal, localcontext
from ipaddress import ip_address, ip_interface
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg
import pymysql
import pytest
from click.testing import CliRunner

from cdc.app.engines import engine_for
from cdc.cli import main
from cdc.migrate.verify.run import VerifyReport, verify
from cdc.settings import Settings
from tests.integration.conftest import mysql_connect, with_database
from tests.integration.pipeline import pipeline, running, wait_until

ROWS = 60
Value = Callable[[random.Random], Any]
# on the target: a parameter from the source value, or SQL of the column ({c})
Edit = Callable[[Any], Any] | str
ByEngine = Edit | Mapping[str, Edit]  # one for every target, or per target engine


@dataclass(frozen=True)
class Kind:
    column: str
    ddl: str  # the source's type
    value: Value  # a source value (a driver parameter)
    other: ByEngine  # another value
    same: ByEngine = field(default_factory=dict)  # the same value, spelled otherwise


def f32(x: float) -> float:
    return float(struct.unpack("<f", struct.pack("<f", x))[0])


def next_f32(x: float) -> float:
    bits = struct.unpack("<i", struct.pack("<f", x))[0]
    return float(struct.unpack("<f", struct.pack("<i", bits + (1 if x >= 0 else -1)))[0])


def plus(number: Decimal, step: str) -> Decimal:
    """Exactly: the default context rounds to 28 digits."""
    with localcontext(prec=100):
        return number + Decimal(step)


def text(rng: random.Random, most: int = 12) -> str:
    return "".join(rng.choice("abcXYZ019 é✓🚀\t'\"\\%_") for _ in range(rng.randint(0, most)))


def moment(rng: random.Random, first: int = 1900, last: int = 2100) -> datetime:
    seconds = rng.uniform(datetime(first, 1, 2).timestamp(), datetime(last, 1, 1).timestamp())
    return datetime.fromtimestamp(int(seconds)).replace(microsecond=rng.randrange(10**6))


def clock(rng: random.Random) -> time:
    return time(rng.randrange(24), rng.randrange(60), rng.randrange(60), rng.randrange(10**6))


def zoned(rng: random.Random) -> str:
    zone = f"{rng.choice('+-')}{rng.randint(0, 13):02}:{rng.choice(['00', '30'])}"
    return clock(rng).isoformat(timespec="microseconds") + zone


def document(rng: random.Random) -> str:
    doc: dict[str, Any] = {"n": rng.randint(-99, 99), text(rng, 5): rng.random() < 0.5}
    doc["list"] = [rng.randint(0, 9), f"{rng.uniform(-9, 9):.3f}", None, {"k": text(rng, 4)}]
    doc["num"] = float(f"{rng.uniform(-1e6, 1e6):.4f}")
    return json.dumps(doc, ensure_ascii=False)


def respaced(doc: str) -> str:
    return json.dumps(dict(reversed(list(json.loads(doc).items()))), indent=3)


def renumbered(doc: str) -> str:
    """Another document: "n" a string of the same digits."""
    return json.dumps({**json.loads(doc), "n": str(json.loads(doc)["n"])})


INTERVALS: dict[str, int] = {}  # interval text -> microseconds, as PostgreSQL compares them


def interval(rng: random.Random) -> str:
    months, days = rng.randint(-40, 40), rng.randint(-40, 40)
    span = rng.randint(-200 * 3_600_000_000, 200 * 3_600_000_000)
    value = f"{months} mons {days} days {span} microseconds"
    INTERVALS[value] = (months * 30 + days) * 86_400_000_000 + span
    return value


def iso(micros: int) -> str:
    return f"PT{Decimal(micros).scaleb(-6)}S"


def address(rng: random.Random) -> str:
    v4 = ".".join(str(rng.randrange(256)) for _ in range(4))
    v6 = f"2001:db8::{rng.randrange(65536):x}"
    return rng.choice([v4, f"{v4}/{rng.randint(8, 31)}", f"::ffff:{v4}", v6])


def next_address(text: str) -> str:
    interface = ip_interface(text)
    return f"{ip_address(int(interface.ip) ^ 1)}/{interface.network.prefixlen}"


PG, MY = "postgres", "mysql"
LATER = {PG: "{c} + interval '1 microsecond'", MY: "{c} + INTERVAL 1 MICROSECOND"}
PG_RESPELLED = "{c} + interval '1 day' - interval '24 hours'"  # equal: a day is 24 hours
LAST_BYTE = "get_byte({c}, length({c}) - 1)"
TIMES = 838 * 3_600_000_000  # microseconds: a MySQL TIME spans -838h..838h
PG_KINDS = [
    Kind("i2", "smallint", lambda r: r.randint(-32768, 32766), lambda v: v + 1),
    Kind("i8", "bigint", lambda r: r.randint(-(2**63), 2**63 - 1), lambda v: v ^ 1),
    Kind("num", "numeric(14,4)", lambda r: Decimal(r.randint(-(10**13), 10**13)).scaleb(-4),
         lambda v: plus(v, "0.0001")),
    Kind("numx", "numeric", lambda r: Decimal(r.getrandbits(66) - 2**65).scaleb(-r.randint(0, 30)),
         lambda v: plus(v, "1e-30"), {PG: "{c} + 0.000"}),
    Kind("r4", "real", lambda r: f32(r.uniform(-1, 1) * 10 ** r.randint(-20, 20)), next_f32),
    Kind("f8", "double precision", lambda r: r.uniform(-1, 1) * 10 ** r.randint(-300, 300),
         lambda v: math.nextafter(v, math.inf)),
    Kind("flag", "boolean", lambda r: r.random() < 0.5, lambda v: not v),
    Kind("txt", "text", text, lambda v: v + " "),
    Kind("vc", "varchar(20)", text, lambda v: " " + v),
    Kind("ch", "char(8)", lambda r: text(r, 6), lambda v: v.rstrip(" ") + "z"),
    Kind("chl", "char(300)", text, lambda v: v.rstrip(" ") + "z", "rtrim({c})"),
    Kind("bin", "bytea", lambda r: r.randbytes(r.randint(0, 12)), lambda v: v + b"\0"),
    Kind("day", "date", lambda r: moment(r, 1000, 9999).date(), lambda v: v + timedelta(1)),
    Kind("ts", "timestamp(6)", moment, LATER),
    Kind("tstz", "timestamptz(6)", lambda r: moment(r).replace(tzinfo=UTC), LATER),
    Kind("tod", "time(6)", clock, lambda v: v.replace(hour=(v.hour + 1) % 24)),
    Kind("tz", "timetz", zoned, lambda v: v[:-6] + ("+14:00" if v[-6:] != "+14:00" else "-14:00"),
         lambda v: v[:-3] + v[-2:]),  # +05:30 as +0530
    Kind("iv", "interval", interval, {PG: LATER[PG], MY: lambda v: iso(INTERVALS[v] + 1)},
         {PG: PG_RESPELLED, MY: lambda v: iso(INTERVALS[v])}),
    Kind("doc", "jsonb", document, renumbered, {MY: respaced}),
    Kind("js", "json", document, renumbered, respaced),
    Kind("uid", "uuid", lambda r: str(uuid.UUID(int=r.getrandbits(128), version=4)),
         lambda v: v[:-1] + ("0" if v[-1] != "0" else "1"), lambda v: v.upper()),
    Kind("mood", "mood", lambda r: r.choice(["sad", "ok", "happy"]),
         lambda v: "ok" if v != "ok" else "sad"),
    Kind("ints", "int[]", lambda r: [r.randint(-9, 9) for _ in range(r.randint(0, 4))],
         {PG: lambda v: [*v, 7], MY: lambda v: json.dumps([*v, 7])},
         {MY: lambda v: json.dumps(v, indent=1)}),
    Kind("ip", "inet", address, next_address, {MY: lambda v: ip_interface(v).exploded}),
    Kind("tags", "text[]", lambda r: [text(r, 4) for _ in range(r.randint(0, 3))],
         {PG: lambda v: [*v, "q"], MY: lambda v: json.dumps([*v, "q"])}),
]  # fmt: skip
MY_KINDS = [
    Kind("ti", "tinyint", lambda r: r.randint(-128, 126), lambda v: v + 1),
    Kind("mu", "mediumint unsigned", lambda r: r.randint(0, 2**24 - 2), lambda v: v + 1),
    Kind("bu", "bigint unsigned", lambda r: r.randint(0, 2**64 - 1), lambda v: v ^ 1),
    Kind("b1", "tinyint(1)", lambda r: r.randint(0, 1), lambda v: 1 - v),
    Kind("dec", "decimal(14,4)", lambda r: Decimal(r.randint(-(10**13), 10**13)).scaleb(-4),
         lambda v: plus(v, "0.0001")),
    # any float32: more digits than the six the text protocol prints (the snapshot reads more)
    Kind("fl", "float", lambda r: f32(r.uniform(-1, 1) * 10 ** r.randint(-20, 20)), next_f32),
    Kind("db", "double", lambda r: r.uniform(-1, 1) * 10 ** r.randint(-300, 300),
         lambda v: math.nextafter(v, -math.inf)),
    Kind("yr", "year", lambda r: r.randint(1901, 2154), lambda v: v + 1),
    Kind("day", "date", lambda r: moment(r, 1000, 9999).date(), lambda v: v + timedelta(1)),
    Kind("tm", "time(6)", lambda r: timedelta(microseconds=r.randint(-TIMES, TIMES)), LATER,
         {PG: PG_RESPELLED}),
    Kind("dt", "datetime(6)", moment, LATER),
    Kind("tsp", "timestamp(6)", lambda r: moment(r, 1971, 2037), LATER),
    Kind("ch", "char(8)", lambda r: text(r, 6), lambda v: v.rstrip(" ") + "z",
         {PG: "{c} || '  '", MY: "CONCAT({c}, '  ')"}),  # CHAR drops trailing spaces
    Kind("vc", "varchar(20)", text, lambda v: " " + v),
    Kind("tx", "text", text, lambda v: v + " "),
    Kind("vb", "varbinary(16)", lambda r: r.randbytes(r.randint(0, 12)), lambda v: v + b"\0"),
    Kind("bl", "blob", lambda r: r.randbytes(r.randint(0, 12)), lambda v: b"\0" + v),
    Kind("bn", "binary(4)", lambda r: r.randbytes(r.randint(1, 4)), lambda v: b"\xff" * 4),
    Kind("bt", "bit(8)", lambda r: r.randint(0, 255),
         {PG: f"set_byte({{c}}, length({{c}}) - 1, {LAST_BYTE} # 1)", MY: "{c} ^ 1"}),
    Kind("en", "enum('a','b','c')", lambda r: r.choice("abc"), lambda v: "b" if v == "a" else "a"),
    Kind("st", "set('x','y','z')", lambda r: ",".join(m for m in "xyz" if r.random() < 0.5),
         {PG: lambda v: [*v.split(","), "w"] if v else ["w"], MY: lambda v: "" if v else "y"},
         {PG: "ARRAY(SELECT m FROM unnest({c}) AS m ORDER BY m DESC) || {c}[1:1]"}),
    Kind("js", "json", document, renumbered, {MY: respaced}),
]  # fmt: skip


# the kinds whose pairs both databases write alike (`cdc.engine.verify.SQL_FORMS`, and of
# one engine the same types): their own table is hashed in the databases
SQL_KINDS = {
    (PG, MY): {"i2", "i8", "num", "numx", "flag", "txt", "vc", "ch", "chl", "bin", "day", "ts",
               "tstz", "uid", "mood"},
    (MY, PG): {"ti", "mu", "bu", "b1", "dec", "yr", "day", "dt", "tsp", "ch", "vc", "tx", "vb",
               "bl", "bn", "en"},
    (PG, PG): {k.column for k in PG_KINDS} - {"js"},
    (MY, MY): {k.column for k in MY_KINDS} - {"st", "js"},
}  # fmt: skip
Statement = tuple[str, tuple[Any, ...]]
Rows = list[dict[str, Any]]
Edited = tuple[dict[int, str], dict[int, str]]  # rows changed, rows respelled: row -> column


@dataclass
class Db:
    engine: str
    dsn: str
    schema: str  # of the tables: PostgreSQL's schema, MariaDB's database

    def table(self, name: str) -> str:
        return f"{self.quote(self.schema)}.{name}"

    def quote(self, name: str) -> str:
        return f'"{name}"' if self.engine == PG else f"`{name}`"

    def execute(self, *statements: Statement) -> None:
        """The statements, with their parameters, on one connection."""
        if self.engine == PG:
            with psycopg.connect(self.dsn, autocommit=True) as conn:
                for statement, params in statements:
                    conn.execute(statement.encode(), params)
            return
        with mysql_connect(self.dsn) as conn, conn.cursor() as cur:
            # a Decimal in digits: PyMySQL writes 1E-10, which MariaDB reads as a double
            for statement, params in statements:
                cur.execute(statement, [f"{p:f}" if isinstance(p, Decimal) else p for p in params])

    def rows(self, query: str) -> list[tuple[Any, ...]]:
        try:
            if self.engine == PG:
                with psycopg.connect(self.dsn) as conn:
                    return conn.execute(query.encode()).fetchall()
            with mysql_connect(self.dsn) as conn, conn.cursor() as cur:
                cur.execute(query)
                return list(cur.fetchall())
        except (psycopg.errors.UndefinedTable, pymysql.err.ProgrammingError):
            return []  # not created yet


def fill(source: Db, tables: dict[str, list[Kind]], rng: random.Random) -> dict[str, Rows]:
    """Each source table with ROWS rows of random values, about one in eight NULL."""
    filled: dict[str, Rows] = {}
    statements: list[Statement] = [("CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy')", ())]
    for name, kinds in tables.items():
        columns = ", ".join(f"{source.quote(k.column)} {k.ddl}" for k in kinds)
        statements.append((f"CREATE TABLE {name} (id int PRIMARY KEY, {columns})", ()))
        filled[name] = [
            {k.column: None if rng.random() < 0.125 else k.value(rng) for k in kinds}
            for _ in range(ROWS)
        ]
        insert = f"INSERT INTO {name} VALUES ({', '.join(['%s'] * (len(kinds) + 1))})"
        statements += [(insert, (i, *row.values())) for i, row in enumerate(filled[name])]
    source.execute(*statements[0 if source.engine == PG else 1 :])
    return filled


def edit(target: Db, table: str, kinds: list[Kind], rows: Rows, rng: random.Random) -> Edited:
    """Per type, one row of the target changed to another value and one respelled."""
    free = rng.sample(range(ROWS), ROWS)
    changed: dict[int, str] = {}
    respelled: dict[int, str] = {}
    statements: list[Statement] = []
    for kind in kinds:
        for which, done in ((kind.other, changed), (kind.same, respelled)):
            change = which.get(target.engine) if isinstance(which, Mapping) else which
            if change is None:
                continue
            row = next(i for i in free if rows[i][kind.column] is not None)
            name = target.quote(kind.column)
            update = f"UPDATE {target.table(table)} SET {name} ="
            if isinstance(change, str):
                statements.append((f"{update} {change.format(c=name)} WHERE id = %s", (row,)))
            else:
                value = change(rows[row][kind.column])
                statements.append((f"{update} %s WHERE id = %s", (value, row)))
            free.remove(row)
            done[row] = kind.column
    target.execute(*statements)
    return changed, respelled


def check(seed: int, settings: Settings, dbs: tuple[Db, Db], kinds: list[Kind]) -> None:
    """Equal, each table hashed where expected; then exactly the rows changed by hand differ."""
    source, target = dbs
    in_sql = SQL_KINDS[source.engine, target.engine]
    tables = {"kinds": kinds, "plain": [k for k in kinds if k.column in in_sql]}
    filled = fill(source, tables, random.Random(seed))
    with running(settings, "all"):
        for name in tables:
            query = f"SELECT id FROM {target.table(name)}"
            assert wait_until(lambda q=query: len(target.rows(q)) == ROWS, timeout=60), seed
        equal = verify(settings, engine_for, wait_timeout_s=30)
        assert equal.equal, explain(seed, equal, dbs, tables, {})
        hashing = {r.table.split(".")[1]: r.hashing for r in equal.tables}
        assert hashing == {"kinds": "python", "plain": "database"}, f"seed {seed}"
        rng = random.Random(seed)
        edits = {name: edit(target, name, tables[name], filled[name], rng) for name in tables}
        # the edits are the target's own, nothing is in flight: no need to wait for the sink
        report = verify(settings, engine_for, wait_timeout_s=0)
    for result in report.tables:
        changed, _ = edits[result.table.split(".")[1]]
        found = {k["id"] for k in result.keys.get("differing", [])}
        wanted = (set(changed), 0, 0)
        assert (found, result.missing, result.extra) == wanted, explain(
            seed, report, dbs, tables, edits
        )
    assert all(same for _, same in edits.values()), "each table had values respelled"


def explain(
    seed: int,
    report: VerifyReport,
    dbs: tuple[Db, Db],
    tables: dict[str, list[Kind]],
    edits: dict[str, Edited],
) -> str:
    """The seed, the edits, and the values of each row reported or changed that read
    otherwise on the two sides."""
    lines = [f"seed {seed} (CDC_TEST_SEED={seed} replays it)"]
    for result in report.tables:
        table = result.table.split(".")[1]
        changed, respelled = edits.get(table, ({}, {}))
        lines.append(f"{table}: hashing {result.hashing}, changed {changed}, respelled"
                     f" {respelled}, reported {result.keys}")  # fmt: skip
        ids = {k["id"] for keys in result.keys.values() for k in keys} | set(changed) | {-1}
        names = ["id", *(k.column for k in tables[table])]
        query = f"SELECT * FROM {{}} WHERE id IN ({', '.join(map(str, ids))}) ORDER BY id"
        ours, theirs = (db.rows(query.format(db.table(table))) for db in dbs)
        for a, b in zip(ours, theirs, strict=False):
            pairs = zip(names, a, b, strict=True)
            shown = [f"{n}: {x!r} / {y!r}" for n, x, y in pairs if str(x) != str(y)]
            lines.append(f"  id {a[0]}: {'; '.join(shown)}")
    return "\n".join(lines)


def database(dsn: str) -> str:
    return urlsplit(dsn).path.strip("/")


@pytest.mark.parametrize(("source", "target"), [(PG, MY), (MY, PG), (PG, PG), (MY, MY)])
def test_verify_is_exact_for_every_type_pair(
    request: pytest.FixtureRequest, tmp_path: Path, kafka_bootstrap: str, topic_prefix: str,
    source: str, target: str,
) -> None:  # fmt: skip
    seed = int(os.environ.get("CDC_TEST_SEED") or random.randrange(2**32))
    source_dsn = request.getfixturevalue("pg_dsn" if source == PG else "mysql_dsn")
    target_dsn = request.getfixturevalue("pg_target_dsn" if target == PG else "mysql_dsn")
    if (source, target) == (MY, MY):  # another database of the same server
        target_dsn = with_database(target_dsn, f"{topic_prefix}_dst")
        dbs = Db(MY, source_dsn, database(source_dsn)), Db(MY, target_dsn, f"{topic_prefix}_dst")
        dbs[0].execute((f"CREATE DATABASE `{topic_prefix}_dst`", ()))
    else:  # a MariaDB source's tables land in a PostgreSQL schema of its database's name
        schema = database(source_dsn) if source == MY else "public"
        theirs = database(target_dsn) if target == MY else schema
        dbs = Db(source, source_dsn, schema), Db(target, target_dsn, theirs)
    if (source, target) == (PG, PG):
        dbs[1].execute(("CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy')", ()))
    tables = [f"{dbs[0].schema}.{t}" for t in ("kinds", "plain")]
    config = {"type": source, "dsn": source_dsn, "tables": tables}
    if source == PG:
        config["heartbeat_interval_s"] = 0.5
    target_config = {"type": target, "dsn": target_dsn, "create_tables": True}
    settings = pipeline(tmp_path, topic_prefix, config, kafka_bootstrap, target_config)
    try:
        check(seed, settings, dbs, PG_KINDS if source == PG else MY_KINDS)
    finally:
        if (source, target) == (MY, MY):
            dbs[0].execute((f"DROP DATABASE IF EXISTS `{topic_prefix}_dst`", ()))
    if (source, target) == (PG, MY):
        # the table view says how each table was hashed, as --json does
        config_file = str(tmp_path / f"{topic_prefix}.yaml")
        shown = CliRunner().invoke(main, ["verify", "-c", config_file, "--wait-timeout", "0"])
        lines = shown.output.splitlines()
        cells = [[c.strip() for c in re.split("[│┃]", line)[1:-1]] for line in lines]
        header = next(line for line in cells if "HASHING" in line)
        by_table = {line[0]: line for line in cells if line and line[0].startswith("public.")}
        hashing = {n: by_table[f"public.{n}"][header.index("HASHING")] for n in ("kinds", "plain")}
        assert hashing == {"kinds": "python", "plain": "database"}, shown.output
