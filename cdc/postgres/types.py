"""Text-format column values of PostgreSQL to Python values, by type OID.

pgoutput and `COPY ... TO STDOUT` both send values in their text output form,
so the stream and the snapshot share these converters. The common types take
a direct path (int(b"42") is several times cheaper than a generic loader),
straight to their wire form where PostgreSQL's text already is it or nearly
(numeric, date, timestamp: see cdc.values), so no Decimal or datetime is made
per row; everything else goes through psycopg's own loader for the OID.

The sessions that produce the text (walsender, snapshot readers) run with
the settings in `SESSION_OPTIONS`, which the converters rely on.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
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
DATE, TIMESTAMP, TIMESTAMPTZ = 1082, 1114, 1184


# The method itself, not a def around it: it runs for most columns of every
# row, and a Python frame per call costs more than the decoding.
_text: Converter = bytes.decode


def _float(data: bytes) -> float | str:
    value = float(data)
    if math.isfinite(value):
        return value
    # JSON has no NaN/Infinity: the wire carries them as words (see cdc.values)
    return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")


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
    # PostgreSQL writes numerics in plain notation with their scale, and
    # NaN/Infinity/-Infinity as the wire's words: its text is the wire form.
    NUMERIC: _text,
    # ISO dates as the wire wants them; BC, infinity and years past 9999 as
    # PostgreSQL wrote them, as for every value Python cannot hold.
    DATE: _text,
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


# Fraction digits to append to "HH:MM:SS[.f...]" ending at a given length of
# "YYYY-MM-DD HH:MM:SS[.f...]", so that there are always six.
_MICROS_PAD = {19: ".000000", 21: "00000", 22: "0000", 23: "000", 24: "00", 25: "0", 26: ""}


def _iso_micros(data: bytes) -> str | None:
    """ "2024-05-01 12:00:00.5" -> "2024-05-01T12:00:00.500000", the wire
    form of `encode_datetime`; None for anything else (BC, infinity, a year
    past 9999), which the type's loader handles."""
    pad = _MICROS_PAD.get(len(data))
    # data[-1] != "C": not "... BC"
    if pad is not None and data[4] == 45 and data[10] == 32 and data[-1] != 67:
        return data.decode().replace(" ", "T") + pad
    return None


def _timestamp(fallback: Converter) -> Converter:
    def convert(data: bytes) -> Any:
        wire = _iso_micros(data)
        return fallback(data) if wire is None else wire

    return convert


def _timestamptz(fallback: Converter) -> Converter:
    # With TimeZone=UTC (SESSION_OPTIONS) the text ends in "+00".
    def convert(data: bytes) -> Any:
        wire = _iso_micros(data[:-3]) if data.endswith(b"+00") else None
        return fallback(data) if wire is None else wire + "Z"

    return convert


# Types whose direct path needs the loader for the values it does not take.
_DIRECT_WITH_FALLBACK: dict[int, Callable[[Converter], Converter]] = {
    TIMESTAMP: _timestamp,
    TIMESTAMPTZ: _timestamptz,
}


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
        loader = _lenient(self._transformer.get_loader(oid, Format.TEXT).load)
        with_fallback = _DIRECT_WITH_FALLBACK.get(oid)
        return loader if with_fallback is None else with_fallback(loader)
