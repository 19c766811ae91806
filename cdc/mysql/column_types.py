"""How each binlog column type is laid out in a row image, and its Python value.

Every column's bytes in a row image are a fixed-width *head* (a `struct` code)
optionally followed by a variable *tail* whose length the head gives (strings,
blobs, JSON). `step_for` returns that description; `cdc.mysql.rows` compiles
runs of heads into one `struct.Struct` per run.

Layouts follow MySQL's `Field::pack` / `my_time.cc` (MariaDB is the same for
the MySQL 5.6 temporal types DATETIME2/TIMESTAMP2/TIME2, its default since 10.1).
"""

from __future__ import annotations

import codecs
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import orjson
from pymysqlreplication.constants import FIELD_TYPE
from pymysqlreplication.json_binary import parse_json

from cdc.mysql.zero_dates import ZeroDates, ZeroPolicy


@dataclass(frozen=True, slots=True)
class ColumnSpec:
    """One column of a table map, with the metadata decoding needs."""

    index: int
    name: str
    type: int
    nullable: bool
    unsigned: bool = False
    primary: bool = False
    encoding: str | None = None  # None: binary charset, the value stays bytes
    length_size: int = 0  # BLOB/TEXT/JSON/GEOMETRY length prefix, or VARCHAR/CHAR's (1|2)
    fsp: int = 0
    precision: int = 0
    decimals: int = 0
    nbytes: int = 0  # BIT, ENUM and SET storage width
    labels: tuple[str, ...] = ()  # ENUM (1-based) or SET (bit i) members
    json: bool = False  # MariaDB JSON: a LONGTEXT the caller knows holds JSON
    # The server's charset name of a character column ("utf8mb4", "latin1"),
    # for the schema; `encoding` is the Python codec, which cannot tell utf8mb3
    # from utf8mb4.
    charset: str | None = None


@dataclass(frozen=True, slots=True)
class Step:
    """Head `code` (struct format), `conv` (template on `{v}`), optional tail.

    With `tail`, the head is the tail's byte length (`length` template turns it
    into an int) and `conv` applies to the tail's bytes.
    """

    code: str
    conv: str | None = None
    tail: bool = False
    length: str = "{v}"
    names: dict[str, Any] = field(default_factory=dict)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ZERO = timedelta(0)

# MySQL's latin1 is cp1252 except that the five bytes cp1252 leaves undefined
# map to the C1 control characters (Python's cp1252 codec rejects them).
_LATIN1_TABLE = "".join(
    bytes([b]).decode("cp1252") if b not in (0x81, 0x8D, 0x8F, 0x90, 0x9D) else chr(b)
    for b in range(256)
)


def charset_name(name: str) -> str:
    """One name per charset on both paths: plain "utf8" is utf8mb3 on MariaDB
    and MySQL 8 (older catalogs and collations still say "utf8")."""
    return "utf8mb3" if name == "utf8" else name


def decode_latin1(raw: bytes) -> str:
    return codecs.charmap_decode(raw, "strict", _LATIN1_TABLE)[0]


# Fractional seconds are stored big-endian in (fsp + 1) // 2 bytes, in units of
# 10^-(2 * bytes): hundredths for 1 byte, 1/10000 s for 2, microseconds for 3.
_FRAC_MULT = (0, 10000, 10000, 100, 100, 1, 1)


def _frac_bytes(fsp: int) -> int:
    return (fsp + 1) // 2


def date_reader(zero: ZeroPolicy) -> Callable[[bytes], date | None]:
    def read(raw: bytes) -> date | None:
        v = int.from_bytes(raw, "little")
        day, month, year = v & 31, (v >> 5) & 15, v >> 9
        if day and month and year:
            return date(year, month, day)
        zero.met("date", raw)
        return None

    return read


