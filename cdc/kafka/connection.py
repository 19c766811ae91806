"""How a Kafka client reaches the cluster: the brokers, and TLS and SASL when configured."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient

from cdc.errors import TerminalError
from cdc.settings_kafka import LibrdkafkaValue

# A bare `host:port,...` list (PLAINTEXT), or `KafkaSettings.client_config()`.
KafkaConnection = str | Mapping[str, LibrdkafkaValue]

# Refusals that retrying cannot cure, with what to change.
_REFUSALS = {
    KafkaError._AUTHENTICATION: "check kafka.sasl: the mechanism, username and password must match"
    " a user the brokers know (kafka-configs --describe --entity-type users)",
    KafkaError._SSL: "check kafka.tls: ca_file must hold the CA that signed the brokers'"
    " certificates, which must name the host in bootstrap_servers; and the brokers' listener on"
    " that port must speak TLS",
}


def client_config(connection: KafkaConnection) -> dict[str, LibrdkafkaValue]:
    """librdkafka settings that reach the cluster; a client adds its own on top."""
    if isinstance(connection, str):
        return {"bootstrap.servers": connection}
    return dict(connection)


def check_access(connection: KafkaConnection, timeout: float = 10.0) -> None:
    """Stop with the brokers' reason when they refuse cdc (a wrong CA, password or mechanism).

    librdkafka retries such a refusal forever, so every client would only time out. Brokers that
    are merely unreachable are left to the clients' own retries: that can pass.
    """
    refusals: list[KafkaError] = []
    config = client_config(connection)
    # log_level 0: the refusal is reported once, below, not as librdkafka's stream of retries
    with_callback: dict[str, Any] = {**config, "error_cb": refusals.append, "log_level": 0}
    admin = AdminClient(with_callback)
    deadline = time.monotonic() + timeout
    while True:
        try:
            admin.list_topics(timeout=1.0)
            return
        except KafkaException:
            admin.poll(0)  # serves error_cb
        refused = next((e for e in refusals if e.code() in _REFUSALS), None)
        if refused is not None:
            raise TerminalError(
                f"Kafka refused the connection to {config['bootstrap.servers']}: {refused.str()}",
                _REFUSALS[refused.code()],
            )
        if time.monotonic() > deadline:
            return
