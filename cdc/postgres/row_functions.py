"""A relation's row, key and JSON functions, compiled once per Relation message.

The stream's hot path (`cdc.postgres.changes`) calls them for every row:
straight-line code generated for the relation's columns costs a third of a
generic loop over them.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from typing import Any

import orjson

from cdc import values
from cdc.postgres.pgoutput_messages import TupleData
from cdc.postgres.types import Converter

RowBuilder = Callable[[TupleData], dict[str, Any]]
KeyBuilder = Callable[[dict[str, Any]], dict[str, Any]]
# (key JSON, row JSON) of the TupleData at an offset of a message, or None
# when it holds more than text values and NULLs
JsonBuilder = Callable[[bytes, int], tuple[bytes, bytes] | None]
# (key JSON, row JSON) of a row's text fields (a snapshot's COPY line, split)
FieldsJsonBuilder = Callable[[Sequence[bytes | None]], tuple[bytes, bytes]]
_U32 = struct.Struct("!I")


def _json_expression(convert: Converter, value: str, index: int) -> str:
    """Python expression of the JSON text of a non-NULL column value: the
    bytes `values.dumps(convert(value))` gives, without the Python value in
    between where the text already is (nearly) JSON."""
    if convert is int:
        # PostgreSQL writes integers as JSON does: no sign, spaces or zeros to add
        return value
    if convert is bytes.decode:
        return f"odumps({value}.decode())"  # a str needs no default hook
    return f"dumps(c{index}({value}))"


def _tuple_columns(count: int) -> list[str]:
    """Statements that read the `count` columns of a pgoutput TupleData (the
    layout `pgoutput._tuple` reads) from `buf` at `pos` into `v<i>`, bytes
    or None for NULL; anything but a text value or NULL returns None (the
    caller decodes the message instead)."""
    lines = []
    for i in range(count):
        lines += [
            "    kind = buf[pos]",
            "    if kind == 116:",  # 't' text
            "        start = pos + 5",
            "        pos = start + u32(buf, pos + 1)[0]",
            f"        v{i} = buf[start:pos]",
            "    elif kind == 110:",  # 'n' NULL
            "        pos += 1",
            f"        v{i} = None",
            "    else:",
            "        return None",
        ]
    return lines


def compile_row_functions(
    names: Sequence[str], converters: Sequence[Converter], key: Sequence[str]
) -> tuple[RowBuilder, KeyBuilder, JsonBuilder, FieldsJsonBuilder]:
    """A relation's own row, key and JSON functions, compiled once per
    Relation message: straight-line code, one converter call per column, no
    zip or comprehension per row (a third of the generic loop's cost).
    Unpacking the tuple checks its length, as zip(strict=True) would.

    The JSON function reads an Insert's tuple straight from the message
    bytes and writes the key and row JSON from the column texts: the same
    bytes `values.dumps` gives for the built row and key
    (tests/unit/test_pg_changes.py), with no tuple, dict, Python int or str
    per row where PostgreSQL's text already is the JSON. The fields function
    does the same for a row whose text fields are at hand (a snapshot's COPY
    output: the same text form pgoutput sends)."""
    n = len(names)
    # converters bound as defaults, so the body reads them as fast locals
    params = "".join(f", c{i}=c{i}" for i in range(n))
    unpack = "    " + ("".join(f"v{i}, " for i in range(n)) or "() ") + "= values"
    row = ", ".join(
        f"{name!r}: None if v{i} is None else c{i}(v{i})" for i, name in enumerate(names)
    )

    def json_format(columns: Sequence[str]) -> bytes:
        members = (values.dumps(name).replace(b"%", b"%%") + b":%b" for name in columns)
        return b"{" + b",".join(members) + b"}"

    index = {name: i for i, name in enumerate(names)}
    # the JSON of the column texts v<i>, then the key's and the row's
    to_json = [
        f"    j{i} = b'null' if v{i} is None else {_json_expression(c, f'v{i}', i)}"
        for i, c in enumerate(converters)
    ]
    return_json = (
        f"    return KEY % ({''.join(f'j{index[k]}, ' for k in key)}), "
        f"ROW % ({''.join(f'j{i}, ' for i in range(n))})"
    )
    source = [
        f"def build(values{params}):",
        unpack,
        f"    return {{{row}}}",
        "def key_of(row):",
        "    return {" + ", ".join(f"{name!r}: row[{name!r}]" for name in key) + "}",
        f"def json_of(buf, pos{params}, u32=u32, odumps=odumps, dumps=dumps):",
        f"    if buf[pos] << 8 | buf[pos + 1] != {n}:",
        "        return None",
        "    pos += 2",
        *_tuple_columns(n),
        "    if pos != len(buf):",  # a short or long message: no value is trusted
        "        return None",
        *to_json,
        return_json,
        f"def json_fields(values{params}, odumps=odumps, dumps=dumps):",
        unpack,
        *to_json,
        return_json,
    ]
    namespace: dict[str, Any] = {f"c{i}": convert for i, convert in enumerate(converters)}
    namespace.update(
        u32=_U32.unpack_from,
        odumps=orjson.dumps,
        dumps=values.dumps,
        KEY=json_format(key),
        ROW=json_format(names),
    )
    exec(compile("\n".join(source) + "\n", "<pgoutput row>", "exec"), namespace)
    return namespace["build"], namespace["key_of"], namespace["json_of"], namespace["json_fields"]
