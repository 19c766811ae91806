"""The nemesis: three pipelines under a steady write load, faults drawn by a
seed one after another, a probe timed after each, and at the end every row
compared between the ledger, the source and the target.

`CHAOS_SEED` and `CHAOS_FAULTS` choose the run; the first faults of a run are
every kind once, in the seed's order, so a run of `len(FAULTS)` faults or more
sees them all.
"""

from __future__ import annotations

import random
import secrets
import statistics
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

from cdc.topics import dead_letter_topic, table_topic
from tests.chaos import positions
from tests.chaos.compare import Difference, compare
from tests.chaos.databases import DOWN
from tests.chaos.faults import FAULTS, Fault
from tests.chaos.ledger import Ledger
from tests.chaos.pipelines import Pipeline
from tests.chaos.probes import time_probes
from tests.chaos.proxy import ChaosProxies
from tests.chaos.setup import create_databases, drop_databases
from tests.chaos.writer import Writer
from tests.integration.kafka_serving import Serving

RATE_TX_S = 40.0  # each writer's transactions per second
CONVERGE_S = 300.0
STABLE_S = 30.0


@dataclass
class Outcome:
    kind: str
    pipeline: str  # the pipeline drawn for it
    recovery: dict[str, float | None]  # seconds from the fault's end to the probe on the target
    number: int = 0  # in the run (0: the start and end probes)
    at: str = ""  # when the fault began, UTC, as the run's progress lines and logs say it


