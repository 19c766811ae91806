"""Which columns an applier writes, on a real target, without Kafka: only those the
changes carry. A column that exists only on the target (the application added it on
the new side) keeps its default on an insert and its value on an update; a column the
source added mid-batch arrives whatever the order of the keys in the batch."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest

from cdc.applier import Applier
from cdc.changes import Change
from cdc.events import Op
from cdc.schemas import Column, TableSchema
from cdc.secrets import MysqlDsn
from sinks.collapse import collapse
from sinks.mysql.applier import MysqlApplier
from sinks.postgres.applier import PostgresApplier
from tests.integration.conftest import mysql_connect

OLD = TableSchema(
    "postgresql", "public", "items", (Column("id", "integer"), Column("v", "text")), ("id",)
)
NEW = TableSchema("postgresql", "public", "items", (*OLD.columns, Column("w", "text")), ("id",))
TOPIC = "p.public.items"
GROUP = "columns-test"
Rows = dict[int, dict[str, Any]]


class Target:
    """An applier, a statement run on its database, and the rows it holds."""

    def __init__(
        self,
        open_applier: Callable[[], Applier],
        run: Callable[[str], None],
        rows: Callable[[], Rows],
    ) -> None:
        self._open = open_applier
        self.opened: list[Applier] = []
        self.applier = self.restart()
        self.run = run
        self.rows = rows

    def restart(self) -> Applier:
        """A new applier, as a sink process started anew has: it reads the table again."""
        self.applier = self._open()
        self.opened.append(self.applier)
        return self.applier


@pytest.fixture(params=["postgres", "mariadb"])
def target(request: pytest.FixtureRequest, pg_target_dsn: str, mysql_dsn: str) -> Iterator[Target]:
    def policy_for(schema: str, table: str) -> str:
        return "source-wins"

    if request.param == "postgres":

        def open_applier() -> Applier:
            return PostgresApplier(pg_target_dsn, GROUP, policy_for, True)

        def run(statement: str) -> None:
            with psycopg.connect(pg_target_dsn, autocommit=True) as conn:
                conn.execute(statement.encode())

        def rows() -> Rows:
            with psycopg.connect(pg_target_dsn) as conn, conn.cursor() as cur:
                cur.execute("SELECT * FROM public.items ORDER BY id")
                names = [d.name for d in cur.description or ()]
                return {r[0]: dict(zip(names, r, strict=True)) for r in cur.fetchall()}

    else:

        def open_applier() -> Applier:
            return MysqlApplier(MysqlDsn(mysql_dsn), GROUP, policy_for, True)

        def run(statement: str) -> None:
            with mysql_connect(mysql_dsn) as conn, conn.cursor() as cur:
                cur.execute(statement)

        def rows() -> Rows:
            with mysql_connect(mysql_dsn) as conn, conn.cursor() as cur:
                cur.execute("SELECT * FROM items ORDER BY id")
                names = [d[0] for d in cur.description or ()]
                return {r[0]: dict(zip(names, r, strict=True)) for r in cur.fetchall()}

    target = Target(open_applier, run, rows)
    yield target
    for applier in target.opened:
        applier.close()


def change(schema: TableSchema, op: Op, offset: int, **row: Any) -> Change:
    return Change(
        op, schema, ("public", "items"), {"id": row["id"]}, None, row, (), 1, TOPIC, 0, offset
    )


def apply(applier: Applier, changes: list[Change]) -> None:
    applier.apply(list(collapse(changes)), {(TOPIC, 0): changes[-1].offset + 1})


@pytest.mark.parametrize("rows", [1, 3], ids=["one_row", "several_rows"])
def test_a_target_only_column_keeps_its_default_and_its_value(target: Target, rows: int) -> None:
    apply(target.applier, [change(OLD, Op.READ, 0, id=0, v="first")])
    target.run("ALTER TABLE items ADD COLUMN note varchar(40) NOT NULL DEFAULT 'new side'")
    target.run("UPDATE items SET note = 'set by the application' WHERE id = 0")
    target.restart()

    ids = range(1, rows + 1)
    apply(target.applier, [change(OLD, Op.CREATE, i, id=i, v=f"v{i}") for i in ids])
    apply(
        target.applier,
        [change(OLD, Op.UPDATE, 10 + i, id=i, v=f"u{i}") for i in (0, *ids)],
    )

    found = target.rows()
    assert found[0]["note"] == "set by the application"
    assert found[0]["v"] == "u0"
    for i in ids:
        assert found[i]["note"] == "new side", found[i]
        assert found[i]["v"] == f"u{i}"


@pytest.mark.parametrize(
    "ops", [(Op.CREATE, Op.CREATE), (Op.UPDATE, Op.CREATE), (Op.UPDATE, Op.UPDATE)]
)
def test_a_column_added_mid_batch_arrives_after_a_key_of_the_older_schema(
    target: Target, ops: tuple[Op, Op]
) -> None:
    apply(
        target.applier, [change(OLD, Op.READ, 0, id=1, v="a"), change(OLD, Op.READ, 1, id=2, v="b")]
    )
    older, newer = ops
    # one batch: a key written before the source's ALTER first, one written after it next
    first = change(OLD, older, 2, id=1 if older is Op.UPDATE else 3, v="old shape")
    second = change(NEW, newer, 3, id=2 if newer is Op.UPDATE else 4, v="new shape", w="kept")
    apply(target.applier, [first, second])

    found = target.rows()
    assert found[second.key_values[0]]["w"] == "kept"
    assert found[second.key_values[0]]["v"] == "new shape"
    assert found[first.key_values[0]]["v"] == "old shape"
