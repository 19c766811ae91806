"""Kafka not answering when `cdc run` starts: one clear line per try, backed
off, and SIGTERM obeyed at once, not a stream of librdkafka errors and a
traceback."""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from pathlib import Path

import orjson

from tests.integration.daemon_process import cdc_command
from tests.integration.pipeline import pg_pipeline


def test_unreachable_kafka_at_start_is_one_line_per_try_and_sigterm_stops_it(
    tmp_path: Path, pg_dsn: str, topic_prefix: str
) -> None:
    with socket.socket() as closed:  # a port nothing listens on
        closed.bind(("127.0.0.1", 0))
        nowhere = f"127.0.0.1:{closed.getsockname()[1]}"
    pg_pipeline(tmp_path, topic_prefix, pg_dsn, nowhere, ["public.t"])
    config = tmp_path / f"{topic_prefix}.yaml"
    log = tmp_path / "run.log"
    with log.open("wb") as stderr:
        proc = subprocess.Popen([*cdc_command(), "run", "-c", str(config)], stderr=stderr)
        deadline = time.monotonic() + 60
        while b"kafka_unreachable" not in log.read_bytes() and time.monotonic() < deadline:
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        asked = time.monotonic()
        try:
            status = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise AssertionError(f"SIGTERM ignored for 30 s:\n{log.read_text()[-3000:]}") from None
        took = time.monotonic() - asked
    text = log.read_bytes()
    lines = text.splitlines()
    events = [orjson.loads(line)["event"] for line in lines if line.startswith(b"{")]
    assert "kafka_unreachable" in events, text[-2000:]
    assert status == 0 and took < 5, (status, took)
    # cdc's own lines only: librdkafka's connection errors stay quiet meanwhile
    assert len(lines) == len(events) <= 5, text[-2000:]
    assert b"Traceback" not in text