@dataclass
class Nemesis:
    seed: int
    faults: int
    workdir: Path
    env: dict[str, str]
    long_rows: int = 1_000_000
    labels: tuple[str, ...] = ("mysql->pg", "pg->pg", "pg->mysql")
    rng: random.Random = field(init=False)
    pipelines: list[Pipeline] = field(default_factory=list)
    ledgers: dict[str, Ledger] = field(default_factory=dict)
    writers: dict[str, Writer] = field(default_factory=dict)
    outcomes: list[Outcome] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # what the run itself saw go wrong
    poisoned: dict[str, int] = field(default_factory=dict)
    slot_checks: int = 0
    stop: threading.Event = field(default_factory=threading.Event)
    _bulk_next: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.suffix = secrets.token_hex(3)
        self.proxy = ChaosProxies.start(self.env, self.workdir)

    # -- the run --------------------------------------------------------------
    def schedule(self) -> list[tuple[Fault, Pipeline]]:
        kinds = [f for f in FAULTS if any(self._fits(f, p) for p in self.pipelines)]
        self.rng.shuffle(kinds)
        drawn = kinds[: self.faults]
        drawn += [self.rng.choice(kinds) for _ in range(self.faults - len(drawn))]
        return [
            (f, self.rng.choice([p for p in self.pipelines if self._fits(f, p)])) for f in drawn
        ]

    @staticmethod
    def _fits(fault: Fault, pipeline: Pipeline) -> bool:
        return not fault.needs or pipeline.source.engine == fault.needs

    def start(self) -> None:
        self.pipelines = create_databases(self)
        for i, pipeline in enumerate(self.pipelines):
            ledger = self.ledgers[pipeline.label] = Ledger()
            writer = Writer(pipeline.source, ledger, self.seed * 10 + i + 1, RATE_TX_S, self.stop)
            self.writers[pipeline.label] = writer
            writer.start()
            pipeline.start()
        self._probe("start")

    def run(self) -> None:
        for number, (fault, pipeline) in enumerate(self.schedule(), 1):
            now = time.strftime("%H:%M:%S", time.gmtime())
            print(
                f"[chaos] {now} {number}/{self.faults} {fault.kind} on {pipeline.label}", flush=True
            )
            touched = fault.run(self, pipeline)
            self._probe(fault.kind, pipeline, touched, number, now)
            self._check_health()

    def _probe(
        self,
        kind: str,
        drawn: Pipeline | None = None,
        touched: list[Pipeline] | None = None,
        number: int = 0,
        at: str = "",
    ) -> None:
        ended = time.monotonic()
        pairs = [
            (p.label, p.source, self.ledgers[p.label], p.target)
            for p in (touched if touched is not None else self.pipelines)
        ]
        recovery = time_probes(pairs, ended, self._check_health)
        self.outcomes.append(Outcome(kind, drawn.label if drawn else "-", recovery, number, at))
        for label, seconds in recovery.items():
            if seconds is None:
                self.problems.append(f"after {kind}: {label} did not deliver a probe row")

    def _check_health(self) -> None:
        for pipeline in self.pipelines:
            before = len(pipeline.exits)
            pipeline.check_alive()
            self.problems += pipeline.exits[before:]
        for label, writer in self.writers.items():
            if not writer.is_alive() and not self.stop.is_set():
                raise AssertionError(f"the writer of {label} failed: {writer.failure!r}")

    def finish(self) -> dict[str, tuple[Difference, Difference]]:
        """Stop writing, let every target catch up, compare: {label: (source, target)}."""
        self.stop.set()
        for writer in self.writers.values():
            writer.join(60)
        self._probe("end")
        found: dict[str, tuple[Difference, Difference]] = {}
        for pipeline in self.pipelines:
            ledger = self.ledgers[pipeline.label]
            deadline = time.monotonic() + CONVERGE_S
            target = compare(ledger, pipeline.target)
            same = 0  # a difference that stays the same for STABLE_S is not catching up
            while not target.clean and time.monotonic() < deadline and same < STABLE_S / 5:
                time.sleep(5)
                previous, target = target, compare(ledger, pipeline.target)
                same = same + 1 if target.summary() == previous.summary() else 0
            found[pipeline.label] = (compare(ledger, pipeline.source), target)
        return found

    def close(self) -> None:
        self.stop.set()
        try:
            for pipeline in self.pipelines:
                pipeline.stop()
        finally:
            self.proxy.close()
            drop_databases(self)

    # -- what the faults ask of the run ------------------------------------------
    def using(self, server: str) -> list[Pipeline]:
        """The pipelines a fault of `server` (pg, mysql, kafka) reaches."""
        if server == "kafka":
            return list(self.pipelines)
        engine = "postgres" if server == "pg" else "mysql"
        return [p for p in self.pipelines if engine in (p.source.engine, p.target.engine)]

    def slot_positions(self) -> dict[str, int]:
        return positions.confirmed(
            self.env["CDC_PG_DSN"],
            [p.slot for p in self.pipelines if p.source.engine == "postgres"],
        )

    def check_slots_held(self, before: dict[str, int], when: str) -> None:
        self.slot_checks += 1
        after = self.slot_positions()
        for slot, lsn in before.items():
            if after.get(slot, lsn) > lsn:
                self.problems.append(
                    f"slot {slot} confirmed {after[slot]:X} past {lsn:X} {when}: a position"
                    " released ahead of Kafka"
                )

    def wait_kafka_serving(self) -> None:
        """Until the restarted broker leads every pipeline's partitions and answers for
        their groups (its own start-up, which cdc cannot shorten, is not recovery)."""
        topics = [table_topic(p.name, p.schema, "items") for p in self.pipelines]
        serving = Serving(self.env["CDC_KAFKA_BOOTSTRAP"], topics, [p.name for p in self.pipelines])
        serving.join(90)
        if serving.at is None:
            self.problems.append("the restarted broker did not serve within 90 s")

    def write_poison(self, pipeline: Pipeline) -> None:
        """A message no sink can read, in the pipeline's `items` topic."""
        producer = Producer({"bootstrap.servers": self.env["CDC_KAFKA_BOOTSTRAP"]})
        topic = table_topic(pipeline.name, pipeline.schema, "items")
        producer.produce(topic, key=b'{"id": -1}', value=b'{"op": "c", "after": ')
        if producer.flush(30) != 0:
            raise AssertionError(f"the poison message did not reach {topic}")
        self.poisoned[pipeline.label] = self.poisoned.get(pipeline.label, 0) + 1

    def dead_letters(self, pipeline: Pipeline) -> int:
        consumer = Consumer(
            {
                "bootstrap.servers": self.env["CDC_KAFKA_BOOTSTRAP"],
                "group.id": f"chaos-{self.suffix}",
            }
        )
        total = 0
        try:
            for generation in range(pipeline.generation + 1):
                name = (
                    pipeline.base_name if generation == 0 else f"{pipeline.base_name}_g{generation}"
                )
                topic = dead_letter_topic(name)
                metadata = consumer.list_topics(topic, timeout=10).topics.get(topic)
                if metadata is None or metadata.error is not None:
                    continue
                for partition in metadata.partitions:
                    try:
                        low, high = consumer.get_watermark_offsets(
                            TopicPartition(topic, partition), timeout=10
                        )
                    except KafkaException:
                        continue
                    total += high - low
        finally:
            consumer.close()
        return total

    def long_transaction(self, pipeline: Pipeline) -> None:
        """`long_rows` rows in one transaction while the writer goes on."""
        first = self._bulk_next.get(pipeline.label, 1)
        last = first + self.long_rows - 1
        self._bulk_next[pipeline.label] = last + 1
        db = pipeline.source
        select = (
            f"SELECT g, g % 1000 FROM generate_series({first}, {last}) g"
            if db.engine == "postgres"
            else f"SELECT seq, seq % 1000 FROM seq_{first}_to_{last}"
        )
        marker = -first  # the writers' markers are positive
        conn = db.connect_retrying()
        try:
            cur = conn.cursor()
            cur.execute(f"INSERT INTO bulk (id, v) {select}")
            cur.execute("INSERT INTO chaos_marks (tx) VALUES (%s)", (marker,))
            conn.commit()
        except DOWN:
            if not positions.marked(db, marker):
                return
        finally:
            conn.close()
        ledger = self.ledgers[pipeline.label]
        with ledger.lock:
            ledger.bulk_ranges.append((first, last))

    def lose_position(self, pipeline: Pipeline) -> None:
        """Keep the source down until its server drops its position; the source must then
        stop with the remedy, which the run carries out."""
        pipeline.process("source").stop()
        if pipeline.source.engine == "postgres":
            positions.invalidate_slot(self.env["CDC_PG_DSN"], pipeline.source, pipeline.slot)
        else:
            positions.purge_binlogs(self.env["CDC_MYSQL_DSN"])
        pipeline.start_source()
        source = pipeline.process("source")
        deadline = time.monotonic() + 120
        while source.alive() and time.monotonic() < deadline:
            time.sleep(0.2)
        if source.alive():
            self.problems.append(f"{pipeline.label}: the source went on without its position")
        elif source.proc.returncode != 1 or "new snapshot" not in source.log_tail(20_000):
            self.problems.append(
                f"{pipeline.label}: the source stopped without the remedy "
                f"(exit {source.proc.returncode}):\n{source.log_tail(2000)}"
            )
        pipeline.start_over()

    # -- the self-test ----------------------------------------------------------
    def plant(self) -> None:
        """One lost and one changed row on the first pipeline's target: the check must
        find both (a suite that cannot fail proves nothing)."""
        pipeline = self.pipelines[0]
        keys = sorted(self.ledgers[pipeline.label].keys("lines"))
        conn = pipeline.target.connect_retrying(autocommit=True)
        try:
            cur = conn.cursor()
            table = pipeline.target.table("lines")
            cur.execute(f"DELETE FROM {table} WHERE order_id = %s AND line_no = %s", keys[0])
            cur.execute(
                f"UPDATE {table} SET amount = amount + 1 WHERE order_id = %s AND line_no = %s",
                keys[1],
            )
        finally:
            conn.close()

    def recovery_by_kind(self) -> dict[str, tuple[float, float, int]]:
        """{kind: (median s, max s, probes)} over the pipelines each fault touched."""
        times: dict[str, list[float]] = {}
        for outcome in self.outcomes:
            times.setdefault(outcome.kind, []).extend(
                s for s in outcome.recovery.values() if s is not None
            )
        return {kind: (statistics.median(v), max(v), len(v)) for kind, v in times.items() if v}
