"""`pg_oltp` and `mysql_oltp`: the sources on small transactions with updates and deletes.

The load (`bench.oltp_traffic`): the workload's rows as row changes, 60 % single-row
insert transactions and the rest in transactions of update, update, insert, delete.
A decoder pays per transaction (begin, commit, position) what a bulk load pays once,
so these are the figures production traffic gets.

- `pg_oltp`: reference `pg_recvlogical` (test_decoding) on a slot created before the
  load; ours, `cdc run --role source` on its own pgoutput slot, until Kafka holds
  every change and each delete's tombstone; peer, Debezium's PostgreSQL connector.
- `mysql_oltp`: reference `mariadb-binlog -v` over the load's binlog range; peer,
  stock python-mysql-replication decoding every rows event, and Debezium's MySQL
  connector (its MariaDB one is not on Maven Central; 3.6 refuses MariaDB, 3.5 reads
  it); ours, `cdc run --role source` from the range's start until Kafka holds every
  change and tombstone.
"""

from __future__ import annotations

import os

from bench import (
    datasets,
    debezium,
    mysql_decoding,
    mysql_source,
    oltp_traffic,
    pg_decoding,
    pg_source,
)
from bench.measure import Measurement
from bench.mysql_decoding import BinlogRange
from bench.oltp_traffic import OPS, Mix
from bench.pg_decoding import PgDecodingState
from bench.workloads import Context, Runner, Workload


def _prepare_pg(ctx: Context) -> PgDecodingState:
    mix = Mix.of(ctx.rows)
    return pg_decoding.prepare_slots(
        ctx, PG_WORKLOAD, lambda: oltp_traffic.load_pg(ctx.servers, ctx.src_db, mix)
    )


def _pg_recvlogical(ctx: Context, state: PgDecodingState) -> Measurement:
    return pg_decoding.recvlogical(ctx, state, PG_REFERENCE.name, OPS, Mix.of(ctx.rows).events)


def _pg_ours(ctx: Context, state: PgDecodingState) -> Measurement:
    mix = Mix.of(ctx.rows)
    measured = pg_source.measure(ctx, state, mix.messages, distinct=False)
    # the rate in row changes, as the reference counts them (tombstones ride along)
    return Measurement(measured.name, mix.events, measured.seconds, measured.peak_rss_mb)


def _pg_debezium(ctx: Context, state: PgDecodingState) -> Measurement:
    return debezium.run_postgres(
        ctx,
        db=state.db,
        table=datasets.TABLE,
        slot=state.slots[debezium.PG_NAME],
        publication=state.publication,
        expected=Mix.of(ctx.rows).events,
        name=f"{ctx.prefix}_dbz_pg_{os.getpid()}",
    )


def _prepare_mysql(ctx: Context) -> BinlogRange:
    mix = Mix.of(ctx.rows)
    return mysql_decoding.prepare_range(
        ctx, lambda: oltp_traffic.load_mysql(ctx.servers, ctx.src_db, mix)
    )


def _mariadb_binlog(ctx: Context, rng: BinlogRange) -> Measurement:
    events = Mix.of(ctx.rows).events
    return mysql_decoding.mariadb_binlog(ctx, rng, MYSQL_REFERENCE.name, OPS, events)


def _stock(ctx: Context, rng: BinlogRange) -> Measurement:
    events = Mix.of(ctx.rows).events
    return mysql_decoding.run_reader("bench.mysql_stock_reader", STOCK_NAME, ctx, rng, events)


def _mysql_ours(ctx: Context, rng: BinlogRange) -> Measurement:
    mix = Mix.of(ctx.rows)
    measured = mysql_source.measure(ctx, rng, mix.messages)
    return Measurement(measured.name, mix.events, measured.seconds, measured.peak_rss_mb)


def _mysql_debezium(ctx: Context, rng: BinlogRange) -> Measurement:
    return debezium.run_mysql(
        ctx,
        db=rng.db,
        table=datasets.TABLE,
        start=rng.start,
        expected=Mix.of(ctx.rows).events,
        name=f"{ctx.prefix}_dbz_my_{os.getpid()}",
    )


# Debezium's figures include Kafka Connect's start-up (JVM, plugins, REST server), as
# ours include the interpreter's; its tombstones are off, so a message is a change
DEBEZIUM_NOTE = (
    "Kafka Connect standalone, from the load's start; spawn until Kafka holds every change"
)

PG_REFERENCE: Runner[PgDecodingState] = Runner(
    "pg_recvlogical (test_decoding)",
    "reference",
    _pg_recvlogical,
    note="slot creation point to --endpos, inserts, updates and deletes counted",
)

PG_WORKLOAD: Workload[PgDecodingState] = Workload(
    name="pg_oltp",
    title="PostgreSQL source, small transactions",
    prepare=_prepare_pg,
    reference=PG_REFERENCE,
    runners=[
        Runner(
            pg_source.NAME,
            "ours",
            _pg_ours,
            note="cdc run --role source, own pgoutput slot; spawn until Kafka acknowledged"
            " every change and tombstone",
        ),
        Runner(debezium.PG_NAME, "peer", _pg_debezium, note=DEBEZIUM_NOTE + ", own slot"),
    ],
    cleanup=pg_decoding.cleanup,
    tools=("pg_recvlogical",),
)

MYSQL_REFERENCE: Runner[BinlogRange] = Runner(
    "mariadb-binlog -v",
    "reference",
    _mariadb_binlog,
    note="remote binlog read of the load's range, inserts, updates and deletes counted",
)
STOCK_NAME = "python-mysql-replication (stock)"

MYSQL_WORKLOAD: Workload[BinlogRange] = Workload(
    name="mysql_oltp",
    title="MariaDB source, small transactions",
    prepare=_prepare_mysql,
    reference=MYSQL_REFERENCE,
    runners=[
        Runner(
            mysql_source.NAME,
            "ours",
            _mysql_ours,
            note="cdc run --role source from the load's binlog position; spawn until Kafka"
            " acknowledged every change and tombstone",
        ),
        Runner(STOCK_NAME, "peer", _stock, note="BinLogStreamReader, every rows event's .rows"),
        Runner(debezium.MYSQL_NAME, "peer", _mysql_debezium, note=DEBEZIUM_NOTE),
    ],
    tools=("mariadb-binlog",),
)
