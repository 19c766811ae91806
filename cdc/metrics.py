"""Every Prometheus metric of cdc, defined once (prefix `cdc_`, bounded labels)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

EVENTS_PUBLISHED = Counter(
    "cdc_source_events_published_total",
    "Change events handed to the Kafka producer, by operation",
    ["op"],
)
KAFKA_DELIVERED = Counter(
    "cdc_kafka_messages_delivered_total",
    "Messages the broker acknowledged (acks=all)",
)
KAFKA_DELIVERY_ERRORS = Counter(
    "cdc_kafka_delivery_errors_total",
    "Messages the producer gave up on; the source then restarts from its acknowledged position",
)
KAFKA_IN_FLIGHT = Gauge(
    "cdc_kafka_messages_in_flight",
    "Messages published but not yet acknowledged by the broker",
)
