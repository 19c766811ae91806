"""The faults the nemesis injects. Each kind starts its fault, holds it, ends it,
and names the pipelines it touched (their recovery is timed after the end).

Processes get real signals; servers are killed and restarted through
dev/services.sh; the network between cdc and each server goes through
toxiproxy; the data faults use the databases and Kafka as a user would.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tests.integration.conftest import services

if TYPE_CHECKING:
    from tests.chaos.nemesis import Nemesis
    from tests.chaos.pipelines import Pipeline

SERVICE = {"pg": "pg", "mysql": "mysql", "kafka": "kafka"}


@dataclass(frozen=True)
class Fault:
    kind: str
    run: Callable[[Nemesis, Pipeline], list[Pipeline]]  # injects, holds, ends; whom it touched
    needs: str = ""  # the source engine the target pipeline must have ("" = any)


def _hold(nemesis: Nemesis, low: float, high: float) -> None:
    time.sleep(nemesis.rng.uniform(low, high))


# -- cdc's processes -------------------------------------------------------------
def _kill9(role: str) -> Callable[[Nemesis, Pipeline], list[Pipeline]]:
    def run(nemesis: Nemesis, pipeline: Pipeline) -> list[Pipeline]:
        pipeline.process(role).kill9()
        _hold(nemesis, 0, 2)  # systemd's RestartSec
        pipeline.start_source() if role == "source" else pipeline.start_sink()
        return [pipeline]

    return run


def _kill9_worker(nemesis: Nemesis, pipeline: Pipeline) -> list[Pipeline]:
    workers = pipeline.worker_pids()
    assert workers, f"{pipeline.label}: the sink has no worker processes"
    os.kill(nemesis.rng.choice(workers), signal.SIGKILL)  # the daemon starts another at once
    return [pipeline]


def _pause(role: str) -> Callable[[Nemesis, Pipeline], list[Pipeline]]:
    def run(nemesis: Nemesis, pipeline: Pipeline) -> list[Pipeline]:
        pids = pipeline.worker_pids()[:1] if role == "worker" else [pipeline.process(role).pid]
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
        _hold(nemesis, 2, 8)
        for pid in pids:
            os.kill(pid, signal.SIGCONT)
        return [pipeline]

    return run


# -- the servers ------------------------------------------------------------------
def _server(server: str, how: str) -> Callable[[Nemesis, Pipeline], list[Pipeline]]:
    def run(nemesis: Nemesis, pipeline: Pipeline) -> list[Pipeline]:
        touched = nemesis.using(server)
        if how == "restart":
            services("restart", SERVICE[server])
            return touched
        services("kill", SERVICE[server])
        if server == "kafka":
            time.sleep(1)  # acknowledgements that were on their way when the broker died
            slots = nemesis.slot_positions()
        _hold(nemesis, 1, 5)
        if server == "kafka":
            # nothing can reach Kafka: no source may confirm a position to its server now
            nemesis.check_slots_held(slots, "while Kafka was down")
        services("start", SERVICE[server])
        if server == "kafka":
            nemesis.wait_kafka_serving()  # the fault ends when the broker serves again
        return touched

    return run


# -- the network -----------------------------------------------------------------
def _network(server: str, toxic: str) -> Callable[[Nemesis, Pipeline], list[Pipeline]]:
    def run(nemesis: Nemesis, pipeline: Pipeline) -> list[Pipeline]:
        proxy = nemesis.proxy
        if toxic == "latency":
            proxy.latency(server, 200, 100)
        elif toxic == "reset":
            proxy.reset_peer(server)
        else:
            proxy.black_hole(server)
        _hold(nemesis, 3, 8)
        proxy.heal(server)
        return nemesis.using(server)

    return run


# -- the data ------------------------------------------------------------------------
def _schema_change(nemesis: Nemesis, pipeline: Pipeline) -> list[Pipeline]:
    writer = nemesis.writers[pipeline.label]
    writer.add_column.set()
    while writer.add_column.is_set() and writer.is_alive():
        time.sleep(0.05)
    return [pipeline]


def _poison(nemesis: Nemesis, pipeline: Pipeline) -> list[Pipeline]:
    nemesis.write_poison(pipeline)
    return [pipeline]


def _long_transaction(nemesis: Nemesis, pipeline: Pipeline) -> list[Pipeline]:
    nemesis.long_transaction(pipeline)  # the writer goes on meanwhile, in its own thread
    return [pipeline]


def _position_lost(nemesis: Nemesis, pipeline: Pipeline) -> list[Pipeline]:
    nemesis.lose_position(pipeline)
    return [pipeline]


FAULTS = (
    Fault("kill9 source", _kill9("source")),
    Fault("kill9 sink", _kill9("sink")),
    Fault("kill9 sink worker", _kill9_worker),
    Fault("sigstop source", _pause("source")),
    Fault("sigstop sink", _pause("sink")),
    Fault("sigstop sink worker", _pause("worker")),
    Fault("kill9 kafka", _server("kafka", "kill")),
    Fault("restart postgresql", _server("pg", "restart")),
    Fault("kill9 postgresql", _server("pg", "kill")),
    Fault("restart mariadb", _server("mysql", "restart")),
    Fault("kill9 mariadb", _server("mysql", "kill")),
    *(
        Fault(f"{toxic} {server}", _network(server, toxic))
        for server in ("pg", "mysql", "kafka")
        for toxic in ("latency", "reset", "black hole")
    ),
    Fault("schema change", _schema_change),
    Fault("poison message", _poison),
    Fault("long transaction", _long_transaction),
    Fault("slot lost", _position_lost, needs="postgres"),
    Fault("binlog purged", _position_lost, needs="mysql"),
)