def datetime2_reader(fsp: int, zero: ZeroPolicy) -> Callable[[bytes], datetime | None]:
    """DATETIME2: 1 sign bit (set), 17 bits year*13+month, 5 day, 5 hour, 6 min, 6 s.

    Generated with the shifts constant-folded, as it runs once per value.
    """
    fb = 8 * _frac_bytes(fsp)
    mult = f" * {_FRAC_MULT[fsp]}" if _FRAC_MULT[fsp] != 1 else ""
    source = (
        "def read(raw):\n"
        f"    v = _ifb(raw, 'big') - {1 << (39 + fb)}\n"
        f"    ymd = v >> {17 + fb}\n"
        "    ym = ymd >> 5\n"
        "    if ymd & 31 and ym % 13 and ym >= 13:\n"
        f"        return _dt(ym // 13, ym % 13, ymd & 31, (v >> {12 + fb}) & 31,"
        f" (v >> {6 + fb}) & 63, (v >> {fb}) & 63, (v & {(1 << fb) - 1}){mult})\n"
        "    zero.met('datetime', raw)\n"
    )
    read: Callable[[bytes], datetime | None] = _generated(source, "read", zero=zero)
    return read


def _generated(source: str, name: str, **names: Any) -> Any:
    namespace: dict[str, Any] = {
        "_ifb": int.from_bytes,
        "_D": Decimal,
        "_dt": datetime,
        **names,
    }
    exec(compile(source, f"<{name}>", "exec"), namespace)
    return namespace[name]


def timestamp2_reader(fsp: int, zero: ZeroPolicy) -> Callable[[bytes], datetime | None]:
    fbits = 8 * _frac_bytes(fsp)
    fmask = (1 << fbits) - 1
    mult = _FRAC_MULT[fsp]

    def read(raw: bytes) -> datetime | None:
        v = int.from_bytes(raw, "big")
        if not v:  # '0000-00-00 00:00:00' is stored as second 0
            zero.met("timestamp", raw)
            return None
        return _EPOCH + timedelta(seconds=v >> fbits, microseconds=(v & fmask) * mult)

    return read


def time2_reader(fsp: int) -> Callable[[bytes], timedelta]:
    fbits = 8 * _frac_bytes(fsp)
    fmask = (1 << fbits) - 1
    mult = _FRAC_MULT[fsp]
    offset = 1 << (23 + fbits)

    def read(raw: bytes) -> timedelta:
        # Stored as the offset-binary of hms << fbits | frac, so negative times
        # (down to -838:59:59) are the two's complement of the positive ones.
        v = int.from_bytes(raw, "big") - offset
        a = -v if v < 0 else v
        hms = a >> fbits
        t = timedelta(
            hours=(hms >> 12) & 1023,
            minutes=(hms >> 6) & 63,
            seconds=hms & 63,
            microseconds=(a & fmask) * mult,
        )
        return -t if v < 0 else t

    return read


