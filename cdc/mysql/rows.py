"""Fast decoding of binlog row images, compiled once per table map.

python-mysql-replication keeps the protocol and the event framing: the stream,
`TableMapEvent` (with `binlog_row_metadata=FULL` it carries column names,
signedness, charsets, ENUM/SET members and the primary key), and the header of
each rows event. Its per-value row decoding (`RowsEvent.rows`) is lazy and never
runs here: `RowDecoder` reads the rows event's remaining raw bytes itself.

For each table map (and each columns-present bitmap) the decoder generates one
Python function that loops over the event's rows. Runs of columns that cannot
be NULL become a single `struct.Struct.unpack_from` call, and a string's length
prefix joins the run before it; when a row's null bitmap is all zero (the usual
case) every column is in such a run. Values are exact: see `column_types`.

Row index: `decode_rows` returns one `(before, after)` pair per row, in the
order the rows appear in the event; index ``i`` in that list is the row's index
inside the event. A source resuming at ``(event position, i)`` decodes the
event again and skips the first ``i`` pairs (rows are variable-length, so
there is no cheaper way to find row ``i``). Writes give ``(None, after)``,
deletes ``(before, None)``, updates both. Columns absent from the image
(``binlog_row_image=MINIMAL``/``NOBLOB``) are absent from the dict, not None.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Collection, Mapping
from typing import Any

from pymysqlreplication.constants import FIELD_TYPE
from pymysqlreplication.row_event import (
    DeleteRowsEvent,
    PartialUpdateRowsEvent,
    UpdateRowsEvent,
    WriteRowsEvent,
)

from cdc.errors import TerminalError
from cdc.mysql.column_types import (
    BASE_NAMES,
    ColumnSpec,
    Step,
    charset_name,
    step_for,
)
from cdc.mysql.zero_dates import ZeroDates

Image = dict[str, Any]
RowPair = tuple[Image | None, Image | None]
_Plan = Callable[[bytes, int, int], list[RowPair]]

__all__ = ["RowDecoder", "RowDecoders", "RowPair", "columns_of"]

_STRING_TYPES = (FIELD_TYPE.VARCHAR, FIELD_TYPE.STRING, FIELD_TYPE.VAR_STRING)


def columns_of(event: Any, json_columns: Collection[str] = ()) -> tuple[ColumnSpec, ...]:
    """Column specs from a `TableMapEvent` the library parsed with full metadata."""
    nullable_bits = int.from_bytes(event.null_bitmask, "little")
    meta = event.optional_metadata
    primary = set(meta.simple_primary_key_list or ()) | set(meta.primary_keys_with_prefix or {})
    specs = []
    for i, col in enumerate(event.columns):
        if not col.name:
            raise TerminalError(
                f"table map of {event.schema}.{event.table} has no column names",
                "set binlog_row_metadata=FULL on the source server",
            )
        binary = col.collation_name == "binary" or col.character_set_name == "binary"
        t = col.type
        if t in _STRING_TYPES:
            # Field_string/Field_varstring: a 2-byte length once the max exceeds 255 bytes.
            length_size = 2 if col.max_length > 255 else 1
        else:
            length_size = getattr(col, "length_size", 0)
        labels = col.enum_values[1:] if t == FIELD_TYPE.ENUM else col.set_values or ()
        # the library keeps the Python codec as `character_set_name`; the
        # server's charset name is the collation's first part (utf8mb4_bin)
        collation = col.collation_name
        charset = None if binary or not collation else charset_name(collation.split("_", 1)[0])
        specs.append(
            ColumnSpec(
                index=i,
                name=col.name,
                type=t,
                nullable=bool(nullable_bits >> i & 1),
                unsigned=bool(col.unsigned),
                primary=i in primary,
                encoding=None if binary else (col.character_set_name or "utf8"),
                length_size=length_size,
                fsp=getattr(col, "fsp", 0),
                precision=getattr(col, "precision", 0),
                decimals=getattr(col, "decimals", 0),
                nbytes=getattr(col, "bytes", 0) or getattr(col, "size", 0),
                labels=tuple(labels or ()),
                json=col.name in json_columns,
                charset=charset,
            )
        )
    return tuple(specs)


class _Gen:
    """Source text and bound names of one generated decode function."""

    def __init__(self) -> None:
        self.names: dict[str, Any] = dict(BASE_NAMES)
        self.lines: list[str] = []

    def bind(self, value: Any, prefix: str) -> str:
        name = f"{prefix}{len(self.names)}"
        self.names[name] = value
        return name

    def run(self, run: list[tuple[str, Step]], indent: str) -> None:
        """One struct unpack for the heads, then the tail and the conversions."""
        fmt = struct.Struct("<" + "".join(step.code for _, step in run))
        for _, step in run:
            self.names.update(step.names)
        unpack = self.bind(fmt.unpack_from, "u")
        targets = ", ".join(var for var, _ in run) + ("," if len(run) == 1 else "")
        self.lines += [f"{indent}{targets} = {unpack}(data, pos)", f"{indent}pos += {fmt.size}"]
        var, last = run[-1]
        if last.tail:
            size = last.length.format(v=var)
            tail = (last.conv or "{v}").format(v="data[pos:stop]")
            self.lines += [
                f"{indent}stop = pos + {size}",
                f"{indent}{var} = {tail}",
                f"{indent}pos = stop",
            ]
        for var, step in run:
            if step.conv and not step.tail:
                self.lines.append(f"{indent}{var} = {step.conv.format(v=var)}")

    def body(self, cols: list[tuple[str, Step, int, bool]], indent: str, fast: bool) -> None:
        run: list[tuple[str, Step]] = []
        for var, step, bit, nullable in cols:
            if nullable and not fast:
                if run:
                    self.run(run, indent)
                    run = []
                self.lines += [f"{indent}if nulls & {1 << bit}:", f"{indent}    {var} = None"]
                self.lines.append(f"{indent}else:")
                self.run([(var, step)], indent + "    ")
                continue
            run.append((var, step))
            if step.tail:  # the next head starts after this tail
                self.run(run, indent)
                run = []
        if run:
            self.run(run, indent)

    def image(self, steps: list[tuple[ColumnSpec, Step]], present: bytes, prefix: str) -> str:
        """Code for one row image at `pos`; returns the dict display expression."""
        bits = int.from_bytes(present, "little")
        cols: list[tuple[str, Step, int, bool]] = []
        for spec, step in steps:
            if bits >> spec.index & 1:
                cols.append((f"{prefix}{spec.index}", step, len(cols), spec.nullable))
        nb = (len(cols) + 7) // 8
        ind = "        "
        if nb == 1:
            self.lines.append(f"{ind}nulls = data[pos]")
        else:
            self.lines.append(f'{ind}nulls = _ifb(data[pos:pos + {nb}], "little")')
        self.lines.append(f"{ind}pos += {nb}")
        if any(nullable for *_, nullable in cols):
            self.lines.append(f"{ind}if nulls:")
            self.body(cols, ind + "    ", fast=False)
            self.lines.append(f"{ind}else:")
            self.body(cols, ind + "    ", fast=True)
        else:
            self.body(cols, ind, fast=True)
        spec_of = {f"{prefix}{spec.index}": spec for spec, _ in steps}
        return "{" + ", ".join(f"{spec_of[v].name!r}: {v}" for v, *_ in cols) + "}"


def _compile(
    steps: list[tuple[ColumnSpec, Step]], kind: str, present: bytes, present2: bytes
) -> tuple[_Plan, str]:
    gen = _Gen()
    gen.lines += ["    out = []", "    append = out.append", "    while pos < end:"]
    first = gen.image(steps, present, "a")
    if kind == "u":
        second = gen.image(steps, present2, "b")
        pair = f"({first}, {second})"
    elif kind == "c":
        pair = f"(None, {first})"
    else:
        pair = f"({first}, None)"
    gen.lines += [f"        append({pair})", "    return out"]
    # Helpers bound as keyword defaults so the loop reads them as fast locals.
    defaults = ", ".join(f"{name}={name}" for name in gen.names)
    source = f"def decode(data, pos, end, *, {defaults}):\n" + "\n".join(gen.lines) + "\n"
    namespace = dict(gen.names)
    exec(compile(source, f"<rows {kind}>", "exec"), namespace)
    plan: _Plan = namespace["decode"]
    return plan, source


class RowDecoder:
    """Decodes the rows events of one table map (one table layout)."""

    def __init__(
        self,
        schema: str,
        table: str,
        columns: tuple[ColumnSpec, ...],
        *,
        zero_dates: ZeroDates = "null",
    ) -> None:
        self.schema = schema
        self.table = table
        self.columns = columns
        self.primary_key = tuple(c.name for c in columns if c.primary)
        self._steps = [(c, step_for(c, zero_dates, f"{schema}.{table}")) for c in columns]
        self._plans: dict[tuple[str, bytes, bytes], _Plan] = {}

    @classmethod
    def for_table_map(
        cls, event: Any, *, zero_dates: ZeroDates = "null", json_columns: Collection[str] = ()
    ) -> RowDecoder:
        return cls(
            event.schema, event.table, columns_of(event, json_columns), zero_dates=zero_dates
        )

    def source(self, kind: str, present: bytes, present2: bytes = b"") -> str:
        """The generated decoder's source text (for debugging and profiling)."""
        return _compile(self._steps, kind, present, present2)[1]

    def decode_body(
        self, kind: str, data: bytes, pos: int, end: int, present: bytes, present2: bytes = b""
    ) -> list[RowPair]:
        """Rows of `data[pos:end]`; `kind` is 'c' (write), 'u' (update) or 'd' (delete)."""
        key = (kind, present, present2)
        plan = self._plans.get(key)
        if plan is None:
            plan = self._plans[key] = _compile(self._steps, kind, present, present2)[0]
        try:
            return plan(data, pos, end)
        except (struct.error, IndexError, KeyError) as exc:
            raise TerminalError(
                f"rows event of {self.schema}.{self.table} does not match its table map: {exc}",
                "check that binlog_row_metadata=FULL and report the event position",
            ) from exc

    def decode_rows(self, event: Any) -> list[RowPair]:
        """The `(before, after)` pairs of a library rows event, without `event.rows`."""
        kind, present, present2 = _event_kind(event)
        wrapper = event.packet
        raw = wrapper.packet
        # The library has read the post-header and the columns-present bitmaps;
        # what is left of the event (the checksum excluded) is the row images.
        pos = raw._position
        end = pos + event.event_size - wrapper.read_bytes
        return self.decode_body(kind, raw._data, pos, end, present, present2)


