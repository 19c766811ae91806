"""PostgreSQL logical decoding of N inserted rows.

Reference: ``pg_recvlogical`` with ``test_decoding``, the decoding ceiling the
server ships: it streams from the slot's creation point until ``--endpos`` (the
WAL insert position right after the load) and we count the INSERT lines.

Every runner gets its own slot, all created before the load, so each one
decodes exactly the same WAL. Runners other than the reference get ``pgoutput``
slots and a publication, which is what cdc reads.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from psycopg import sql

from bench import datasets
from bench.measure import Measurement, NeedleCounter, run_timed
from bench.progress import log
from bench.servers import pg_connect
from bench.workloads import Context, Runner, Workload

PG_SOURCE = "pg_src"


@dataclass(frozen=True)
class PgDecodingState:
    db: str
    slots: dict[str, str]
    publication: str
    end_lsn: str


def slot_name(ctx: Context, runner: str) -> str:
    return f"{ctx.prefix}_" + re.sub(r"[^a-z0-9_]", "_", runner.lower())[:40]


def prepare(ctx: Context) -> PgDecodingState:
    state = prepare_slots(
        ctx, WORKLOAD, lambda: datasets.load_pg(ctx.servers, ctx.src_db, ctx.rows)
    )
    ctx.loaded.add(PG_SOURCE)  # the bench table's rows: later workloads read them too
    return state


def prepare_slots(
    ctx: Context, workload: Workload[PgDecodingState], load: Callable[[], None]
) -> PgDecodingState:
    """A fresh source database with the bench table, a slot per runner of `workload`
    created before `load` fills it, and the WAL position right after."""
    db = ctx.src_db
    datasets.recreate_pg_db(ctx.servers, db)
    ctx.loaded.discard(PG_SOURCE)  # what `load` writes is its own
    datasets.create_pg_table(ctx.servers, db)
    publication = f"{ctx.prefix}_pub"
    slots: dict[str, str] = {}
    with pg_connect(ctx.servers, db) as conn:
        if workload.runners:
            # Only pgoutput readers need it, and it would be one more object for pgcopydb to clone.
            conn.execute(
                sql.SQL("CREATE PUBLICATION {} FOR TABLE public.{}").format(
                    sql.Identifier(publication), sql.Identifier(datasets.TABLE)
                )
            )
        for runner in workload.all_runners():
            plugin = "test_decoding" if runner.role == "reference" else "pgoutput"
            slot = slot_name(ctx, runner.name)
            # Creating a slot waits for transactions open elsewhere on the server to finish.
            conn.execute("SELECT pg_create_logical_replication_slot(%s, %s)", (slot, plugin))
            slots[runner.name] = slot
    load()
    with pg_connect(ctx.servers, db) as conn:
        row = conn.execute("SELECT pg_current_wal_insert_lsn()::text").fetchone()
        assert row is not None
        end_lsn = str(row[0])
        # A record past endpos lets a decoder see it has passed the end instead of
        # waiting for a keepalive when the server is otherwise idle.
        conn.execute("SELECT pg_logical_emit_message(false, 'cdc-bench', 'end')")
    log(f"pg decoding: slots {sorted(slots.values())}, end lsn {end_lsn}")
    return PgDecodingState(db=db, slots=slots, publication=publication, end_lsn=end_lsn)


def cleanup(ctx: Context, state: PgDecodingState) -> None:
    # Slots pin WAL for as long as they exist.
    with pg_connect(ctx.servers) as conn:
        for slot in state.slots.values():
            conn.execute(
                "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots"
                " WHERE slot_name = %s",
                (slot,),
            )


def run_pg_recvlogical(ctx: Context, state: PgDecodingState) -> Measurement:
    return recvlogical(ctx, state, REFERENCE.name, ("INSERT",), ctx.rows)


def recvlogical(
    ctx: Context, state: PgDecodingState, runner: str, ops: tuple[str, ...], expected: int
) -> Measurement:
    """`pg_recvlogical` on `runner`'s slot to the end of the load, its changes of the bench
    table (of the kinds `ops`: INSERT, UPDATE, DELETE) counted and checked."""
    counters = [NeedleCounter(f"table public.{datasets.TABLE}: {op}:".encode()) for op in ops]

    def feed(chunk: bytes) -> None:
        for counter in counters:
            counter.feed(chunk)

    timed = run_timed(
        [
            [
                "pg_recvlogical",
                "--dbname",
                state.db,
                "--slot",
                state.slots[runner],
                "--start",
                "--endpos",
                state.end_lsn,
                "--no-loop",
                "--file",
                "-",
            ]
        ],
        env=ctx.servers.tool_env(),
        sink=feed,
    )
    count = sum(c.count for c in counters)
    if count != expected:
        raise RuntimeError(f"pg_recvlogical decoded {count} changes, expected {expected}")
    return Measurement(runner, count, timed.seconds, timed.peak_rss_mb)


REFERENCE: Runner[PgDecodingState] = Runner(
    "pg_recvlogical (test_decoding)",
    "reference",
    run_pg_recvlogical,
    note="slot creation point to --endpos, text output counted by the bench",
)

WORKLOAD: Workload[PgDecodingState] = Workload(
    name="pg_decoding",
    title="PostgreSQL logical decoding",
    prepare=prepare,
    reference=REFERENCE,
    cleanup=cleanup,
    tools=("pg_recvlogical",),
)
