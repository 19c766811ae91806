"""What `cdc dlq` wires together for one pipeline: its Kafka topics, the
decisions on its target, and, to apply or move anything, the target's
applier (the sink's own: `cdc.app.appliers`). See `sinks.dlq`."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType

from confluent_kafka import Consumer

from cdc.app.appliers import build_applier
from cdc.applier import Applier
from cdc.settings import PostgresTarget, Settings
from cdc.topics import dead_letter_topic
from sinks.dead_letters import DeadLetters
from sinks.dlq import supersede
from sinks.dlq.decisions import PENDING, REDRIVEN, SKIPPED, SUPERSEDED, Decision, DecisionStore
from sinks.dlq.letters import DeadLetter, read_dead_letters, with_decisions
from sinks.dlq.redrive import NotAppliedError, Redriver
from sinks.dlq.skip_offset import Skipped, skip_head
from sinks.mysql.dlq_decisions import MysqlDecisions
from sinks.postgres.dlq_decisions import PostgresDecisions
from sinks.replay import Replay
from sinks.schema_cache import SchemaCache
from transforms.pipeline import Pipeline

# what a redrive did with one dead letter (besides the decided states)
REFUSED = "refused"  # the target refused it again: pending
KEPT = "kept"  # cannot tell whether it is stale: pending


@dataclass(frozen=True)
class Outcome:
    letter: DeadLetter
    result: str  # REDRIVEN, SUPERSEDED, SKIPPED, REFUSED or KEPT
    detail: str


def decision_store(settings: Settings) -> DecisionStore:
    target = settings.target
    assert target is not None
    if isinstance(target, PostgresTarget):
        return PostgresDecisions(target.dsn.get_secret_value(), settings.consumer_group)
    return MysqlDecisions(target.dsn, settings.consumer_group)


class DlqSession:
    """The pipeline's dead letters and what they need, opened as used and
    closed together."""

    def __init__(self, settings: Settings) -> None:
        assert settings.target is not None
        self.settings = settings
        self.prefix = settings.kafka.topic_prefix or settings.name
        self.topic = dead_letter_topic(self.prefix)
        self.kafka = Replay(settings)
        self._consumer: Consumer | None = None
        self._store: DecisionStore | None = None
        self._applier: Applier | None = None

    def __enter__(self) -> DlqSession:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        for close in (
            self.kafka.close,
            self._consumer.close if self._consumer else None,
            self._store.close if self._store else None,
            self._applier.close if self._applier else None,
        ):
            if close is not None:
                close()

    @property
    def consumer(self) -> Consumer:
        """A reader of any partition, in no consumer group of the sink's."""
        if self._consumer is None:
            kafka = self.settings.kafka
            self._consumer = Consumer(
                {
                    **kafka.consumer_config(
                        f"{self.settings.consumer_group}-dlq-{uuid.uuid4().hex}"
                    ),
                    "enable.auto.commit": False,
                    "enable.partition.eof": True,
                    "auto.offset.reset": "earliest",
                }
            )
        return self._consumer

    @property
    def store(self) -> DecisionStore:
        if self._store is None:
            self._store = decision_store(self.settings)
        return self._store

    @property
    def applier(self) -> Applier:
        if self._applier is None:
            self._applier = build_applier(self.settings)
        return self._applier

    def letters(self) -> list[DeadLetter]:
        """Every dead letter, oldest first, with what was decided on it."""
        letters = with_decisions(read_dead_letters(self.consumer, self.topic), self.store.load())
        for letter in letters:
            if letter.table == letter.origin[0]:  # it did not decode: the sink named its topic
                letter.table = self.table_of(letter.table)
        return letters

    def table_of(self, topic: str) -> str:
        """schema.table of one of the pipeline's table topics."""
        mark = self.prefix + "."
        return topic[len(mark) :] if topic.startswith(mark) else topic

    def known_tables(self) -> list[str]:
        """schema.table of each table topic of the pipeline."""
        return sorted({self.table_of(t) for t, _ in self.kafka.partitions()})

    def sink_members(self) -> int | None:
        return self.kafka.active_members()

    def skip(self, letters: Sequence[DeadLetter], detail: str) -> None:
        self.store.record([d for letter in letters for d in _decided(letter, SKIPPED, detail)])

    def redrive(self, letters: Sequence[DeadLetter]) -> list[Outcome]:
        """Apply the pending dead letters that no later change of their row
        has overtaken (`sinks.dlq.supersede`), oldest first, each in its own
        target transaction; record what was done with each as it is done."""
        partitions = sorted({(letter.origin[0], letter.origin[1]) for letter in letters})
        held = set(self.kafka.partitions())
        earliest = {
            key: low
            for key, (low, _) in self.kafka.watermarks([p for p in partitions if p in held]).items()
        }
        stored = self.applier.committed_offsets(sorted({t for t, _ in partitions}))
        verdicts = supersede.verdicts(self.consumer, letters, stored, earliest)
        schemas = SchemaCache(self.settings.kafka.client_config(), self.prefix)
        redriver = Redriver(self.applier, schemas, Pipeline.from_settings(self.settings.transforms))
        outcomes = []
        try:
            for letter in sorted(letters, key=lambda one: one.id):
                assert letter.state == PENDING
                verdict = verdicts[letter.id]
                if verdict.unknown:
                    outcomes.append(Outcome(letter, KEPT, verdict.detail))
                    continue
                if not verdict.redrive:
                    outcome = Outcome(letter, SUPERSEDED, verdict.detail)
                else:
                    try:
                        applied = redriver.apply(letter)
                    except NotAppliedError as exc:
                        outcomes.append(Outcome(letter, REFUSED, str(exc)))
                        continue
                    if applied.dropped:
                        outcome = Outcome(letter, SKIPPED, "the pipeline's transforms drop it")
                    else:
                        outcome = Outcome(letter, REDRIVEN, _applied(applied.rows))
                self.store.record(_decided(letter, outcome.result, outcome.detail))
                outcomes.append(outcome)
        finally:
            schemas.close()
        return outcomes

    def skip_offset(self, topic: str, partition: int, offset: int) -> Skipped:
        kafka = self.settings.kafka
        dead = DeadLetters(
            kafka.client_config(), self.prefix, kafka.replication_factor, kafka.max_message_bytes
        )
        return skip_head(
            self.kafka, self.consumer, self.applier, dead, (topic, partition, offset), self.table_of
        )


def _applied(rows: int) -> str:
    if rows == 0:
        return "applied: the conflict policy kept the target's row"
    return f"applied: {rows} row{'s' if rows > 1 else ''} written"


def _decided(letter: DeadLetter, state: str, detail: str) -> list[Decision]:
    """The decision, for the dead letter and every copy of it."""
    return [Decision(i, letter.origin, state, detail) for i in letter.ids]