def _event_kind(event: Any) -> tuple[str, bytes, bytes]:
    if isinstance(event, PartialUpdateRowsEvent):
        raise TerminalError(
            "MySQL partial JSON updates are not supported",
            "set binlog_row_value_options='' on the source server",
        )
    if isinstance(event, WriteRowsEvent):
        return "c", event.columns_present_bitmap, b""
    if isinstance(event, UpdateRowsEvent):
        return "u", event.columns_present_bitmap, event.columns_present_bitmap2
    if isinstance(event, DeleteRowsEvent):
        return "d", event.columns_present_bitmap, b""
    raise TypeError(f"not a rows event: {type(event).__name__}")


class RowDecoders:
    """Decoders by table id, compiled once per distinct table map.

    Feed every `TableMapEvent` to `table_map` (include it in the stream's
    `only_events`) before the rows events that follow it. A table map is sent
    before each statement's rows, so decoders are cached by the table map's
    bytes: an unchanged layout reuses its compiled decoder, and an ALTER TABLE
    yields a new map, hence rows decode with the columns they were written with.
    """

    def __init__(
        self,
        *,
        zero_dates: ZeroDates = "null",
        json_columns: Mapping[tuple[str, str], Collection[str]] | None = None,
    ) -> None:
        self.zero_dates: ZeroDates = zero_dates
        self.json_columns = dict(json_columns or {})
        self._by_id: dict[int, RowDecoder] = {}
        self._by_map: dict[bytes, RowDecoder] = {}

    def table_map(self, event: Any) -> RowDecoder:
        data: bytes = event.packet.packet._data
        # Skip the OK byte, the 19-byte event header and the 6-byte table id,
        # and stop before the checksum: what remains is the table's layout.
        key = data[26 : 20 + event.event_size]
        decoder = self._by_map.get(key)
        if decoder is None:
            json = self.json_columns.get((event.schema, event.table), ())
            decoder = RowDecoder.for_table_map(event, zero_dates=self.zero_dates, json_columns=json)
            self._by_map[key] = decoder
        self._by_id[event.table_id] = decoder
        return decoder

    def decoder(self, table_id: int) -> RowDecoder:
        try:
            return self._by_id[table_id]
        except KeyError:
            raise TerminalError(
                f"rows event for table id {table_id} without its table map",
                "include TableMapEvent in the stream's only_events",
            ) from None

    def compiled(self) -> list[RowDecoder]:
        """One decoder per distinct table layout seen, in first-seen order."""
        return list(self._by_map.values())

    def decode(self, event: Any) -> list[RowPair]:
        return self.decoder(event.table_id).decode_rows(event)
