"""DROP TABLE and RENAME TABLE while streaming, on the real servers, under a write
load with `sink.workers: 2`: the target follows each, in order with the rows
around it, and `cdc verify` ends equal with no dead letters. Then the policies:
`drop_table: ignore` keeps the target table, `rename_table: stop` stops the sink
with the fix, and the sink goes on once the user carried it out."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.integration.pipeline import wait_until
from tests.integration.schema_load import (
    SchemaLoad,
    Shape,
    end_problems,
    fill,
    streaming,
    wait_snapshot,
)
from tests.integration.test_schema_change_edges import restart_sink
from tests.integration.test_schema_changes import BASE, CASES, PLAIN, Case, equal_rows, sides

KEYS = 300
SHAPE = Shape(BASE, BASE)


@pytest.fixture
def dsns(pg_dsn: str, pg_target_dsn: str, mysql_dsn: str) -> dict[str, str]:
    return {"pg": pg_dsn, "pg_target": pg_target_dsn, "mysql": mysql_dsn}


def rename(engine: str, old: str, new: str) -> str:
    if engine == "mysql":  # MariaDB's own form (it takes ALTER TABLE ... RENAME TO too)
        return f"RENAME TABLE {old} TO {new}"
    return f"ALTER TABLE {old} RENAME TO {new}"


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
def test_dropped_renamed_and_recreated_tables_end_equal(
    tmp_path: Path, case: Case, dsns: dict[str, str], kafka_bootstrap: str, topic_prefix: str
) -> None:
    tables = ["t_keep", "t_ren", "t_drop", "t_gone"]
    both = sides(case, dsns, tables)
    # a pattern: the new name of a renamed table is selected too
    both.sections["source"]["tables"] = {"include": [f"{both.source.schema}.t_*"]}
    for table in tables:
        both.source.execute(f"CREATE TABLE {table} {PLAIN.format('')}")
        fill(both.source, table, SHAPE, KEYS)
    with streaming(tmp_path, topic_prefix, kafka_bootstrap, both.sections) as run:
        wait_snapshot(run, both.target, tables, KEYS)
        load = SchemaLoad(both.source, dict.fromkeys(tables, SHAPE), KEYS, seed=15)
        load.start()
        time.sleep(1)
        load.alter("t_renamed", [rename(case.source, "t_ren", "t_renamed")], SHAPE, ("t_ren",))
        time.sleep(1)
        # dropped and created again at once: the new table's rows follow the drop
        load.alter(
            "t_drop",
            ["DROP TABLE t_drop", f"CREATE TABLE t_drop {PLAIN.format('')}"],
            SHAPE,
        )
        time.sleep(1)
        load.alter("t_keep", ["DROP TABLE t_gone"], retire=("t_gone",))
        time.sleep(2)
        load.stop()
        final = ["t_keep", "t_renamed", "t_drop"]
        rows = {t: both.source.count(t) for t in final}
        arrived = wait_until(
            lambda: (
                all(both.target.count(t) == n for t, n in rows.items())
                and both.target.count("t_ren") == -1
                and both.target.count("t_gone") == -1
            ),
            timeout=60,
            every=0.5,
        )
        problems = end_problems(run, topic_prefix, kafka_bootstrap)
        problems += equal_rows(both, final)
        left = {t: both.target.count(t) for t in ["t_ren", "t_gone", *final]}
        summary = run.log_summary(both.target)
    assert arrived, f"target rows (-1: no table) {left}, source {rows}\n{summary}"
    # equal rows in t_renamed: the target table was renamed with its rows, not
    # made anew from the rows written under the new name
    assert not problems, "\n".join([*problems, summary])


def test_drop_ignore_keeps_the_table_and_rename_stop_waits_for_the_user(
    tmp_path: Path, dsns: dict[str, str], kafka_bootstrap: str, topic_prefix: str
) -> None:
    case = Case("postgres", "postgres")
    tables = ["t_keep", "t_ren"]
    both = sides(case, dsns, tables)
    both.sections["source"]["tables"] = {"include": ["public.t_*"]}
    for table in tables:
        both.source.execute(f"CREATE TABLE {table} {PLAIN.format('')}")
        fill(both.source, table, SHAPE, KEYS)
    policy = {"drop_table": "ignore", "rename_table": "stop"}
    with streaming(
        tmp_path, topic_prefix, kafka_bootstrap, both.sections, schema_changes=policy
    ) as run:
        wait_snapshot(run, both.target, tables, KEYS)
        both.source.execute("DROP TABLE t_keep")
        both.source.execute(
            "ALTER TABLE t_ren RENAME TO t_renamed",
            "INSERT INTO t_renamed (id, counter, label) VALUES (5001, 1, 'after the rename')",
        )
        stopped = wait_until(lambda: not run.sink.alive(), timeout=60, every=0.5)
        stop_log = run.logs[-1].read_text()
        kept = both.target.count("t_keep")
        # what the error told the user to do
        both.target.execute("ALTER TABLE public.t_ren RENAME TO t_renamed")
        restart_sink(run, schema_changes={**policy, "rename_table": "apply"})
        arrived = wait_until(
            lambda: both.target.count("t_renamed") == KEYS + 1, timeout=60, every=0.5
        )
        problems = end_problems(run, topic_prefix, kafka_bootstrap)
        problems += equal_rows(both, ["t_renamed"])
        summary = run.log_summary(both.target)
    assert stopped, f"the sink went on past a RENAME TABLE under rename_table: stop\n{stop_log}"
    assert "rename_table: apply" in stop_log, stop_log
    assert kept == KEYS, f"drop_table: ignore, yet the target's t_keep has {kept} rows"
    assert arrived, f"t_renamed has {both.target.count('t_renamed')} rows\n{summary}"
    assert not problems, "\n".join([*problems, summary])
