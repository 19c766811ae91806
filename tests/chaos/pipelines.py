"""One pipeline of the nemesis: a source and a target database, and cdc running
as separate `--role source` and `--role sink` processes (`sink.workers: 2`),
as in production. cdc reaches every server through the fault proxies.
"""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import yaml

from tests.chaos.databases import Database
from tests.chaos.tables import CAPTURED
from tests.integration.daemon_process import DaemonProcess

PARTITIONS = 3
WORKERS = 2


@dataclass
class Pipeline:
    label: str  # mysql->pg, pg->pg, pg->mysql
    base_name: str
    source: Database
    target: Database
    source_via: str  # the source DSN through its proxy
    target_via: str
    bootstrap: str  # Kafka through its proxy
    workdir: Path
    generation: int = 0  # a new one after the remedy for a lost position
    source_proc: DaemonProcess | None = None
    sink_proc: DaemonProcess | None = None
    exits: list[str] = field(default_factory=list)  # unexpected exits, with their log tail

    @property
    def name(self) -> str:
        return self.base_name if self.generation == 0 else f"{self.base_name}_g{self.generation}"

    @property
    def slot(self) -> str:
        return self.name  # the PostgreSQL source's default slot name

    @property
    def schema(self) -> str:
        """The source tables' schema (a MariaDB source: its database)."""
        return "public" if self.source.engine == "postgres" else self.source.name

    def tables(self) -> list[str]:
        return [f"{self.schema}.{t.name}" for t in CAPTURED]

    def config(self) -> Path:
        settings: dict[str, Any] = {
            "name": self.name,
            "source": {"type": self.source.engine, "dsn": self.source_via, "tables": self.tables()},
            "kafka": {"bootstrap_servers": self.bootstrap, "partitions": PARTITIONS},
            "target": {"type": self.target.engine, "dsn": self.target_via, "create_tables": True},
            "sink": {"workers": WORKERS},
            "metrics": {"listen": "127.0.0.1:0"},
            "snapshot": {"chunk_rows": 5000},
        }
        if self.source.engine == "mysql":
            settings["source"]["server_id"] = 4_100_000 + self.generation
        path = self.workdir / f"{self.name}.yaml"
        path.write_text(yaml.safe_dump(settings))
        return path

    # -- processes -------------------------------------------------------
    def start(self) -> None:
        self.start_source()
        self.start_sink()

    def start_source(self) -> None:
        self.source_proc = DaemonProcess(
            self.config(), self.workdir / f"{self.name}.source.log", "source"
        )

    def start_sink(self) -> None:
        self.sink_proc = DaemonProcess(
            self.config(), self.workdir / f"{self.name}.sink.log", "sink"
        )

    def process(self, role: str) -> DaemonProcess:
        proc = self.source_proc if role == "source" else self.sink_proc
        assert proc is not None, f"the {role} of {self.label} is not running"
        return proc

    def worker_pids(self) -> list[int]:
        """The sink's worker processes (children of the sink daemon)."""
        pid = self.process("sink").pid
        try:
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        except OSError:
            return []
        found = []
        for child in children:
            try:
                cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
            except OSError:
                continue
            if b"multiprocessing" in cmdline and b"resource_tracker" not in cmdline:
                found.append(int(child))
        return found

    def check_alive(self) -> None:
        """Record (and restart, as systemd would) a cdc process that exited on its own."""
        for role in ("source", "sink"):
            proc = self.process(role)
            if not proc.alive():
                self.exits.append(
                    f"{self.label} {role} exited {proc.proc.returncode}:\n{proc.log_tail(3000)}"
                )
                proc.stop()
                self.start_source() if role == "source" else self.start_sink()

    def signal(self, role: str, signum: signal.Signals) -> None:
        os.kill(self.process(role).pid, signum)

    def kill9_and_restart(self, role: str) -> None:
        self.process(role).kill9()
        self.start_source() if role == "source" else self.start_sink()

    def stop(self) -> None:
        for proc in (self.source_proc, self.sink_proc):
            if proc is not None:
                if proc.alive():
                    os.kill(proc.pid, signal.SIGCONT)  # a stopped process cannot drain
                proc.stop(60)

    # -- the remedy for a lost position -------------------------------------
    def start_over(self) -> None:
        """What cdc's stop message tells the operator when the slot or the binlog is gone:
        take a new snapshot under a new pipeline name, into emptied target tables (a
        snapshot upserts: rows deleted while the position was lost would stay)."""
        self.stop()
        if self.source.engine == "postgres":
            with psycopg.connect(self.source.dsn, autocommit=True) as conn:
                conn.execute(
                    "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots"
                    " WHERE slot_name = %s",
                    (self.slot,),
                )
        for table in CAPTURED:
            self.target.empty(table.name)
        self.generation += 1
        self.start()
