"""`cdc assess` of the Kafka cluster: reachable, and the pipeline's topics.

A cluster that refuses cdc or cannot be reached is reported with the
brokers' own reason (a refused SASL login, a certificate from another CA,
plaintext spoken to a TLS listener), as `cdc run` reports it, not with
librdkafka's generic "Broker transport failure"."""

from __future__ import annotations

import socket
import ssl
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient

from cdc.engine.assessment import Assessment
from cdc.errors import TerminalError
from cdc.kafka.connection import check_access
from cdc.settings import Settings

KAFKA_TIMEOUT_S = 10.0


def check_kafka(settings: Settings, report: Assessment) -> None:
    servers = settings.kafka.bootstrap_servers
    errors: list[KafkaError] = []
    config: dict[str, Any] = {**settings.kafka.client_config(), "error_cb": errors.append}
    admin = AdminClient(config)
    try:
        check_access(settings.kafka.client_config(), KAFKA_TIMEOUT_S)
        topics = admin.list_topics(timeout=KAFKA_TIMEOUT_S).topics
    except TerminalError as refused:
        report.add("kafka", "reachable", "blocker", refused.message, refused.remedy)
        return
    except KafkaException as exc:
        admin.poll(0)  # serves error_cb: the reasons behind the timeout
        report.add(
            "kafka",
            "reachable",
            "blocker",
            f"Kafka at {servers} did not answer: {_reason(errors, str(exc.args[0]))}",
            _fix(settings),
        )
        return
    prefix = f"{settings.kafka.topic_prefix}."
    ours = sum(1 for name in topics if name.startswith(prefix))
    report.add(
        "kafka", "reachable", "ok", f"{len(topics)} topics, {ours} of this pipeline ({prefix}*)"
    )


def _reason(errors: list[KafkaError], fallback: str) -> str:
    """The first error that says why, over "all brokers are down"."""
    said = [e for e in errors if e.code() != KafkaError._ALL_BROKERS_DOWN]
    return (said or errors)[0].str() if errors else fallback


def _fix(settings: Settings) -> str:
    # A TLS listener spoken to in plaintext closes the connection without a
    # word, and librdkafka reports only a transport failure.
    if settings.kafka.tls is None and _speaks_tls(settings.kafka.bootstrap_servers):
        return (
            "the brokers speak TLS on this port: set kafka.tls (and kafka.sasl if they ask"
            " for a login), or use their plaintext port in kafka.bootstrap_servers"
        )
    return "check kafka.bootstrap_servers, the brokers, and kafka.tls / kafka.sasl"


def _speaks_tls(servers: str) -> bool:
    """Whether the first broker completes a TLS handshake (its certificate unchecked:
    only the protocol matters here)."""
    host, _, port = servers.split(",", maxsplit=1)[0].rpartition(":")
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with (
            socket.create_connection((host.strip("[]"), int(port)), timeout=3) as raw,
            context.wrap_socket(raw, server_hostname=host.strip("[]")),
        ):
            return True
    except (OSError, ValueError):
        return False
