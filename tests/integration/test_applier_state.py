"""Each applier's own state on a real target, without Kafka: the offsets a batch
stores commit with its rows or not at all (`sinks.<engine>.offsets`, read back by
`cdc.target_offsets`), and last-writer-wins keeps a row's newest version
(`sinks.<engine>.versions`)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest

from cdc.applier import Applier, ApplyResult
from cdc.changes import Change
from cdc.events import Op
from cdc.schemas import Column, TableSchema
from cdc.secrets import MysqlDsn
from sinks.collapse import collapse
from sinks.mysql.applier import MysqlApplier
from sinks.plan import LAST_WRITER_WINS
from sinks.postgres.applier import PostgresApplier
from tests.integration.conftest import mysql_connect

SCHEMA = TableSchema(
    "postgresql", "public", "items", (Column("id", "integer"), Column("v", "text")), ("id",)
)
TOPIC = "p.public.items"
GROUP = "state-test"


class Target:
    """An applier and a way to read the rows it wrote."""

    def __init__(self, applier: Applier, rows: Callable[[], dict[int, str]]) -> None:
        self.applier = applier
        self.rows = rows


@pytest.fixture(params=["postgres", "mariadb"])
def target(
    request: pytest.FixtureRequest, pg_target_dsn: str, mysql_dsn: str
) -> Iterator[Callable[[str], Target]]:
    """Opens an applier on a fresh target database under a conflict policy."""
    opened: list[Applier] = []

    def open_target(policy: str) -> Target:
        def policy_for(schema: str, table: str) -> str:
            return policy

        if request.param == "postgres":
            applier: Applier = PostgresApplier(pg_target_dsn, GROUP, policy_for, True)

            def rows() -> dict[int, str]:
                with psycopg.connect(pg_target_dsn) as conn:
                    return dict(conn.execute("SELECT id, v FROM public.items").fetchall())

        else:
            applier = MysqlApplier(MysqlDsn(mysql_dsn), GROUP, policy_for, True)

            def rows() -> dict[int, str]:
                with mysql_connect(mysql_dsn) as conn, conn.cursor() as cur:
                    cur.execute("SELECT id, v FROM items")
                    return dict(cur.fetchall())

        opened.append(applier)
        return Target(applier, rows)

    yield open_target
    for applier in opened:
        applier.close()


def change(op: Op, row_id: int, value: str, offset: int, ts_ms: int) -> Change:
    after = None if op is Op.DELETE else {"id": row_id, "v": value}
    return Change(
        op, SCHEMA, ("public", "items"), {"id": row_id}, None, after, (), ts_ms, TOPIC, 0, offset
    )


def apply(applier: Applier, changes: list[Change], **kwargs: Any) -> ApplyResult:
    offsets = {(TOPIC, 0): changes[-1].offset + 1}
    return applier.apply(list(collapse(changes)), offsets, **kwargs)


def test_rows_and_offsets_commit_together(target: Callable[[str], Target]) -> None:
    side = target("source-wins")
    applier = side.applier
    assert applier.committed_offsets([TOPIC]) == {}
    apply(applier, [change(Op.CREATE, 1, "a", 0, 1), change(Op.CREATE, 2, "b", 1, 1)])
    assert applier.committed_offsets([TOPIC]) == {(TOPIC, 0): 2}
    assert applier.committed_offsets(["p.public.other"]) == {}

    def fail(result: ApplyResult) -> None:
        raise RuntimeError("the process dies before the commit")

    with pytest.raises(RuntimeError):
        apply(applier, [change(Op.UPDATE, 1, "lost", 2, 2)], before_commit=fail)
    assert side.rows() == {1: "a", 2: "b"}
    assert applier.committed_offsets([TOPIC]) == {(TOPIC, 0): 2}

    apply(applier, [change(Op.UPDATE, 1, "kept", 2, 2), change(Op.DELETE, 2, "", 3, 2)])
    assert side.rows() == {1: "kept"}
    # a second connection reads what the first committed
    assert target("source-wins").applier.committed_offsets([TOPIC]) == {(TOPIC, 0): 4}


def test_last_writer_wins_keeps_the_newest_version(target: Callable[[str], Target]) -> None:
    side = target(LAST_WRITER_WINS)
    applier = side.applier
    apply(applier, [change(Op.CREATE, 1, "new", 10, 2_000), change(Op.CREATE, 2, "b", 11, 2_000)])
    # a change committed earlier at the source, arriving late
    late = apply(applier, [change(Op.UPDATE, 1, "old", 12, 1_000)])
    assert side.rows() == {1: "new", 2: "b"}
    assert dict(late.conflicts) == {("public.items", "older"): 1}
    # the same version again (a replay) applies: it restores a row wiped since
    replayed = apply(applier, [change(Op.CREATE, 2, "b", 11, 2_000)])
    assert dict(replayed.conflicts) == {("public.items", "insert_exists"): 1}
    newer = apply(applier, [change(Op.UPDATE, 1, "newer", 13, 3_000)])
    assert dict(newer.conflicts) == {}
    assert side.rows() == {1: "newer", 2: "b"}
