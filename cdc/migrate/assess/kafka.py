"""`cdc assess` of the Kafka cluster: reachable, and the pipeline's topics."""

from __future__ import annotations

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from cdc.engine.assessment import Assessment
from cdc.settings import Settings

KAFKA_TIMEOUT_S = 10.0


def check_kafka(settings: Settings, report: Assessment) -> None:
    try:
        admin = AdminClient(settings.kafka.producer_config())
        topics = admin.list_topics(timeout=KAFKA_TIMEOUT_S).topics
    except KafkaException as exc:
        report.add(
            "kafka",
            "reachable",
            "blocker",
            f"Kafka at {settings.kafka.bootstrap_servers} did not answer: {exc.args[0]}",
            "check kafka.bootstrap_servers, the brokers, and kafka.tls / kafka.sasl",
        )
        return
    prefix = f"{settings.kafka.topic_prefix}."
    ours = sum(1 for name in topics if name.startswith(prefix))
    report.add(
        "kafka", "reachable", "ok", f"{len(topics)} topics, {ours} of this pipeline ({prefix}*)"
    )
