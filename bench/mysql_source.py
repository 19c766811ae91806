"""Our MySQL/MariaDB source on the ``mysql_decoding`` workload: binlog to Kafka.

``cdc run --role source`` with ``snapshot.mode: never`` starts at the binlog
position recorded before the load (put into its offsets topic as the stored
``mysql/position``), so it reads exactly the range the reference decodes, and
publishes every row to Kafka. The clock runs from the spawn (interpreter
start-up included, as for the other runners) until Kafka holds every row: the
topic's high watermarks sum to the row count, and with ``acks=all`` a message
below the high watermark is acknowledged. The process is then stopped with
SIGTERM; its peak RSS comes from GNU time, as for every other runner.

Profile the whole source in one process: ``python -m bench.mysql_source
--rows 200000 --profile /tmp/src.prof [--small]`` (loads its own ``bench_prof_src``).
"""

from __future__ import annotations

import argparse
import cProfile
import os
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import quote

import yaml
from confluent_kafka import Consumer

from bench import datasets, mysql_decoding
from bench.kafka_timing import time_until_in_kafka
from bench.kafka_topics import PARTITIONS, delete_topics, high_watermarks
from bench.measure import Measurement
from bench.mysql_decoding import BinlogRange
from bench.oltp_traffic import Mix, load_mysql
from bench.servers import ENV_FILE, ROOT, _read_env_file, load_servers
from bench.workloads import Context, Runner
from cdc.kafka.offsets import KafkaOffsetStore
from cdc.mysql.position import BinlogPosition
from cdc.mysql.source import POSITION_KEY

NAME = "cdc source (binlog -> Kafka)"
PASSWORD_VAR = "CDC_BENCH_MYSQL_PASSWORD"


def kafka_bootstrap() -> str:
    values = _read_env_file(ENV_FILE) | dict(os.environ)
    bootstrap = values.get("CDC_KAFKA_BOOTSTRAP")
    if not bootstrap:
        raise RuntimeError("CDC_KAFKA_BOOTSTRAP unset; run `bash dev/services.sh up` first")
    return bootstrap


def _config(
    host: str, port: int, user: str, db: str, name: str, bootstrap: str
) -> dict[str, object]:
    return {
        "name": name,
        "source": {
            "type": "mysql",
            # the password stays out of the file and argv: ${...} is read from the environment
            "dsn": f"mysql://{quote(user, safe='')}:${{{PASSWORD_VAR}}}@{host}:{port}/{db}",
            "tables": [f"{db}.{datasets.TABLE}"],
        },
        "kafka": {"bootstrap_servers": bootstrap, "partitions": PARTITIONS},
        "snapshot": {"mode": "never"},
        "metrics": {"listen": "127.0.0.1:0"},
        "log": {"level": "warning"},
    }


def _start_at(bootstrap: str, name: str, start: tuple[str, int]) -> None:
    """The stored position a restarted source would resume from: the load's start."""
    position = BinlogPosition(start[0], start[1])
    KafkaOffsetStore(bootstrap, name).put(POSITION_KEY, position.to_json())


def run(ctx: Context, rng: BinlogRange) -> Measurement:
    return measure(ctx, rng, ctx.rows)


def measure(ctx: Context, rng: BinlogRange, messages: int) -> Measurement:
    """Our source from the range's start until Kafka holds `messages` messages of the
    bench table."""
    bootstrap = kafka_bootstrap()
    name = f"{ctx.prefix}_cdc_mysql_{os.getpid()}"[:63]
    topic = f"{name}.{rng.db}.{datasets.TABLE}"
    cdc = ROOT / ".venv" / "bin" / "cdc"
    ep = ctx.servers.mysql
    env = ctx.servers.tool_env() | {PASSWORD_VAR: quote(ep.password, safe="")}
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"{name}_watch"})
    try:
        _start_at(bootstrap, name, rng.start)
        with tempfile.TemporaryDirectory(prefix="cdc-bench-ours-", dir=ctx.workdir) as tmp:
            work = Path(tmp)
            config = work / "cdc.yaml"
            config.write_text(
                yaml.safe_dump(_config(ep.host, ep.port, ep.user, rng.db, name, bootstrap))
            )
            count, seconds, rss = time_until_in_kafka(
                [str(cdc), "run", "-c", str(config)],
                env,
                work,
                messages,
                lambda: high_watermarks(consumer, topic),
                "cdc",
            )
    finally:
        consumer.close()
        delete_topics(bootstrap, name)
    if count != messages:
        raise RuntimeError(f"Kafka holds {count} messages, expected {messages}")
    return Measurement(NAME, count, seconds, rss)


RUNNER: Runner[BinlogRange] = Runner(
    NAME,
    "ours",
    run,
    note="cdc run --role source, snapshot.mode never, from the binlog position before the load;"
    " spawn until Kafka acknowledged every row (acks=all)",
)


def profile(rows: int, prefix: str, out: Path, small: bool) -> None:
    """The whole source in this process under cProfile: load `rows` rows as the
    workload does (with `small`, as `mysql_oltp`'s row changes), then stream their
    binlog to Kafka until it has them all."""
    from cdc.app.daemon import run_source  # noqa: PLC0415
    from cdc.app.lifecycle import Stopper  # noqa: PLC0415
    from cdc.health import Health  # noqa: PLC0415
    from cdc.settings_load import load_settings  # noqa: PLC0415

    servers = load_servers()
    ep = servers.mysql
    bootstrap = kafka_bootstrap()
    name = f"{prefix}_cdc_mysql_profile_{os.getpid()}"
    topic = f"{name}.{prefix}_src.{datasets.TABLE}"
    os.environ[PASSWORD_VAR] = quote(ep.password, safe="")
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"{name}_watch"})
    stopper = Stopper()
    with tempfile.TemporaryDirectory() as tmp:
        ctx = Context(rows=rows, servers=servers, prefix=prefix, workdir=Path(tmp))
        if small:
            mix = Mix.of(rows)
            rng = mysql_decoding.prepare_range(ctx, lambda: load_mysql(servers, ctx.src_db, mix))
            messages = mix.messages
        else:
            rng, messages = mysql_decoding.prepare(ctx), rows
        try:
            _start_at(bootstrap, name, rng.start)
            config = Path(tmp) / "cdc.yaml"
            settings = _config(ep.host, ep.port, ep.user, rng.db, name, bootstrap)
            config.write_text(yaml.safe_dump(settings))

            def stop_when_done() -> None:
                while high_watermarks(consumer, topic) < messages:
                    time.sleep(0.05)
                stopper.event.set()

            threading.Thread(target=stop_when_done, daemon=True).start()
            profiler = cProfile.Profile()
            began = time.perf_counter()
            profiler.runcall(run_source, load_settings(config), stopper, Health(), 30.0)
            took = time.perf_counter() - began
            print(f"{rows} rows in {took:.2f}s, {rows / took:,.0f}/s under the profiler")
            profiler.dump_stats(out)
        finally:
            consumer.close()
            delete_topics(bootstrap, name)
            datasets.drop_mysql_db(servers, rng.db)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--prefix", default="bench_prof")
    parser.add_argument("--profile", type=Path, required=True, help="cProfile stats file")
    parser.add_argument("--small", action="store_true", help="mysql_oltp's small transactions")
    args = parser.parse_args(argv)
    profile(args.rows, args.prefix, args.profile, args.small)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
