"""Every Prometheus metric of cdc, defined once (prefix `cdc_`, bounded labels)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

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
ZERO_DATES = Counter(
    "cdc_source_zero_dates",
    "MariaDB zero dates read as NULL (source.zero_dates: null), by table and column",
    ["table", "column"],
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
KAFKA_UNREACHABLE = Counter(
    "cdc_kafka_unreachable",
    "Tries at start that found no broker answering (backed off, up to 30 s apart)",
)
KAFKA_IN_FLIGHT = Gauge(
    "cdc_kafka_messages_in_flight",
    "Messages published but not yet acknowledged by the broker",
)

SINK_ROWS = Counter(
    "cdc_sink_rows_applied",
    "Rows written to the target, by target table and operation (c, u, d, t)",
    ["table", "op"],
)
SINK_BATCH_ROWS = Histogram(
    "cdc_sink_batch_rows",
    "Kafka messages per applied batch",
    buckets=(1, 10, 100, 1_000, 5_000, 10_000, 50_000),
)
SINK_BATCH_SECONDS = Histogram(
    "cdc_sink_batch_seconds",
    "Time to apply one batch in one target transaction",
    buckets=(0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30),
)
SINK_CONFLICTS = Counter(
    "cdc_sink_conflicts",
    "Changes that met a target row not as the source had it, by source table and kind",
    ["table", "kind"],
)
DLQ_EVENTS = Counter(
    "cdc_dlq_events",
    "Events sent to the dead-letter topic, by source table and reason",
    ["table", "reason"],
)
SCHEMA_CHANGES = Counter(
    "cdc_schema_changes_total",
    "Source schema changes the sink met, by table, kind and what it did (apply, ignore)",
    ["table", "kind", "action"],
)
SINK_LAG_SECONDS = Gauge(
    "cdc_sink_lag_seconds",
    "End-to-end lag: now minus the source commit time of the last applied change",
)
SINK_CONSUMER_LAG = Gauge(
    "cdc_sink_consumer_lag_messages",
    "Messages behind the end of each assigned partition",
    ["topic", "partition"],
)
SINK_RECONNECTS = Counter(
    "cdc_sink_reconnects",
    "Times the sink lost its target connection and reconnected",
)
SINK_WORKER_RESTARTS = Counter(
    "cdc_sink_worker_restarts",
    "Sink worker processes (sink.workers > 1) that died from a signal and were started again",
)
# What a sink worker process counts: with sink.workers > 1 the daemon serves them
# summed over its workers (cdc.app.sink_workers).
SINK_METRICS = (
    SINK_ROWS,
    SINK_BATCH_ROWS,
    SINK_BATCH_SECONDS,
    SINK_CONFLICTS,
    DLQ_EVENTS,
    SCHEMA_CHANGES,
    SINK_LAG_SECONDS,
    SINK_CONSUMER_LAG,
    SINK_RECONNECTS,
)

# `cdc verify`: labels are bounded by the pipeline's tables.
VERIFY_CHUNKS = Counter(
    "cdc_verify_chunks",
    "Key ranges whose row count and checksum were compared on both sides, by source table",
    ["table"],
)
VERIFY_ROWS = Counter(
    "cdc_verify_rows",
    "Source rows in the key ranges compared, by source table",
    ["table"],
)
VERIFY_MISMATCHES = Counter(
    "cdc_verify_mismatches",
    "Rows still different once the sink caught up, by source table and kind"
    " (missing, extra, differing)",
    ["table", "kind"],
)
# By pipeline, so that a process that ran no verify (`cdc run`) exports no
# value at all rather than a 0 that reads as "different" and "never".
VERIFY_LAST_EQUAL = Gauge(
    "cdc_verify_last_equal",
    "1 when the last finished verify found source and target equal, else 0",
    ["pipeline"],
)
VERIFY_LAST_FINISHED = Gauge(
    "cdc_verify_last_finished_timestamp_seconds",
    "When the last verify finished (Unix time)",
    ["pipeline"],
)

CUTOVER_PHASE = Gauge(
    "cdc_cutover_phase",
    "1 for the step `cdc cutover`/`cdc rollback` stands at (gates, fenced, drained, counters,"
    " reverse, verified, done, rolled_back), 0 for the others",
    ["step"],
)
CUTOVER_WRITE_UNAVAILABLE = Gauge(
    "cdc_cutover_write_unavailable_seconds",
    "Time applications could not write, from the fence to the end of the cut-over or rollback",
)
