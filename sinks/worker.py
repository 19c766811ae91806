"""The sink worker: consume the pipeline's table topics, apply them in batches.

Resume contract: the target's `cdc_offsets` table is the truth. On every
partition assignment the worker seeks to the offsets stored there
(`Applier.committed_offsets`, read by `cdc.target_offsets`). The offset
commit that counts is not in this module: the worker hands a batch's next
offsets to `Applier.apply`, which writes them in the batch's own target
transaction, with its rows (`sinks.postgres.offsets`, `sinks.mysql.offsets`).
Kafka's committed offsets (`_commit_hint`) are only a hint for monitoring
tools. Replaying from older offsets re-applies changes, and applying a change
twice yields the same rows; a partial update replayed after its row's delete
is told from a missing row's by `sinks.replays`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import psycopg
import pymysql
import structlog
from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)

from cdc import metrics
from cdc.applier import Applier, ApplyResult
from cdc.changes import Change
from cdc.errors import EventError, TerminalError, TransientError
from cdc.events import Op
from cdc.settings import Settings
from cdc.topics import table_topics_pattern
from sinks import inserts
from sinks.change_decoding import decode_change
from sinks.collapse import collapse
from sinks.dead_letters import DeadLetters
from sinks.inserts import DirectInserter
from sinks.membership import SessionFencedError, fatal_error
from sinks.replays import ReplayGuard, message_positions
from sinks.schema_cache import SchemaCache
from sinks.table_barriers import TableBarriers
from transforms.pipeline import Pipeline

log = structlog.get_logger(__name__)

BATCH_MESSAGES = 5000
BATCH_WAIT_S = 0.2  # for a batch's first message; the rest are what is already fetched
# Kafka's committed offsets are a hint for monitoring (the target holds the
# truth): committing them after every batch cost the broker more CPU than
# serving the fetches (1M events: 0.4 s of the broker's 0.6 s).
COMMIT_EVERY_S = 1.0
LEAVE_WAIT_S = 2.0  # for the group to take the partitions back as the sink stops
CONSUMER_DEFAULTS: dict[str, Any] = {
    "enable.auto.commit": False,
    "auto.offset.reset": "earliest",
    # new table topics appear while the pipeline runs: notice them quickly
    "topic.metadata.refresh.interval.ms": 5000,
    "fetch.max.bytes": 52_428_800,
    # A sink process that died hands its partitions to the others after this long
    # (heartbeats run on librdkafka's own thread: a long batch does not expire it).
    "session.timeout.ms": 10_000,
    # A rebalance (a sink process joins or leaves) waits until every member has
    # heard of it through a heartbeat: at the default 3 s, seconds of no apply;
    # at 100 ms sink processes starting together share the partitions within
    # a quarter second (ten small requests a second per process).
    "heartbeat.interval.ms": 100,
    # librdkafka stops fetching while its queue holds queued.max.messages.kbytes
    # and looks again only after fetch.queue.backoff.ms (1 s by default): a sink
    # that applies 64 MB in under a second then waits for Kafka most of the time
    # (1M events: 4.5 s of consume() alone, 0.7 s with these two).
    "fetch.queue.backoff.ms": 10,
    "queued.max.messages.kbytes": 16_384,
}


# A pattern subscription that matches no topic yet, the end of a partition:
# news, not failures.
_INFORMATIONAL = {
    KafkaError.UNKNOWN_TOPIC_OR_PART,
    KafkaError._UNKNOWN_TOPIC,
    KafkaError._PARTITION_EOF,
}


# The target refused a value or a constraint: apply the batch change by change
# and dead-letter the changes it refuses. Two changes of one target row under
# different Kafka keys (a key spelt 1 and "1") meet in one upsert, which
# PostgreSQL refuses as a cardinality violation: one by one they apply in order.
REJECTED = (
    psycopg.DataError,
    psycopg.IntegrityError,
    psycopg.errors.CardinalityViolation,
    pymysql.err.DataError,
    pymysql.err.IntegrityError,
)


class SinkWorker:
    def __init__(
        self,
        settings: Settings,
        applier_factory: Callable[[], Applier],
        group_instance_id: str | None = None,
    ) -> None:
        """`group_instance_id`: the consumer's static member id in the group
        (`cdc.app.sink_loop.group_instance_id`); None: a dynamic member."""
        kafka = settings.kafka
        self._group = settings.consumer_group
        self._prefix = kafka.topic_prefix or settings.name
        self._transforms = Pipeline.from_settings(settings.transforms)
        self._applier_factory = applier_factory
        self._applier = applier_factory()
        self._schemas = SchemaCache(kafka.client_config(), self._prefix)
        self._dead = DeadLetters(
            kafka.client_config(), self._prefix, kafka.replication_factor, kafka.max_message_bytes
        )
        config = {**CONSUMER_DEFAULTS, **kafka.consumer_config(settings.consumer_group)}
        if group_instance_id is not None:
            config["group.instance.id"] = group_instance_id
        self._instance_id = group_instance_id
        self._consumer = Consumer(config)
        self._barriers = TableBarriers(self._consumer, self._prefix, self._renamed_target)
        self._replays = ReplayGuard()
        self._lost_at: float | None = None  # when a session timeout last took the partitions
        self._consumer.subscribe(
            [table_topics_pattern(self._prefix)],
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_lost,
        )
        self._next_commit = 0.0  # of Kafka's offsets (`_commit_hint`)

    # -- assignment -------------------------------------------------------
    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        stored = self._applier.committed_offsets(sorted({p.topic for p in partitions}))
        for partition in partitions:
            partition.offset = stored.get((partition.topic, partition.partition), OFFSET_BEGINNING)
        consumer.assign(partitions)
        # a partition held at a table-wide event is read again from its stored offset
        self._barriers.clear()
        # the deletes remembered may be of partitions now another worker's (a
        # replay this one then fails to tell is dead-lettered, as without it)
        self._replays.clear()
        consumer.resume(partitions)
        # Partitions another sink process took over are its to report now.
        metrics.SINK_CONSUMER_LAG.clear()
        log.info("partitions_assigned", count=len(partitions))

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # a partition held at a table-wide event may not come back: none is sought or
        # resumed while unassigned (librdkafka refuses it); the next assignment reads
        # each from the target's offsets again
        self._barriers.clear()
        self._replays.clear()

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # the session timed out (Kafka unreachable): a fencing may follow (`membership`)
        self._lost_at = time.monotonic()
        self._on_revoke(consumer, partitions)
        log.warning("partitions_lost", count=len(partitions))

    def _rewind(self) -> None:
        """After a failed batch: back to what the target has committed."""
        assigned = self._consumer.assignment()
        stored = self._applier.committed_offsets(sorted({p.topic for p in assigned}))
        for partition in assigned:
            offset = stored.get((partition.topic, partition.partition), OFFSET_BEGINNING)
            self._consumer.seek(TopicPartition(partition.topic, partition.partition, offset))

    # -- the loop ---------------------------------------------------------
    def run_once(self) -> int:
        """Consume and apply one batch; the number of messages it held."""
        self._barriers.settle(self._applier)  # partitions held at an event done since
        messages = []
        for msg in self._batch():
            error = msg.error()
            if error is None:
                messages.append(msg)
            elif error.code() == KafkaError._FATAL:
                raise self._fatal(error)
            elif error.code() not in _INFORMATIONAL:
                raise TransientError(f"consuming: {error.str()}")
        if not messages:
            self._measure_consumer_lag()
            return 0
        started = time.monotonic()
        result = self._insert_directly(messages)
        if result is None:
            changes, offsets, sources = self._decode_all(messages)
            changes, arrived = self._barriers.hold(changes, offsets, sources)
            try:
                result = self._apply(changes, offsets, sources)
            except REJECTED as exc:
                log.warning("batch_failed_applying_one_by_one", error=str(exc))
                result = self._apply_one_by_one(changes, offsets, sources)
            self._barriers.settle(self._applier, arrived)
        self._commit_hint()
        self._record(result, len(messages), time.monotonic() - started)
        return len(messages)

    def _batch(self) -> list[Message]:
        """The next batch, sized by the load: the first message as soon as it comes,
        and every one already fetched behind it. Light traffic applies each change
        at once; a backlog fills batches of BATCH_MESSAGES. (Waiting to fill a batch
        held every change of a steady 5k/s stream for the whole wait.)"""
        first = self._consumer.poll(BATCH_WAIT_S)
        if first is None:
            return []
        return [first, *self._consumer.consume(BATCH_MESSAGES - 1, 0)]

    def _fatal(self, error: KafkaError) -> TerminalError | SessionFencedError:
        """A fatal consumer error: this consumer can no longer be used. The one
        librdkafka raises for a consumer of cdc's settings is fencing."""
        lost = None if self._lost_at is None else time.monotonic() - self._lost_at
        return fatal_error(error, self._group, self._instance_id, lost)

    def _insert_directly(self, messages: list[Message]) -> ApplyResult | None:
        """An insert-only batch straight to the target (`sinks.inserts`); None
        when it takes the planned path."""
        applier = self._applier
        if self._transforms or self._barriers.holding or not isinstance(applier, DirectInserter):
            return None
        scanned = inserts.scan(messages, self._schemas)
        return None if scanned is None else applier.insert(*scanned)

    def _apply(
        self,
        changes: list[Change],
        offsets: dict[tuple[str, int], int],
        sources: dict[int, Message],
    ) -> ApplyResult:
        def before_commit(result: ApplyResult) -> None:
            for change, reason in result.dead:
                table = f"{change.schema.schema}.{change.schema.table}"
                self._dead.send(sources[id(change)], table, reason.split(":")[0], reason)
            self._dead.flush()

        steps = list(collapse(changes))
        position_of = message_positions(changes, sources)
        self._replays.mark(steps, position_of)
        result = self._applier.apply(steps, offsets, before_commit)
        self._replays.record(steps, position_of)
        return result

    def _apply_one_by_one(
        self,
        changes: list[Change],
        offsets: dict[tuple[str, int], int],
        sources: dict[int, Message],
    ) -> ApplyResult:
        """Find the changes the target refuses (bad value, constraint) and
        dead-letter them; the others apply in order."""
        total = ApplyResult()
        for change in changes:
            position = {(change.topic, change.partition): change.offset + 1}
            try:
                result = self._apply([change], position, sources)
            except REJECTED as exc:
                table = f"{change.schema.schema}.{change.schema.table}"
                self._dead.send(sources[id(change)], table, "apply", str(exc).strip())
                self._dead.flush()
                result = self._apply([], position, sources)
            total.rows.update(result.rows)
            total.conflicts.update(result.conflicts)
        self._apply([], offsets, sources)  # tombstones and dead letters: past them too
        return total

    def _decode_all(
        self, messages: list[Message]
    ) -> tuple[list[Change], dict[tuple[str, int], int], dict[int, Message]]:
        """The batch's changes, the next offset of every partition it read,
        and each change's message (for dead letters)."""
        offsets: dict[tuple[str, int], int] = {}
        changes: list[Change] = []
        sources: dict[int, Message] = {}
        transforms = self._transforms if self._transforms else None
        for msg in messages:
            topic, partition, offset = msg.topic() or "", msg.partition() or 0, msg.offset() or 0
            offsets[(topic, partition)] = offset + 1
            value = msg.value()
            if value is None:
                continue  # a tombstone: its delete came just before it
            change: Change | None = None
            try:
                change = decode_change(
                    msg.headers(), msg.key(), value, self._schemas.get, (topic, partition, offset)
                )
                if change.op is Op.RENAME:  # a table-wide event carries no row to transform
                    after = change.after or {}
                    change.renamed_to, change.after = (after["schema"], after["table"]), None
                if transforms is not None:
                    change = transforms.apply(change)
            except EventError as exc:
                # a message that does not decode has no table yet: its topic stands in
                table = topic if change is None else f"{change.schema.schema}.{change.schema.table}"
                self._dead.send(msg, table, exc.reason, str(exc))
                continue
            if change is None:
                continue  # filtered out; its offset above still moves past it
            changes.append(change)
            sources[id(change)] = msg
        return changes, offsets, sources

    def _renamed_target(self, rename: Change) -> tuple[str, str]:
        """Where the rows under a renamed table's new name land: that name, as
        the transforms (`rename_table`) map it."""
        assert rename.renamed_to is not None
        new = rename.renamed_to
        schema = replace(rename.schema, schema=new[0], table=new[1])
        probe = Change(Op.RENAME, schema, new, None, None, None, (), rename.ts_ms, "", 0, 0)
        mapped = self._transforms.apply(probe) if self._transforms else probe
        return new if mapped is None else mapped.target

    def _record(self, result: ApplyResult, messages: int, seconds: float) -> None:
        metrics.SINK_BATCH_ROWS.observe(messages)
        metrics.SINK_BATCH_SECONDS.observe(seconds)
        for (table, op), count in result.rows.items():
            metrics.SINK_ROWS.labels(table=table, op=op).inc(count)
        for (table, kind), count in result.conflicts.items():
            metrics.SINK_CONFLICTS.labels(table=table, kind=kind).inc(count)
        for table, kind, key in result.conflict_keys:
            log.info("conflict", table=table, kind=kind, key=list(key))
        if result.last_ts_ms:
            metrics.SINK_LAG_SECONDS.set(max(0.0, time.time() - result.last_ts_ms / 1000))
        self._measure_consumer_lag()

    def _measure_consumer_lag(self) -> None:
        """Messages behind each partition's end, from the positions and the
        watermarks the last fetches brought: local calls, cheap per batch. A
        sink at the end of every partition has no lag in seconds either: the
        last change's age would otherwise stand while the pipeline is idle."""
        behind = 0
        for partition in self._consumer.position(self._consumer.assignment()):
            if partition.offset < 0:
                continue  # nothing consumed yet: no position to measure from
            _, high = self._consumer.get_watermark_offsets(partition, cached=True)
            if high >= 0:
                left = max(0, high - partition.offset)
                behind += left
                metrics.SINK_CONSUMER_LAG.labels(
                    topic=partition.topic, partition=str(partition.partition)
                ).set(left)
        if not behind:
            metrics.SINK_LAG_SECONDS.set(0.0)

    def reconnect(self) -> None:
        """A new target connection, and back to its committed offsets."""
        try:
            self._applier.close()
        except Exception as exc:
            log.warning("target_close_failed", error=str(exc))
        self._applier = self._applier_factory()
        self._rewind()

    def _commit_hint(self) -> None:
        now = time.monotonic()
        if now >= self._next_commit:
            self._consumer.commit(asynchronous=True)
            self._next_commit = now + COMMIT_EVERY_S

    def _leave(self) -> None:
        """Leave the consumer group: a static member does on unsubscribe, not on close.
        Its partitions go to the other sinks at once, and `cdc replay` and `cdc dlq`
        see the group empty. (A sink that dies cannot: its successor takes its place.)"""
        try:
            self._consumer.unsubscribe()
            # the revocation is served by a poll, and the leave follows it; what the
            # poll still returns is not applied (the target's offsets stand)
            deadline = time.monotonic() + LEAVE_WAIT_S
            while self._consumer.assignment() and time.monotonic() < deadline:
                self._consumer.consume(BATCH_MESSAGES, 0.05)
        except KafkaException as exc:  # fenced: its successor holds the member
            log.info("kafka_leave_skipped", error=str(exc))

    def close(self) -> None:
        try:
            # the last positions, for monitoring; close() sends it (and a broker
            # that is gone cannot hold up the shutdown, as a synchronous commit would)
            self._consumer.commit(asynchronous=True)
        except KafkaException as exc:  # nothing consumed yet: only a hint anyway
            log.info("kafka_commit_skipped", error=str(exc))
        self._leave()
        self._consumer.close()
        self._schemas.close()
        self._applier.close()
