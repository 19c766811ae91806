"""How a Kafka client reaches the cluster: the brokers, and TLS and SASL when configured."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from typing import Any

import structlog
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient

from cdc import metrics
from cdc.errors import TerminalError
from cdc.kafka_log import KAFKA_LOGGER
from cdc.settings_kafka import RECONNECT_DEFAULTS

log = structlog.get_logger(__name__)

# Between tries while the brokers do not answer at start: short, so that cdc starts
# within seconds of their return (asking brokers that are down costs next to nothing).
MAX_WAIT_S = 4.0
# A bare `host:port,...` list (PLAINTEXT), or `KafkaSettings.client_config()`.
KafkaConnection = str | Mapping[str, Any]

# Refusals that retrying cannot cure, with what to change.
_REFUSALS = {
    KafkaError._AUTHENTICATION: "check kafka.sasl: the mechanism, username and password must match"
    " a user the brokers know (kafka-configs --describe --entity-type users)",
    KafkaError._SSL: "check kafka.tls: ca_file must hold the CA that signed the brokers'"
    " certificates, which must name the host in bootstrap_servers; and the brokers' listener on"
    " that port must speak TLS",
}


def client_config(connection: KafkaConnection) -> dict[str, Any]:
    """librdkafka settings that reach the cluster; a client adds its own on top."""
    if isinstance(connection, str):
        return {"bootstrap.servers": connection, "logger": KAFKA_LOGGER, **RECONNECT_DEFAULTS}
    return dict(connection)


def check_access(
    connection: KafkaConnection,
    timeout: float = 10.0,
    stop: threading.Event | None = None,
) -> bool:
    """Wait until the brokers answer; stop with their reason when they refuse
    cdc (a wrong CA, password or mechanism): librdkafka retries such a refusal
    forever, so every client would only time out.

    Brokers that do not answer within `timeout` are waited for, backing off,
    with one `kafka_unreachable` line per try (librdkafka's own stream of
    connection errors stays quiet here), until they answer or `stop` is set:
    False then, True once they answered. Without `stop`, unreachable brokers
    are left to the clients' own retries after `timeout`.
    """
    refusals: list[KafkaError] = []
    config = client_config(connection)
    # log_level 0: the refusal is reported once, below, not as librdkafka's stream of retries
    with_callback: dict[str, Any] = {**config, "error_cb": refusals.append, "log_level": 0}
    admin = AdminClient(with_callback)
    deadline = time.monotonic() + timeout
    tries = 0
    while True:
        try:
            admin.list_topics(timeout=1.0)
            if tries:
                log.info("kafka_reachable", bootstrap=config["bootstrap.servers"], tries=tries)
            return True
        except KafkaException:
            admin.poll(0)  # serves error_cb
        refused = next((e for e in refusals if e.code() in _REFUSALS), None)
        if refused is not None:
            raise TerminalError(
                f"Kafka refused the connection to {config['bootstrap.servers']}: {refused.str()}",
                _REFUSALS[refused.code()],
            )
        if stop is not None and stop.is_set():
            return False
        if time.monotonic() < deadline:
            continue
        if stop is None:
            return True
        tries += 1
        metrics.KAFKA_UNREACHABLE.inc()
        wait = min(MAX_WAIT_S, 2.0**tries)
        last = refusals[-1].str() if refusals else "no answer"
        log.warning(
            "kafka_unreachable",
            bootstrap=config["bootstrap.servers"],
            error=last,
            retry_in_s=wait,
            fix="start the brokers, or check kafka.bootstrap_servers",
        )
        refusals.clear()
        if stop.wait(wait):
            return False
