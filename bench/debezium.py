"""Debezium's source connectors as a peer: one Kafka Connect standalone worker per run.

``dev/connect.sh install`` puts Kafka Connect (the broker's version) and
Debezium's PostgreSQL (3.6.1) and MySQL (3.5.0) connectors under
``.dev/connect``. Each run starts ``ConnectStandalone`` with one connector
under GNU time and, as for our own source, the clock runs from the spawn (JVM
start-up, plugin discovery and Connect's REST server included) until Kafka
holds every change event of the bench table: its topic's high watermarks sum
to ``expected``. Connect's producer uses ``acks=all``, so a message below the
high watermark is acknowledged. The worker is then stopped and its topics
deleted.

Both runners read a range recorded before the load, as ours do:

- PostgreSQL: the caller's pgoutput slot and publication, both made before the
  load. pgoutput looks a publication up as of each change it decodes, so one
  Debezium created at start-up would not cover the load; the publication is
  therefore passed in and Debezium is told never to create one. With
  ``snapshot.mode=no_data`` and no stored offset, Debezium streams from the
  slot's confirmed position.
- MariaDB: Debezium's MariaDB connector is not on Maven Central, so its MySQL
  connector reads MariaDB's binlog: 3.5.0, as 3.6 refuses a server whose
  version is above 8.3 and lacks ``SHOW BINARY LOG STATUS``. Debezium starts
  at a binlog position only through a stored offset: the run writes one (file
  and pos, the shape of ``MySqlOffsetContext``) into the worker's offsets
  file, and ``snapshot.mode=recovery`` rebuilds the table schemas the missing
  schema history would have held, without locks or data, before streaming
  from it.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path

from confluent_kafka import Consumer

from bench.kafka_timing import time_until_in_kafka
from bench.kafka_topics import PARTITIONS, delete_topics, high_watermarks
from bench.measure import Measurement
from bench.mysql_source import kafka_bootstrap
from bench.servers import ROOT
from bench.workloads import Context

PG_NAME = "Debezium 3.6 PostgreSQL connector (Connect standalone)"
MYSQL_NAME = "Debezium 3.5 MySQL connector (Connect standalone)"
CONNECT = ROOT / ".dev" / "connect"
INSTALL = ROOT / "dev" / "connect.sh"
LOG_CONFIG = ROOT / "dev" / "connect" / "log4j2.properties"
HEAP = "-Xmx512m"
KAFKA_JVM_OPTIONS = (
    "-server",
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:InitiatingHeapOccupancyPercent=35",
    "-XX:+ExplicitGCInvokesConcurrent",
    "-XX:MaxInlineLevel=15",
    "-Djava.awt.headless=true",
)
# The connector reads it through Connect's env config provider: secrets stay out of files and argv.
PASSWORD_VAR = "CDC_BENCH_DEBEZIUM_PASSWORD"
ENV_PROVIDER = "org.apache.kafka.common.config.provider.EnvVarConfigProvider"
# Binlog clients need a server id no other replica of the server uses.
SERVER_ID_BASE = 3_600_000_000


def install() -> None:
    """Kafka Connect and the connectors, unless already under .dev/connect (a no-op then)."""
    subprocess.run(["bash", str(INSTALL), "install"], check=True, timeout=900)


def run_postgres(
    ctx: Context,
    *,
    db: str,
    table: str,
    slot: str,
    publication: str,
    expected: int,
    name: str,
) -> Measurement:
    """Debezium on `slot` (pgoutput, made before the load, as `publication` was) until
    Kafka holds `expected` change events of public.`table`; `name` is its topic prefix."""
    ep = ctx.servers.pg
    connector = {
        "connector.class": "io.debezium.connector.postgresql.PostgresConnector",
        "database.hostname": ep.host,
        "database.port": str(ep.port),
        "database.user": ep.user,
        "database.dbname": db,
        "plugin.name": "pgoutput",
        "slot.name": slot,
        "publication.name": publication,
        "publication.autocreate.mode": "disabled",
        "snapshot.mode": "no_data",
        "table.include.list": f"public.{table}",
    }
    return _run(ctx, PG_NAME, name, connector, f"{name}.public.{table}", expected, ep.password)


def run_mysql(
    ctx: Context,
    *,
    db: str,
    table: str,
    start: tuple[str, int],
    expected: int,
    name: str,
) -> Measurement:
    """Debezium's MySQL connector on MariaDB's binlog from `start` (file, position) until
    Kafka holds `expected` change events of `db`.`table`; `name` is its topic prefix."""
    ep = ctx.servers.mysql
    connector = {
        "connector.class": "io.debezium.connector.mysql.MySqlConnector",
        "database.hostname": ep.host,
        "database.port": str(ep.port),
        "database.user": ep.user,
        "database.server.id": str(SERVER_ID_BASE + os.getpid() % 100_000),
        "database.include.list": db,
        "table.include.list": f"{db}.{table}",
        # Schemas come from the tables as they are now (the load changes none), with no
        # lock: other clients use the server meanwhile.
        "snapshot.mode": "recovery",
        "snapshot.locking.mode": "none",
        "schema.history.internal": "io.debezium.storage.file.history.FileSchemaHistory",
        "schema.history.internal.store.only.captured.tables.ddl": "true",
        # DDL events would go to a topic of their own; the bench counts row changes only.
        "include.schema.changes": "false",
        # Plaintext, as our source reads the binlog without a `tls:` block (the default
        # would be TLS whenever the server offers it). Both PostgreSQL clients use libpq's
        # and pgjdbc's default, TLS if offered.
        "database.ssl.mode": "disabled",
    }
    offset = {"file": start[0], "pos": start[1]}
    return _run(
        ctx,
        MYSQL_NAME,
        name,
        connector,
        f"{name}.{db}.{table}",
        expected,
        ep.password,
        # MySqlPartition's key: the topic prefix, as `server`.
        stored_offset=({"server": name}, offset),
    )


def _run(
    ctx: Context,
    title: str,
    name: str,
    connector: dict[str, str],
    topic: str,
    expected: int,
    password: str,
    stored_offset: tuple[dict[str, str], dict[str, object]] | None = None,
) -> Measurement:
    install()
    bootstrap = kafka_bootstrap()
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"{name}_watch"})
    try:
        with tempfile.TemporaryDirectory(prefix="cdc-bench-debezium-", dir=ctx.workdir) as tmp:
            work = Path(tmp)
            offsets = work / "offsets.dat"
            if stored_offset is not None:
                partition, offset = stored_offset
                offsets.write_bytes(offsets_file({_json([name, partition]): _json(offset)}))
            connector = connector | {
                "name": name,
                "tasks.max": "1",
                "topic.prefix": name,
                "database.password": f"${{env:{PASSWORD_VAR}}}",
                # The broker creates no topic on its own; Connect creates the table's
                # topic with as many partitions as every other runner's.
                "topic.creation.default.partitions": str(PARTITIONS),
                "topic.creation.default.replication.factor": "1",
                # One message per change event: a delete is not followed by a tombstone
                # (cdc publishes none either).
                "tombstones.on.delete": "false",
            }
            if "schema.history.internal" in connector:
                connector["schema.history.internal.file.filename"] = str(work / "history.dat")
            worker_file, connector_file = work / "worker.properties", work / "connector.properties"
            worker_file.write_text(_properties(_worker(bootstrap, offsets)))
            connector_file.write_text(_properties(connector))
            argv = [
                "java",
                HEAP,
                # The JVM options Kafka's bin/connect-standalone.sh starts a worker with
                *KAFKA_JVM_OPTIONS,
                f"-Dlog4j2.configurationFile={LOG_CONFIG}",
                "-cp",
                f"{CONNECT / 'libs'}/*",
                "org.apache.kafka.connect.cli.ConnectStandalone",
                str(worker_file),
                str(connector_file),
            ]
            env = dict(os.environ) | {PASSWORD_VAR: password}
            count, seconds, rss = time_until_in_kafka(
                argv, env, work, expected, lambda: high_watermarks(consumer, topic), title
            )
    finally:
        consumer.close()
        delete_topics(bootstrap, name)
    if count != expected:
        raise RuntimeError(f"Kafka holds {count} messages of {topic}, expected {expected}")
    return Measurement(title, count, seconds, rss)


def _worker(bootstrap: str, offsets: Path) -> dict[str, str]:
    return {
        "bootstrap.servers": bootstrap,
        # JSON without the inline schema envelope: cdc's messages carry no inline schema
        # either, so both put the same kind of payload on the wire.
        "key.converter": "org.apache.kafka.connect.json.JsonConverter",
        "value.converter": "org.apache.kafka.connect.json.JsonConverter",
        "key.converter.schemas.enable": "false",
        "value.converter.schemas.enable": "false",
        "offset.storage.file.filename": str(offsets),
        "plugin.path": str(CONNECT / "plugins"),
        # Connectors are found through their service manifests (Debezium ships them), not
        # by also scanning every class of every jar (the default): 1.3-2.4 s instead of a
        # minute and more at each start on a busy 2-core machine.
        "plugin.discovery": "service_load",
        # The REST API is not used; port 0 keeps it from clashing with anything.
        "listeners": "http://127.0.0.1:0",
        "config.providers": "env",
        "config.providers.env.class": ENV_PROVIDER,
    }


def _properties(values: Mapping[str, str]) -> str:
    # Values here hold no backslash, newline or leading blank a properties file would alter.
    return "".join(f"{key}={value}\n" for key, value in values.items())


# ------------------------------------------------- Connect's standalone offsets file
# FileOffsetBackingStore keeps a java.util.HashMap<byte[], byte[]> written with Java
# serialization: keys are the JSON of [connector name, source partition], values the JSON
# of the source offset (the worker's internal JsonConverter, without schemas).
_MAGIC = b"\xac\xed\x00\x05"
_HASHMAP_UID = 362498820763181265
_BYTES_UID = -5984413125824719648
_HASHMAP_HANDLE = 0x7E0000  # the first handle of a stream: HashMap's class descriptor
_BYTES_DESC_HANDLE = _HASHMAP_HANDLE + 2  # after the HashMap object itself


def _json(value: object) -> bytes:
    # Jackson's compact form: offsets are looked up by the bytes of their key.
    return json.dumps(value, separators=(",", ":")).encode()


def offsets_file(entries: Mapping[bytes, bytes]) -> bytes:
    """The offsets file of a standalone worker holding `entries` (key JSON: offset JSON)."""

    def utf(text: str) -> bytes:
        data = text.encode()
        return struct.pack(">H", len(data)) + data

    capacity = 16
    while len(entries) > capacity * 0.75:
        capacity *= 2
    out = bytearray(_MAGIC)
    # TC_OBJECT, TC_CLASSDESC java.util.HashMap: serializable with writeObject, two fields
    out += b"\x73\x72" + utf("java.util.HashMap") + struct.pack(">q", _HASHMAP_UID) + b"\x03"
    out += struct.pack(">H", 2) + b"F" + utf("loadFactor") + b"I" + utf("threshold")
    out += b"\x78\x70"  # end of class annotations; no serializable superclass
    out += struct.pack(">fi", 0.75, int(capacity * 0.75))
    out += b"\x77\x08" + struct.pack(">ii", capacity, len(entries))  # block: buckets, size
    first = True
    for key, value in entries.items():
        for item in (key, value):
            out += b"\x75"  # TC_ARRAY
            if first:
                out += b"\x72" + utf("[B") + struct.pack(">q", _BYTES_UID) + b"\x02\x00\x00\x78\x70"
                first = False
            else:
                out += b"\x71" + struct.pack(">i", _BYTES_DESC_HANDLE)  # TC_REFERENCE
            out += struct.pack(">i", len(item)) + item
    out += b"\x78"  # end of HashMap.writeObject's data
    return bytes(out)
