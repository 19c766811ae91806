"""What the schema-change tests share: one database of either engine, a write load on
several tables whose columns change while it runs, and the target's rows and column
definitions read back and compared with the source's."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import orjson
import psycopg
import yaml

from cdc.migrate.verify.canonical import canonical
from cdc.settings_load import load_settings
from cdc.topics import dead_letter_topic
from tests.integration.conftest import mysql_connect
from tests.integration.daemon_process import cdc_command
from tests.integration.pipeline import running, wait_until
from tests.integration.sink_support import QUICK_GROUP, SinkProcess, headers_of, read_topic

Engine = Literal["postgres", "mysql"]
Value = Callable[[int], Any]  # a column's value for the load's n-th write
Execute = Callable[[str, Any], object]


@dataclass(frozen=True)
class ColumnInfo:
    type: str  # PostgreSQL's format_type; MariaDB's COLUMN_TYPE without integer widths
    nullable: bool
    default: str | None  # the literal, without PostgreSQL's ::type cast


@dataclass(frozen=True)
class Db:
    """One database of a test. `schema`: where its tables are on PostgreSQL (MariaDB
    keeps them in the DSN's database)."""

    engine: Engine
    dsn: str
    schema: str = "public"

    def table(self, name: str) -> str:
        return name if self.engine == "mysql" else f'"{self.schema}".{name}'

    @contextmanager
    def session(self) -> Iterator[Execute]:
        """`execute(sql, params)` on one autocommit connection."""
        if self.engine == "mysql":
            with mysql_connect(self.dsn) as conn, conn.cursor() as cur:
                yield cur.execute
        else:
            with psycopg.connect(self.dsn, autocommit=True) as pg:
                yield lambda sql, params: pg.execute(sql.encode(), params)

    def execute(self, *statements: str) -> None:
        with self.session() as execute:
            for statement in statements:
                execute(statement, None)

    def query(self, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
        if self.engine == "mysql":
            with mysql_connect(self.dsn) as conn, conn.cursor() as cur:
                cur.execute(sql, params)
                return list(cur.fetchall())
        with psycopg.connect(self.dsn) as pg:
            return pg.execute(sql.encode(), params).fetchall()

    def columns(self, table: str) -> dict[str, ColumnInfo]:
        """The table's columns as its catalog defines them; empty when it is missing."""
        if self.engine == "mysql":
            rows = self.query(
                "SELECT column_name, column_type, is_nullable = 'YES', column_default"
                " FROM information_schema.columns WHERE table_schema = DATABASE()"
                " AND table_name = %s ORDER BY ordinal_position",
                (table,),
            )
            return {
                name: ColumnInfo(
                    re.sub(r"int\(\d+\)", "int", kind),
                    bool(nullable),
                    None if default in (None, "NULL") else default,
                )
                for name, kind, nullable, default in rows
            }
        rows = self.query(
            "SELECT a.attname, format_type(a.atttypid, a.atttypmod), NOT a.attnotnull,"
            " pg_get_expr(d.adbin, d.adrelid) FROM pg_attribute a LEFT JOIN pg_attrdef d"
            " ON d.adrelid = a.attrelid AND d.adnum = a.attnum"
            " WHERE a.attrelid = to_regclass(%s) AND a.attnum > 0 AND NOT a.attisdropped"
            " ORDER BY a.attnum",
            (self.table(table),),
        )
        return {
            name: ColumnInfo(
                kind, nullable, None if default is None else re.sub(r"::[\w ]+$", "", default)
            )
            for name, kind, nullable, default in rows
        }

    def count(self, table: str) -> int:
        try:
            return int(self.query(f"SELECT count(*) FROM {self.table(table)}")[0][0])
        except Exception:  # the sink has not created it yet
            return -1

    def rows(self, table: str, columns: list[str]) -> dict[str, tuple[Any, ...]]:
        """Each row's `columns` in canonical form, by its id."""
        found = self.query(f"SELECT {', '.join(['id', *columns])} FROM {self.table(table)}")
        return {canonical(r[0]): tuple(canonical(v) for v in r[1:]) for r in found}


@dataclass
class Shape:
    """What the load writes in one table: the columns an insert names (the others
    take their defaults) and those an update sets."""

    inserts: dict[str, Value]
    updates: dict[str, Value] = field(default_factory=dict)

    def but(
        self,
        *,
        set_on_update: dict[str, Value] | None = None,
        write: dict[str, Value] | None = None,
        drop: str | None = None,
    ) -> Shape:
        """This shape after a schema change: `set_on_update` columns are set by updates
        only, `write` ones by inserts and updates, `drop` no longer exists."""
        inserts = {**self.inserts, **(write or {})}
        updates = {**self.updates, **(write or {}), **(set_on_update or {})}
        inserts.pop(drop or "", None)
        updates.pop(drop or "", None)
        return replace(self, inserts=inserts, updates=updates)


class SchemaLoad(threading.Thread):
    """Inserts, updates and deletes on ids 1..keys of several tables until stopped.
    `alter` runs a schema change between two writes and changes what is written next."""

    def __init__(self, db: Db, shapes: dict[str, Shape], keys: int, seed: int) -> None:
        super().__init__(daemon=True)
        self._db, self.shapes, self._keys = db, dict(shapes), keys
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._halt = threading.Event()
        self.writes = 0
        self.error: BaseException | None = None
        self.ddl: list[tuple[float, str]] = []  # (seconds since the start, statement)
        self._began = time.monotonic()

    def run(self) -> None:
        try:
            with self._db.session() as execute:
                while not self._halt.is_set():
                    with self._lock:
                        self._write(execute)
                    time.sleep(0.002)
        except BaseException as exc:
            self.error = exc

    def _write(self, execute: Execute) -> None:
        table = self._rng.choice(sorted(self.shapes))
        shape, key, n = self.shapes[table], self._rng.randint(1, self._keys), self.writes
        roll = self._rng.random()
        if roll < 0.5:
            execute(*insert(self._db.engine, table, shape, key, n))
        elif roll < 0.85 and shape.updates:
            sets = ", ".join(f"{c} = %s" for c in shape.updates)
            values = [value(n) for value in shape.updates.values()]
            execute(f"UPDATE {table} SET {sets} WHERE id = %s", (*values, key))
        else:
            execute(f"DELETE FROM {table} WHERE id = %s", (key,))
        self.writes += 1

    def alter(
        self,
        table: str,
        statements: list[str],
        shape: Shape | None = None,
        retire: tuple[str, ...] = (),
    ) -> None:
        """Run `statements` on the source between two writes; from then on the load
        writes `table` as `shape` says, and no longer writes the tables in `retire`
        (renamed or dropped)."""
        with self._lock:
            self._db.execute(*statements)
            self.ddl += [(round(time.monotonic() - self._began, 2), s) for s in statements]
            if shape is not None:
                self.shapes[table] = shape
            for gone in retire:
                self.shapes.pop(gone, None)

    def stop(self) -> int:
        """Stop writing; how many statements ran."""
        self._halt.set()
        self.join(30)
        if self.error is not None:
            raise AssertionError(f"the write load failed: {self.error!r}") from self.error
        return self.writes


class Run:
    """A pipeline on the local servers: the source in this process, the sink as
    `cdc run --role sink` with two worker processes, which `crash` kills with -9."""

    def __init__(self, tmp_path: Path, config: Path) -> None:
        self.tmp_path, self.config = tmp_path, config
        self.logs: list[Path] = []
        self.sink = self._start()

    def _start(self) -> SinkProcess:
        self.logs.append(self.tmp_path / f"sink-{len(self.logs)}.log")
        return SinkProcess(self.config, self.logs[-1])

    def crash(self, down_s: float) -> None:
        """kill -9 the sink daemon and its workers, then start it again."""
        listed = Path(f"/proc/{self.sink.pid}/task/{self.sink.pid}/children")
        children = listed.read_text().split() if listed.exists() else []
        self.sink.kill9()
        for child in children:
            with suppress(ProcessLookupError):  # it exited with its parent
                os.kill(int(child), signal.SIGKILL)
        time.sleep(down_s)
        self.sink = self._start()

    def log_summary(self, target: Db | None = None) -> str:
        """The warnings and errors the sink logged, by event, with a few messages;
        and the schema changes `target` records having followed."""
        events = []
        for path in self.logs:
            for line in path.read_bytes().splitlines():
                if line.startswith(b"{"):
                    try:
                        events.append(orjson.loads(line))
                    except orjson.JSONDecodeError:
                        continue
        bad = [e for e in events if e.get("level") in {"warning", "error", "critical"}]
        texts = sorted({str(e.get("error") or e.get("fix") or "")[:300] for e in bad} - {""})
        text = f"sink warnings/errors: {dict(Counter(e['event'] for e in bad))} {texts[:4]}"
        return text if target is None else f"{text}\n{followed(target)}"


def followed(target: Db) -> str:
    """The schema changes the sink recorded on the target, one line each."""
    table = "cdc_schema_changes" if target.engine == "mysql" else "public.cdc_schema_changes"
    try:
        rows = target.query(
            f"SELECT table_name, kind, column_name, action, operation FROM {table} ORDER BY id"
        )
    except Exception as exc:  # none recorded yet, or not where this looks
        return f"no record of schema changes on the target: {type(exc).__name__}"
    lines = [" ".join(str(v).rsplit(".", 1)[-1] for v in row) for row in rows]
    return "schema changes the target followed:\n  " + "\n  ".join(lines)


@contextmanager
def streaming(
    tmp_path: Path, name: str, bootstrap: str, sections: dict[str, Any], **extra: Any
) -> Iterator[Run]:
    """`sections`: the pipeline file's source and target sections; `extra`: more of it."""
    config = tmp_path / f"{name}.yaml"
    raw = {
        "name": name,
        **sections,
        "kafka": {"bootstrap_servers": bootstrap, "partitions": 2, "consumer": QUICK_GROUP},
        "metrics": {"listen": "127.0.0.1:0"},
        "snapshot": {"chunk_rows": 1000},
        "sink": {"workers": 2},
        **extra,
    }
    config.write_text(yaml.safe_dump(raw))
    with running(load_settings(config), "source"):
        run = Run(tmp_path, config)
        try:
            yield run
        finally:
            run.sink.stop()


def wait_snapshot(run: Run, target: Db, tables: list[str], keys: int) -> None:
    if not wait_until(lambda: all(target.count(t) == keys for t in tables), timeout=90):
        counts = {t: target.count(t) for t in tables}
        raise AssertionError(
            f"the snapshot did not reach the target: {counts}\n{run.log_summary()}"
        )


def end_problems(run: Run, name: str, bootstrap: str, wait_s: float = 30) -> list[str]:
    """What a user checks once the load stopped: `cdc verify` (which waits for the sink
    to catch up) and the dead-letter topic."""
    problems = []
    if not run.sink.alive():  # verify would wait for it in vain, table after table
        problems.append(f"the sink exited with {run.sink.proc.returncode}")
        wait_s = 0
    command = [*cdc_command(), "verify", "-c", str(run.config), "--json"]
    try:
        done = subprocess.run(
            [*command, "--wait-timeout", str(wait_s)],
            capture_output=True,
            text=True,
            timeout=wait_s + 90,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return [*problems, f"cdc verify did not finish in {wait_s + 90}s: the sink never caught up"]
    if done.returncode != 0:
        try:
            tables = json.loads(done.stdout)["tables"]
            shown: list[Any] = [
                {k: t[k] for k in ("table", "status", "reason", "missing", "extra", "differing")}
                | {"keys": {kind: keys[:5] for kind, keys in t["keys"].items()}}
                for t in tables
                if t["status"] != "equal"
            ]
        except (ValueError, KeyError):
            shown = [done.stdout[-2000:], done.stderr[-2000:]]
        problems.append(f"cdc verify exited {done.returncode}: {shown}")
    letters = read_topic(bootstrap, dead_letter_topic(name), 100_000, timeout=3)
    if letters:
        # one line per table and kind of error: the row's own values left out
        kinds = Counter(
            (
                headers_of(m).get("cdc.topic", "?").rsplit(".", 1)[-1],
                re.sub(r"\d+", "N", headers_of(m).get("cdc.error", "?").splitlines()[0]),
            )
            for m in letters
        )
        problems.append(f"{len(letters)} dead letters (table, error): {dict(kinds)}")
    return problems


def insert(engine: Engine, table: str, shape: Shape, key: int, n: int) -> tuple[str, Any]:
    """An insert of row `key` that does nothing if it exists."""
    columns = ", ".join(["id", *shape.inserts])
    marks = ", ".join(["%s"] * (len(shape.inserts) + 1))
    values = (key, *(value(n) for value in shape.inserts.values()))
    if engine == "mysql":
        return f"INSERT IGNORE INTO {table} ({columns}) VALUES ({marks})", values
    return f"INSERT INTO {table} ({columns}) VALUES ({marks}) ON CONFLICT DO NOTHING", values


def fill(db: Db, table: str, shape: Shape, keys: int) -> None:
    """Rows 1..keys, written before the pipeline starts."""
    with db.session() as execute:
        for key in range(1, keys + 1):
            execute(*insert(db.engine, table, shape, key, key))


def differences(table: str, columns: list[str], source: Db, target: Db) -> str | None:
    """How `table`'s rows differ on the source's `columns`, with a few examples; None
    when they are equal."""
    ours = source.rows(table, columns)
    try:
        theirs = target.rows(table, columns)
    except Exception as exc:  # a column (or the table) is missing on the target
        return f"{table}: cannot read {columns} on the target: {exc}"
    missing = sorted(set(ours) - set(theirs), key=int)
    extra = sorted(set(theirs) - set(ours), key=int)
    changed = sorted((k for k in ours if k in theirs and ours[k] != theirs[k]), key=int)
    if not (missing or extra or changed):
        return None
    text = (
        f"{table}: of {len(ours)} source rows {len(missing)} missing (ids {missing[:5]}),"
        f" {len(extra)} extra (ids {extra[:5]}), {len(changed)} different"
    )
    by_column: dict[str, int] = {}
    for key in changed:
        for name, a, b in zip(columns, ours[key], theirs[key], strict=True):
            by_column[name] = by_column.get(name, 0) + (a != b)
    if changed:
        text += f" (rows per differing column: {by_column})"
    for key in changed[:3]:
        pairs = [
            f"{name} source {_short(a)} target {_short(b)}"
            for name, a, b in zip(columns, ours[key], theirs[key], strict=True)
            if a != b
        ]
        text += f"\n    id {key}: {'; '.join(pairs)}"
    return text


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:30]}...({len(text)} chars)"
