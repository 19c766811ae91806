"""Every Prometheus metric of cdc, defined once (prefix `cdc_`, bounded labels)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

# Labels are bounded: tables come from the pipeline's configuration.
SOURCE_EVENTS = Counter(
    "cdc_source_events",
    "Change events handed to the Kafka producer, by table (schema.table) and operation",
    ["table", "op"],
)
SOURCE_LAG_BYTES = Gauge(
    "cdc_source_lag_bytes",
    "Source WAL not yet confirmed as in Kafka (PostgreSQL: current LSN - slot confirmed flush)",
)
SOURCE_LAG_SECONDS = Gauge(
    "cdc_source_lag_seconds",
    "Now minus the source commit time of the last transaction acknowledged by Kafka",
)
SOURCE_RECONNECTS = Counter(
    "cdc_source_reconnects",
    "Times the source lost its database connection and reconnected",
)
SNAPSHOT_ROWS = Counter(
    "cdc_snapshot_rows",
    "Rows read by the initial snapshot, by table",
    ["table"],
)
SNAPSHOT_RANGES_LEFT = Gauge(
    "cdc_snapshot_ranges_remaining",
    "Key ranges of the initial snapshot not yet in Kafka",
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
