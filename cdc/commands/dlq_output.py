"""How `cdc dlq` prints dead letters: a table for people, one JSON object per
line for scripts."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from cdc.app.dlq import Outcome
    from sinks.dlq.letters import DeadLetter

KEY_CHARS = 40  # of a key in the table; --json and `show` keep it whole


def _time(ms: int | None) -> str | None:
    if ms is None or ms < 0:
        return None
    return (
        datetime.fromtimestamp(ms / 1000, UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


def _json_or_text(data: bytes | None) -> Any:
    """The bytes as JSON when they are JSON, else as text."""
    if data is None:
        return None
    try:
        return json.loads(data)
    except ValueError:
        return data.decode(errors="replace")


def _key_text(letter: DeadLetter) -> str:
    key = letter.key
    if key is None:
        return "-"
    loaded = _json_or_text(key)
    return json.dumps(loaded, separators=(", ", ": ")) if not isinstance(loaded, str) else loaded


def letter_record(letter: DeadLetter, whole: bool = False) -> dict[str, Any]:
    """One dead letter as JSON; `whole` adds its value and headers."""
    topic, partition, offset = letter.origin
    decision = letter.decision
    record: dict[str, Any] = {
        "id": letter.id,
        "state": letter.state,
        "table": letter.table,
        "key": _json_or_text(letter.key),
        "reason": letter.reason,
        "position": letter.position,
        "time": _time(letter.at_ms),
        "source_time": _time(letter.source_ts_ms),
        "topic": topic,
        "partition": partition,
        "offset": offset,
        "error": letter.error,
        "copies": letter.copies,
        "decided_at": decision.decided_at.isoformat() if decision and decision.decided_at else None,
        "detail": decision.detail if decision else None,
    }
    if whole:
        record["value"] = _json_or_text(letter.value)
        record["headers"] = {name: value.decode(errors="replace") for name, value in letter.headers}
    return record


def print_list(letters: Sequence[DeadLetter], as_json: bool) -> None:
    if as_json:
        for letter in letters:
            click.echo(json.dumps(letter_record(letter)))
        return
    rows = [
        (
            str(letter.id),
            letter.state,
            letter.table,
            _shorten(_key_text(letter)),
            letter.reason,
            letter.position or "-",
            _time(letter.at_ms) or "-",
            ":".join(str(part) for part in letter.origin),
        )
        for letter in letters
    ]
    _table(
        ("ID", "STATE", "TABLE", "KEY", "REASON", "POSITION", "TIME", "TOPIC:PARTITION:OFFSET"),
        rows,
    )


def print_letter(letter: DeadLetter, as_json: bool) -> None:
    record = letter_record(letter, whole=True)
    if as_json:
        click.echo(json.dumps(record, indent=2))
        return
    click.echo(f"dead letter {letter.id}: {letter.state}")
    fields = [
        ("table", letter.table),
        ("key", _key_text(letter)),
        ("reason", letter.reason),
        ("error", letter.error),
        ("position", letter.position or "-"),
        ("source time", record["source_time"] or "-"),
        ("set aside", record["time"] or "-"),
        ("from", "{}:{}:{}".format(*letter.origin)),
    ]
    if letter.copies:
        fields.append(("copies", ", ".join(str(i) for i in letter.copies)))
    if letter.decision is not None:
        fields.append(("decided", f"{record['decided_at']}: {letter.decision.detail}"))
    for name, value in fields:
        # a server's error runs over lines (PostgreSQL's DETAIL): keep them under it
        click.echo(f"  {name:<12} " + str(value).replace("\n", "\n" + " " * 15))
    for name, value in record["headers"].items():
        click.echo(f"  {'header':<12} {name}: {value}")
    click.echo("  value:")
    value = record["value"]
    shown = value if isinstance(value, str) or value is None else json.dumps(value, indent=2)
    for line in str(shown).splitlines() or [""]:
        click.echo(f"    {line}")


def print_outcomes(outcomes: Sequence[Outcome], as_json: bool) -> None:
    if as_json:
        for outcome in outcomes:
            letter = outcome.letter
            click.echo(
                json.dumps(
                    {
                        "id": letter.id,
                        "table": letter.table,
                        "key": _json_or_text(letter.key),
                        "result": outcome.result,
                        "detail": outcome.detail,
                    }
                )
            )
        return
    rows = [
        (
            str(o.letter.id),
            o.letter.table,
            _shorten(_key_text(o.letter)),
            o.result,
            _first_line(o.detail),
        )
        for o in outcomes
    ]
    _table(("ID", "TABLE", "KEY", "RESULT", "DETAIL"), rows)


def _first_line(text: str) -> str:
    return text.strip().split("\n", 1)[0]


def _shorten(text: str) -> str:
    return text if len(text) <= KEY_CHARS else text[: KEY_CHARS - 3] + "..."


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=True)]
        click.echo("  ".join(cells).rstrip())
