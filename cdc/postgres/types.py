"""Text-format column values of PostgreSQL to Python values, by type OID.

pgoutput and `COPY ... TO STDOUT` both send values in their text output form,
so the stream and the snapshot share these converters. The common types take
a direct path (int(b"42") is several times cheaper than a generic loader);
everything else goes through psycopg's own loader for the OID.

The sessions that produce the text (walsender, snapshot readers) run with
the settings in `SESSION_OPTIONS`, which the converters rely on.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import orjson
import psycopg
from psycopg.adapt import Transformer
from psycopg.pq import Format

Converter = Callable[[bytes], Any]

# ISO dates, UTC, and ISO-8601 intervals: intervals then pass through as the
# exact duration text ("P1Y2M3DT4H"); psycopg would turn months into days.
SESSION_OPTIONS = (
    "-c datestyle=ISO -c intervalstyle=iso_8601 -c TimeZone=UTC -c extra_float_digits=3"
    " -c client_encoding=UTF8"
)

BOOL, BYTEA, NAME, INT8, INT2, INT4, TEXT, OID, JSON = 16, 17, 19, 20, 21, 23, 25, 26, 114
FLOAT4, FLOAT8, BPCHAR, VARCHAR, INTERVAL, NUMERIC, JSONB = 700, 701, 1042, 1043, 1186, 1700, 3802


def _text(data: bytes) -> str:
    return data.decode()


def _float(data: bytes) -> float | str:
    value = float(data)
    if math.isfinite(value):
        return value
    # JSON has no NaN/Infinity: the wire carries them as words (see cdc.values)
    return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")


def _numeric(data: bytes) -> Decimal:
    return Decimal(data.decode())


_DIRECT: dict[int, Converter] = {
    INT2: int,
    INT4: int,
    INT8: int,
    OID: int,
    TEXT: _text,
    VARCHAR: _text,
    BPCHAR: _text,
    NAME: _text,
    BOOL: lambda data: data == b"t",
    FLOAT4: _float,
    FLOAT8: _float,
    NUMERIC: _numeric,
    INTERVAL: _text,
    JSON: orjson.loads,
    JSONB: orjson.loads,
}


@dataclass(frozen=True, slots=True)
class TypeInfo:
    """What a converter and a sink need to know of one column type."""

    oid: int
    name: str  # format_type(): "numeric(10,2)", "character varying(20)", "my_enum"
    kind: str  # pg_type.typtype: b base, e enum, d domain, r range, m multirange, c composite
    base_oid: int  # the domain's base type; the type itself otherwise


def _lenient(loader: Converter) -> Converter:
    """A value psycopg cannot represent in Python (timestamp 'infinity', a
    year past 9999) travels as its text instead of stopping the stream."""

    def convert(data: bytes) -> Any:
        try:
            return loader(data)
        except (psycopg.DataError, ValueError):
            return data.decode()

    return convert


class TypeRegistry:
    """Converters and type names by OID, looked up once per type in the catalog."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self._conn = conn
        self._transformer = Transformer(conn)
        self._info: dict[tuple[int, int], TypeInfo] = {}
        self._converters: dict[int, Converter] = {}

    def info(self, oid: int, typmod: int = -1) -> TypeInfo:
        key = (oid, typmod)
        found = self._info.get(key)
        if found is None:
            row = self._conn.execute(
                """
                WITH RECURSIVE chain(oid, base, depth) AS (
                    SELECT t.oid, t.typbasetype, 0 FROM pg_type t WHERE t.oid = %(oid)s
                    UNION ALL
                    SELECT t.oid, t.typbasetype, c.depth + 1
                    FROM chain c JOIN pg_type t ON t.oid = c.base
                    WHERE c.base <> 0
                )
                SELECT format_type(%(oid)s, %(typmod)s), t.typtype,
                       (SELECT oid FROM chain ORDER BY depth DESC LIMIT 1)
                FROM pg_type t WHERE t.oid = %(oid)s
                """,
                {"oid": oid, "typmod": typmod},
            ).fetchone()
            if row is None:
                # a type dropped since the row was written: its text still decodes
                found = TypeInfo(oid, f"unknown type {oid}", "b", oid)
            else:
                found = TypeInfo(oid, row[0], row[1], row[2])
            self._info[key] = found
        return found

    def converter(self, oid: int) -> Converter:
        converter = self._converters.get(oid)
        if converter is None:
            converter = self._make_converter(self.info(oid))
            self._converters[oid] = converter
        return converter

    def _make_converter(self, info: TypeInfo) -> Converter:
        oid = info.base_oid
        direct = _DIRECT.get(oid)
        if direct is not None:
            return direct
        base_kind = info.kind if oid == info.oid else self.info(oid).kind
        if base_kind in {"e", "r", "m"}:
            # enum labels are text; ranges keep their canonical text ("[1,5)"),
            # which every PostgreSQL target reads back unchanged
            return _text
        loader = self._transformer.get_loader(oid, Format.TEXT)
        return _lenient(loader.load)
