"""librdkafka's own lines come out as cdc's JSON log lines, not as raw `%3|...`
text on stderr in the middle of a command's output."""

from __future__ import annotations

import subprocess
import sys

import orjson

# a client of brokers that refuse connections: librdkafka logs each refusal
PROBE = """
from confluent_kafka import Consumer
from cdc import logs
from cdc.settings_kafka import KafkaSettings
logs.configure("json", "info")
consumer = Consumer(KafkaSettings(bootstrap_servers="127.0.0.1:1").consumer_config("probe"))
consumer.subscribe(["probe"])
for _ in range(6):
    consumer.poll(0.2)
consumer.close()
"""


def test_librdkafka_lines_are_json_log_lines() -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=60, check=True
    )
    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    assert not [line for line in lines if line.startswith("%")], lines[:3]
    events = [orjson.loads(line) for line in lines]
    refused = [e for e in events if e["event"] == "kafka_client_log"]
    assert refused, lines[:3]
    assert "Connection refused" in refused[0]["message"]
    assert refused[0]["level"] == "warning"
