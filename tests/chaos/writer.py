"""A steady write load on one source database, recorded in its ledger.

Each transaction is one to five statements over `items` (many types, a
TOASTed body) and `lines` (a composite key): inserts, updates, deletes and
primary-key changes, plus the marker row that settles a lost COMMIT reply.
The writer connects to the server directly (never through a fault proxy):
it is the application, not cdc. A fault that takes the server away stalls it
until the server is back, as it would an application.
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
from typing import Any

from tests.chaos.databases import DOWN, Database
from tests.chaos.ledger import Ledger, Op
from tests.chaos.tables import NOTE_DEFAULT, Values

SETTLE_DEADLINE_S = 600


class Writer(threading.Thread):
    def __init__(
        self, db: Database, ledger: Ledger, seed: int, rate: float, stop: threading.Event
    ) -> None:
        super().__init__(name=f"writer-{db.name}", daemon=True)
        self.db = db
        self.ledger = ledger
        self.rng = random.Random(seed)
        self.values = Values(self.rng)
        self.interval = 1 / rate
        self.stop = stop
        self.paused = threading.Event()
        self.add_column = threading.Event()  # the schema-change fault asks for ALTER TABLE
        self.failure: BaseException | None = None
        self._tx = seed * 10**9
        self._next_id = seed * 10**9
        self._conn: Any = None

    def run(self) -> None:
        try:
            next_at = time.monotonic()
            while not self.stop.is_set():
                if self.paused.is_set():
                    time.sleep(0.05)
                    continue
                if self.add_column.is_set():
                    self._alter()
                    self.add_column.clear()
                self._transaction(self._plan())
                next_at += self.interval
                time.sleep(max(0.0, next_at - time.monotonic()))
                next_at = max(next_at, time.monotonic() - 1)  # no burst after a stall
        except BaseException as exc:
            self.failure = exc
        finally:
            if self._conn is not None:
                self._conn.close()

    # -- planning --------------------------------------------------------
    def _new_id(self) -> int:
        self._next_id += 1
        return self._next_id

    def _plan(self) -> list[Op]:
        rng = self.rng
        items = self.ledger.keys("items")
        lines = self.ledger.keys("lines")
        ops: list[Op] = []
        taken: set[tuple[str, tuple[Any, ...]]] = set()  # a key once per transaction

        def free(table: str, keys: list[Any]) -> tuple[Any, ...] | None:
            for _ in range(3):
                if keys:
                    key = rng.choice(keys)
                    if (table, key) not in taken:
                        taken.add((table, key))
                        return key  # type: ignore[no-any-return]
            return None

        for _ in range(rng.randint(1, 5)):
            roll = rng.random()
            if roll < 0.3 or len(items) < 20:
                row = self.values.item(self._new_id())
                for column in self.ledger.added_columns:
                    row[column] = self.values.note()
                ops.append(Op("insert", "items", (row["id"],), row))
                taken.add(("items", (row["id"],)))
            elif roll < 0.55 and (key := free("items", items)):
                change = self.values.item_change()
                if self.ledger.added_columns and rng.random() < 0.5:
                    change[rng.choice(self.ledger.added_columns)] = self.values.note()
                ops.append(Op("update", "items", key, change))
            elif roll < 0.62 and (key := free("items", items)):
                ops.append(Op("delete", "items", key))
            elif roll < 0.67 and (key := free("items", items)):
                new = (self._new_id(),)
                ops.append(Op("rekey", "items", key, {"id": new[0]}, new))
                taken.add(("items", new))
            elif roll < 0.8 or len(lines) < 20:
                order = self._new_id()
                for n in range(1, rng.randint(2, 4)):
                    ops.append(Op("insert", "lines", (order, n), self.values.line(order, n)))
            elif roll < 0.9 and (key := free("lines", lines)):
                amount = self.values.line(*key)["amount"]
                ops.append(Op("update", "lines", key, {"amount": amount}))
            elif roll < 0.95 and (key := free("lines", lines)):
                ops.append(Op("delete", "lines", key))
            elif key := free("lines", lines):
                moved = (key[0], key[1] + 1000 + rng.randint(0, 10**6))
                if ("lines", moved) not in taken and moved not in lines:
                    ops.append(Op("rekey", "lines", key, {"line_no": moved[1]}, moved))
                    taken.add(("lines", moved))
        return ops

    # -- executing ---------------------------------------------------------
    def _statement(self, op: Op) -> tuple[str, list[Any]]:
        db = self.db
        table = db.quote(op.table)
        keys = ("id",) if op.table == "items" else ("order_id", "line_no")
        where = " AND ".join(f"{c} = %s" for c in keys)
        if op.kind == "insert":
            columns = list(op.row)
            values = [db.adapt(c, op.row[c]) for c in columns]
            marks = ", ".join(["%s"] * len(columns))
            return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", values
        if op.kind == "delete":
            return f"DELETE FROM {table} WHERE {where}", list(op.key)
        sets = ", ".join(f"{c} = %s" for c in op.row)
        values = [db.adapt(c, v) for c, v in op.row.items()]
        return f"UPDATE {table} SET {sets} WHERE {where}", [*values, *op.key]

    def _transaction(self, ops: list[Op]) -> None:
        self._tx += 1
        try:
            if self._conn is None:
                self._conn = self.db.connect_retrying(SETTLE_DEADLINE_S)
            cur = self._conn.cursor()
            for op in ops:
                statement, params = self._statement(op)
                cur.execute(statement, params)
                if op.kind != "insert" and cur.rowcount != 1:
                    raise AssertionError(f"{op} changed {cur.rowcount} rows on the source")
            cur.execute("INSERT INTO chaos_marks (tx) VALUES (%s)", (self._tx,))
            self._conn.commit()
        except DOWN:
            self._drop_connection()
            if not self._committed(self._tx):
                self.ledger.settled.unknown_rolled_back += 1
                return
            self.ledger.settled.unknown_committed += 1
        else:
            self.ledger.settled.committed += 1
        self.ledger.apply(ops)

    def _drop_connection(self) -> None:
        with contextlib.suppress(Exception):  # it is broken already
            self._conn.close()
        self._conn = None

    def _committed(self, tx: int) -> bool:
        """Whether transaction `tx` committed: its marker is there once the server is back."""
        conn = self.db.connect_retrying(SETTLE_DEADLINE_S, autocommit=True)
        try:
            cur = conn.cursor()
            cur.execute("SELECT 1 FROM chaos_marks WHERE tx = %s", (tx,))
            return cur.fetchone() is not None
        finally:
            conn.close()

    def _alter(self) -> None:
        """ALTER TABLE items ADD COLUMN note_<n>, with a default the existing rows take."""
        column = f"note_{len(self.ledger.added_columns) + 1}"
        statement = f"ALTER TABLE items ADD COLUMN {column} varchar(40) DEFAULT '{NOTE_DEFAULT}'"
        try:
            if self._conn is None:
                self._conn = self.db.connect_retrying(SETTLE_DEADLINE_S)
            self._conn.cursor().execute(statement)
            self._conn.commit()
        except DOWN:
            self._drop_connection()
        if column not in self.db.columns_of("items"):
            self._alter()  # rolled back by the fault: try again
            return
        self.ledger.add_column(column, NOTE_DEFAULT)
