"""The nemesis's tables, the same on both engines, and the values written into them.

The values are chosen so that each engine stores exactly what Python sent
(doubles with short binary fractions, decimals of two places, naive
microsecond timestamps), which lets the ledger hold the Python values and
compare them with what either side reads back in one canonical text.
"""

from __future__ import annotations

import json
import random
import string
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from cdc.migrate.verify.canonical import canonical_row

ITEM_COLUMNS = ("id", "qty", "price", "name", "flag", "at", "doc", "raw", "ratio", "body")
LINE_COLUMNS = ("order_id", "line_no", "sku", "amount")
# what the schema-change fault adds (note_1, note_2, ...), with this default for the rows
# already there
NOTE_DEFAULT = "none"


@dataclass(frozen=True)
class Table:
    name: str
    key: tuple[str, ...]
    columns: tuple[str, ...]


ITEMS = Table("items", ("id",), ITEM_COLUMNS)
LINES = Table("lines", ("order_id", "line_no"), LINE_COLUMNS)
PROBES = Table("probes", ("id",), ("id", "at"))
BULK = Table("bulk", ("id",), ("id", "v"))
CAPTURED = (ITEMS, LINES, PROBES, BULK)

PG_DDL = (
    "CREATE TABLE items (id bigint PRIMARY KEY, qty integer NOT NULL, price numeric(12,2),"
    " name varchar(200), flag boolean, at timestamp(6), doc jsonb, raw bytea,"
    " ratio double precision, body text)",
    "CREATE TABLE lines (order_id bigint, line_no integer, sku varchar(40),"
    " amount numeric(12,2), PRIMARY KEY (order_id, line_no))",
    "CREATE TABLE probes (id bigint PRIMARY KEY, at timestamp(6))",
    "CREATE TABLE bulk (id bigint PRIMARY KEY, v integer)",
    # not captured: a transaction's marker, read to settle a commit whose reply was lost
    "CREATE TABLE chaos_marks (tx bigint PRIMARY KEY)",
    # not captured: what the slot-loss fault writes to push WAL past the slot's limit
    "CREATE TABLE chaos_filler (id serial PRIMARY KEY, pad text)",
)
MYSQL_DDL = (
    "CREATE TABLE items (id BIGINT PRIMARY KEY, qty INT NOT NULL, price DECIMAL(12,2),"
    " name VARCHAR(200), flag BOOLEAN, at DATETIME(6), doc JSON, raw LONGBLOB,"
    " ratio DOUBLE, body LONGTEXT)",
    "CREATE TABLE `lines` (order_id BIGINT, line_no INT, sku VARCHAR(40),"
    " amount DECIMAL(12,2), PRIMARY KEY (order_id, line_no))",
    "CREATE TABLE probes (id BIGINT PRIMARY KEY, at DATETIME(6))",
    "CREATE TABLE bulk (id BIGINT PRIMARY KEY, v INT)",
    "CREATE TABLE chaos_marks (tx BIGINT PRIMARY KEY)",
    "CREATE TABLE chaos_filler (id INT AUTO_INCREMENT PRIMARY KEY, pad TEXT)",
)

_NAME_CHARS = string.ascii_letters + string.digits + " 'é✓\\\"%_-"


class Values:
    """Random column values from one seeded generator."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def item(self, key: int) -> dict[str, Any]:
        rng = self.rng
        return {
            "id": key,
            "qty": rng.randint(-(2**31), 2**31 - 1),
            "price": Decimal(rng.randint(-(10**10), 10**10)) / 100,
            "name": "".join(rng.choice(_NAME_CHARS) for _ in range(rng.randint(0, 40))),
            "flag": rng.choice((True, False, None)),
            "at": datetime(2020, 1, 1) + timedelta(microseconds=rng.randint(0, 10**15)),
            "doc": {"n": rng.randint(0, 10**6), "s": rng.choice(("a", "ß", "")), "l": [1, 2]},
            "raw": rng.randbytes(rng.randint(0, 48)),
            "ratio": rng.randint(-(10**9), 10**9) / 1024,
            "body": self.body(),
        }

    def body(self) -> str | None:
        """None, a short text, or one large enough for PostgreSQL to TOAST out of line."""
        roll = self.rng.random()
        if roll < 0.1:
            return None
        size = self.rng.randint(3000, 12000) if roll < 0.4 else self.rng.randint(0, 80)
        return "".join(self.rng.choices(string.ascii_lowercase, k=size))

    def item_change(self) -> dict[str, Any]:
        """An update of some columns; the body (TOASTed) mostly stays as it is."""
        rng = self.rng
        change: dict[str, Any] = {"qty": rng.randint(0, 10**6)}
        if rng.random() < 0.5:
            change["price"] = Decimal(rng.randint(0, 10**8)) / 100
        if rng.random() < 0.2:
            change["body"] = self.body()
        if rng.random() < 0.3:
            change["doc"] = {"n": rng.randint(0, 9), "nested": {"x": [rng.randint(0, 9)]}}
        return change

    def line(self, order_id: int, line_no: int) -> dict[str, Any]:
        return {
            "order_id": order_id,
            "line_no": line_no,
            "sku": f"sku-{self.rng.randint(0, 10**6)}",
            "amount": Decimal(self.rng.randint(0, 10**7)) / 100,
        }

    def note(self) -> str:
        return self.rng.choice(("a", "b", "long note ✓", ""))


def canonical_value(column: str, value: Any) -> Any:
    """The value as both engines' readers agree on it: JSON parsed into a document."""
    if column == "doc" and isinstance(value, str | bytes):
        return json.loads(value)
    return value


def canonical_text(columns: tuple[str, ...], row: dict[str, Any]) -> str:
    """One row's canonical value text (cdc verify's canonical form)."""
    values = [canonical_value(c, row.get(c)) for c in columns]
    return json.dumps(canonical_row(values), sort_keys=True, ensure_ascii=False)
