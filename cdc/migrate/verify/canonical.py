"""An engine-neutral canonical form of rows, so PostgreSQL and MySQL tables
can be compared value by value: numbers normalised, times in UTC, JSON with
sorted keys, bytes as hex.

`cdc verify` hashes rows with `row_hash` where the databases cannot produce
the same text themselves (floats, JSON across engines, intervals), once each
value is in its column pair's form (`verify.forms`); tests and
the demo compare whole tables with `digest` (rows read by each engine's
`verify_sql.table_rows`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, time, timedelta
from decimal import MAX_PREC, Context, Decimal
from typing import Any

# normalize() rounds to its context's precision (28 digits by default): an exact one keeps
# every digit of a numeric, which has up to 131072 before the point
EXACT = Context(prec=MAX_PREC)


def canonical(value: Any) -> Any:
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        return str(value)  # one form for 5, Decimal("5") and Decimal("5.00")
    if isinstance(value, float | Decimal):
        number = Decimal(str(value)) if isinstance(value, float) else value
        return "NaN" if number.is_nan() else format(number.normalize(EXACT), "f")
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        return value.isoformat(timespec="microseconds")
    if isinstance(value, date | time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    if isinstance(value, dict):
        return {str(k): canonical(v) for k, v in sorted(value.items())}
    if isinstance(value, list | tuple):
        return [canonical(v) for v in value]
    if isinstance(value, set | frozenset):
        return sorted(canonical(v) for v in value)
    return str(value)


def canonical_row(row: Sequence[Any]) -> list[Any]:
    """A row's columns in canonical form. A boolean column is 1/0 at this level: MySQL stores
    booleans as TINYINT(1), so true and 1 are the same column value across engines (inside a
    JSON document they stay true/false)."""
    return [("1" if v else "0") if isinstance(v, bool) else canonical(v) for v in row]


def row_text(row: Sequence[Any]) -> str:
    return json.dumps(canonical_row(row), sort_keys=True, ensure_ascii=False)


def row_hash(row: Sequence[Any]) -> int:
    """A 60-bit hash of the canonical row: the first 15 hex digits of its MD5, the same width
    the in-database checksums use, so sums of many rows stay exact integers everywhere."""
    return int(hashlib.md5(row_text(row).encode()).hexdigest()[:15], 16)


def digest(rows: Iterable[Sequence[Any]]) -> tuple[int, str]:
    """Row count and SHA-256 over the canonical rows, whatever order they came
    in (the engines sort text keys by different collations)."""
    lines = sorted(row_text(row) for row in rows)
    sha = hashlib.sha256()
    for line in lines:
        sha.update(line.encode() + b"\n")
    return len(lines), sha.hexdigest()