def decimal_reader(precision: int, scale: int) -> tuple[int, Callable[[bytes], Decimal]]:
    """NEWDECIMAL: groups of 9 digits in 4 big-endian bytes, partial groups shorter.

    The reader is generated per (precision, scale) with the group arithmetic
    unrolled: it runs once per value, and the loop version was 3x slower.
    """
    dig2bytes = (0, 1, 1, 2, 2, 3, 3, 4, 4, 4)
    intg = precision - scale
    groups: list[int] = []  # digits per group, most significant first
    if intg % 9:
        groups.append(intg % 9)
    groups += [9] * (intg // 9) + [9] * (scale // 9)
    if scale % 9:
        groups.append(scale % 9)
    size = sum(dig2bytes[g] for g in groups)
    shift = size * 8
    expr = "0"
    for g in groups:
        shift -= dig2bytes[g] * 8
        expr = f"({expr}) * {10**g} + ((v >> {shift}) & {(1 << (dig2bytes[g] * 8)) - 1})"
    sign_bit = 1 << (size * 8 - 1)
    # The top bit is set for non-negative values; negatives are stored with
    # every bit inverted. Built from a string, the Decimal is exact: the
    # context's 28-digit precision never applies (DECIMAL(65,30) round-trips).
    source = (
        "def read(raw):\n"
        "    v = _ifb(raw, 'big')\n"
        f"    if v & {sign_bit}:\n"
        f"        v ^= {sign_bit}\n"
        f"        return _D(f'{{{expr}}}e-{scale}')\n"
        f"    v ^= {(1 << (size * 8)) - 1 ^ sign_bit}\n"
        f"    return _D(f'-{{{expr}}}e-{scale}')\n"
    )
    read: Callable[[bytes], Decimal] = _generated(source, "read")
    return size, read


def set_reader(labels: tuple[str, ...]) -> Callable[[int], set[str]]:
    def read(mask: int) -> set[str]:
        return {label for i, label in enumerate(labels) if mask >> i & 1}

    return read


def mysql_json(raw: bytes) -> Any:
    """MySQL 5.7+ binary JSON (type 245); the library's parser is correct for it."""
    if not raw:
        return None
    value = parse_json(raw[0], raw[1:])
    return _str_keys(value)


def _str_keys(value: Any) -> Any:
    # The library returns object keys and strings as bytes.
    if isinstance(value, dict):
        return {(k.decode() if isinstance(k, bytes) else k): _str_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_str_keys(v) for v in value]
    if isinstance(value, bytes):
        return value.decode()
    return value


_INT_CODES = {
    FIELD_TYPE.TINY: "b",
    FIELD_TYPE.SHORT: "h",
    FIELD_TYPE.LONG: "i",
    FIELD_TYPE.LONGLONG: "q",
}
_LEN_CODES = {1: "B", 2: "H", 4: "I"}


def _length_prefixed(size: int, conv: str | None, names: dict[str, Any]) -> Step:
    if size in _LEN_CODES:
        return Step(_LEN_CODES[size], conv, tail=True, names=names)
    return Step(f"{size}s", conv, tail=True, length='_ifb({v}, "little")', names=names)


def _text(col: ColumnSpec, size: int, fn: str) -> Step:
    if col.json:
        return _length_prefixed(size, "_json({v})", {})
    if col.encoding is None:
        return _length_prefixed(size, None, {})
    if col.encoding in ("utf8", "utf8mb4", "utf-8"):
        return _length_prefixed(size, "{v}.decode()", {})
    if col.encoding == "cp1252":
        return _length_prefixed(size, "_latin1({v})", {})
    codecs.lookup(col.encoding)  # fail at plan time, not per row
    return _length_prefixed(size, f"{{v}}.decode({fn})", {fn: col.encoding})


def step_for(col: ColumnSpec, zero_dates: ZeroDates, table: str) -> Step:
    """The head/tail layout and conversion of one column of `table`
    (database.table); `fn` names its helpers."""
    t, fn = col.type, f"c{col.index}"
    zero = ZeroPolicy(zero_dates, table, col.name)
    if t in _INT_CODES:
        code = _INT_CODES[t]
        return Step(code.upper() if col.unsigned else code)
    if t == FIELD_TYPE.INT24:
        signed = "False" if col.unsigned else "True"
        return Step("3s", f'_ifb({{v}}, "little", signed={signed})')
    if t == FIELD_TYPE.FLOAT:
        return Step("f")
    if t == FIELD_TYPE.DOUBLE:
        return Step("d")
    if t == FIELD_TYPE.YEAR:
        return Step("B", "({v} + 1900 if {v} else 0)")
    if t == FIELD_TYPE.DATE:
        return Step("3s", f"{fn}({{v}})", names={fn: date_reader(zero)})
    if t == FIELD_TYPE.DATETIME2:
        reader = datetime2_reader(col.fsp, zero)
        return Step(f"{5 + _frac_bytes(col.fsp)}s", f"{fn}({{v}})", names={fn: reader})
    if t == FIELD_TYPE.TIMESTAMP2:
        reader2 = timestamp2_reader(col.fsp, zero)
        return Step(f"{4 + _frac_bytes(col.fsp)}s", f"{fn}({{v}})", names={fn: reader2})
    if t == FIELD_TYPE.TIME2:
        reader3 = time2_reader(col.fsp)
        return Step(f"{3 + _frac_bytes(col.fsp)}s", f"{fn}({{v}})", names={fn: reader3})
    if t == FIELD_TYPE.NEWDECIMAL:
        size, dec = decimal_reader(col.precision, col.decimals)
        return Step(f"{size}s", f"{fn}({{v}})", names={fn: dec})
    if t == FIELD_TYPE.BIT:
        return Step(f"{col.nbytes}s")
    if t == FIELD_TYPE.ENUM:
        # Index 0 is the '' MySQL stores for an invalid value in non-strict mode.
        return Step("B" if col.nbytes == 1 else "H", f"{fn}[{{v}}]", names={fn: ("", *col.labels)})
    if t == FIELD_TYPE.SET:
        mask = {1: "B", 2: "H", 4: "I", 8: "Q"}.get(col.nbytes)
        if mask is None:
            return Step(
                f"{col.nbytes}s", f'{fn}(_ifb({{v}}, "little"))', names={fn: set_reader(col.labels)}
            )
        return Step(mask, f"{fn}({{v}})", names={fn: set_reader(col.labels)})
    if t in (FIELD_TYPE.VARCHAR, FIELD_TYPE.STRING, FIELD_TYPE.VAR_STRING):
        return _text(col, col.length_size, fn)
    if t == FIELD_TYPE.BLOB:
        return _text(col, col.length_size, fn)
    if t == FIELD_TYPE.GEOMETRY:
        # MySQL's internal geometry: 4-byte little-endian SRID, then the WKB.
        return _length_prefixed(col.length_size, None, {})
    if t == FIELD_TYPE.JSON:
        return _length_prefixed(col.length_size, "_mysql_json({v})", {})
    legacy = _legacy_step(col, zero, fn)
    if legacy is None:
        raise NotImplementedError(f"column {col.name!r}: binlog type {t} is not supported")
    return legacy


def _legacy_step(col: ColumnSpec, zero: ZeroPolicy, fn: str) -> Step | None:
    """Pre-5.6 temporal types, still written for columns created on old servers."""
    if col.type == FIELD_TYPE.TIMESTAMP:
        return Step("I", f"{fn}({{v}})", names={fn: _legacy_timestamp(zero)})
    if col.type == FIELD_TYPE.DATETIME:
        return Step("Q", f"{fn}({{v}})", names={fn: _legacy_datetime(zero)})
    if col.type == FIELD_TYPE.TIME:
        return Step("3s", f"{fn}({{v}})", names={fn: _legacy_time})
    return None


def _legacy_timestamp(zero: ZeroPolicy) -> Callable[[int], datetime | None]:
    def read(v: int) -> datetime | None:
        if v:
            return _EPOCH + timedelta(seconds=v)
        zero.met("timestamp", v)
        return None

    return read


def _legacy_datetime(zero: ZeroPolicy) -> Callable[[int], datetime | None]:
    def read(v: int) -> datetime | None:
        d, t = divmod(v, 1_000_000)  # YYYYMMDDhhmmss as a decimal number
        year, md = divmod(d, 10000)
        month, day = divmod(md, 100)
        if year and month and day:
            return datetime(year, month, day, t // 10000, t // 100 % 100, t % 100)
        zero.met("datetime", v)
        return None

    return read


def _legacy_time(raw: bytes) -> timedelta:
    v = int.from_bytes(raw, "little", signed=True)  # [-]HHMMSS as a decimal number
    a = abs(v)
    t = timedelta(hours=a // 10000, minutes=a // 100 % 100, seconds=a % 100)
    return -t if v < 0 else t


BASE_NAMES: dict[str, Any] = {
    "_ifb": int.from_bytes,
    "_latin1": decode_latin1,
    "_json": orjson.loads,
    "_mysql_json": mysql_json,
}
