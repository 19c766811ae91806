"""`cdc dlq`: work with the dead letters of a pipeline (see `sinks.dlq`)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import click

from cdc.commands.common import EXIT_CONFIG, config_option
from cdc.commands.dlq_output import print_letter, print_list, print_outcomes
from cdc.commands.workflow import fail, load_with_target
from cdc.errors import TerminalError

if TYPE_CHECKING:
    from cdc.app.dlq import DlqSession
    from sinks.dlq.letters import DeadLetter

EXIT_FAILED = 1  # the sink is running, a server could not be reached, a dead letter not applied

json_option = click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
table_option = click.option("--table", metavar="T", help="Only those of table T (schema.table).")
reason_option = click.option(
    "--reason", metavar="R", help="Only those set aside for reason R (apply, decode, ...)."
)


@click.group()
def dlq() -> None:
    """The dead letters on <prefix>.__dlq: changes the target refused and messages
    the sink could not read. List them, show one, apply them again once the cause
    is fixed (redrive), mark them handled (skip), or move a partition past a
    message at its head (skip-offset).

    A dead letter is named by its id: its offset on the dead-letter topic, also
    in the sink's `dead_lettered` log line. Decisions are kept on the target, in
    cdc_dead_letters.

    Exit status: 0 done, 1 the sink is running, a server could not be reached or
    a dead letter was not applied, 2 bad input (options, configuration, an id or
    table that is not there).
    """


@contextmanager
def _session(command: str, path: Path) -> Iterator[DlqSession]:
    """The pipeline's dead letters; a bad input exits 2, a server down 1."""
    from cdc.app.dlq import DlqSession  # noqa: PLC0415
    from sinks.dlq.letters import DlqInputError  # noqa: PLC0415

    settings = load_with_target(f"dlq {command}", path)
    try:
        with DlqSession(settings) as session:
            yield session
    except DlqInputError as exc:
        fail(f"dlq {command}", str(exc), EXIT_CONFIG)
    except TerminalError as exc:
        fail(f"dlq {command}", str(exc), EXIT_FAILED)
    except Exception as exc:  # a server down, a refused connection
        fail(f"dlq {command}", f"{type(exc).__name__}: {exc}", EXIT_FAILED)


def _refuse_while_running(command: str, session: DlqSession) -> None:
    members = session.sink_members()
    if members:
        fail(
            f"dlq {command}",
            f"the sink is running: consumer group {session.kafka.group} has {members}"
            " member(s). Stop it first (a killed sink leaves the group after the session"
            " timeout)",
            EXIT_FAILED,
        )


def _selected(
    command: str,
    session: DlqSession,
    ids: Sequence[str],
    every: bool,
    table: str | None,
    reason: str | None,
) -> tuple[list[DeadLetter], list[DeadLetter]]:
    """(pending, already decided) among the dead letters the arguments name."""
    from sinks.dlq.letters import select  # noqa: PLC0415

    if sum((bool(ids), every, table is not None)) != 1:
        fail(f"dlq {command}", "give dead-letter ids, or --all, or --table T", EXIT_CONFIG)
    if ids and reason is not None:
        fail(f"dlq {command}", "--reason narrows --all or --table, not ids", EXIT_CONFIG)
    letters = session.letters()
    known = session.known_tables() if table is not None else []
    chosen = select(letters, ids, table, reason, known)
    pending = [letter for letter in chosen if letter.state == "pending"]
    return pending, [letter for letter in chosen if letter.state != "pending"]


def _said_handled(handled: Sequence[DeadLetter], ids: Sequence[str], verb: str) -> None:
    """Named by id but decided already: say so (--all and --table pass over them)."""
    if not ids:
        return
    for letter in handled:
        detail = letter.decision.detail if letter.decision else ""
        click.echo(f"{letter.id}: already {letter.state} ({detail}); not {verb} again")


def _nothing(what: str, table: str | None, reason: str | None) -> str:
    of = "".join(
        [f" of table {table}" if table else "", f" with reason {reason}" if reason else ""]
    )
    return f"no {what + ' ' if what else ''}dead letters{of}"


@dlq.command("list")
@config_option
@table_option
@reason_option
@click.option(
    "--state",
    type=click.Choice(["pending", "redriven", "superseded", "skipped"]),
    help="Only those in this state.",
)
@json_option
def list_(
    path: Path, table: str | None, reason: str | None, state: str | None, as_json: bool
) -> None:
    """One line per dead letter: id, state, table, key, reason, source position,
    when it was set aside, and the topic:partition:offset of the original message."""
    from sinks.dlq.letters import select  # noqa: PLC0415

    with _session("list", path) as session:
        letters = session.letters()
        known = session.known_tables() if table is not None else []
        chosen = select(letters, (), table, reason, known)
    if state is not None:
        chosen = [letter for letter in chosen if letter.state == state]
    if not chosen and not as_json:
        click.echo(f"{_nothing(state or '', table, reason)} on {session.topic}")
        return
    print_list(chosen, as_json)


@dlq.command()
@config_option
@click.argument("dead_letter_id", metavar="ID")
@json_option
def show(path: Path, dead_letter_id: str, as_json: bool) -> None:
    """One dead letter whole: its value decoded, the error, its headers, its state."""
    from sinks.dlq.letters import select  # noqa: PLC0415

    with _session("show", path) as session:
        letters = session.letters()
        (letter,) = select(letters, [dead_letter_id])
    print_letter(letter, as_json)


@dlq.command()
@config_option
@click.argument("ids", nargs=-1, metavar="[ID]...")
@click.option("--all", "every", is_flag=True, help="Every pending dead letter.")
@table_option
@reason_option
@json_option
def redrive(
    path: Path,
    ids: tuple[str, ...],
    every: bool,
    table: str | None,
    reason: str | None,
    as_json: bool,
) -> None:
    """Apply pending dead letters again, through the sink's applier, once their
    cause is fixed. One is applied only if no later change of its row reached the
    target since (none of its key between it and the sink's position in its
    partition); otherwise it is superseded, not applied. What is done is recorded:
    a second redrive applies nothing again. Stop the sink first."""
    with _session("redrive", path) as session:
        pending, handled = _selected("redrive", session, ids, every, table, reason)
        _said_handled(handled, ids, "redriven")
        if not pending:
            if not ids:
                click.echo(f"nothing to redrive: {_nothing('pending', table, reason)}")
            return
        _refuse_while_running("redrive", session)
        outcomes = session.redrive(pending)
    print_outcomes(outcomes, as_json)
    counts = {r: sum(o.result == r for o in outcomes) for r in ("redriven", "superseded")}
    left = [o for o in outcomes if o.result in ("refused", "kept")]
    if not as_json:
        click.echo(
            f"redriven {counts['redriven']}, superseded {counts['superseded']},"
            f" left pending {len(left)}"
        )
    if left:
        raise SystemExit(EXIT_FAILED)


@dlq.command()
@config_option
@click.argument("ids", nargs=-1, metavar="[ID]...")
@click.option("--all", "every", is_flag=True, help="Every pending dead letter.")
@table_option
@reason_option
def skip(
    path: Path, ids: tuple[str, ...], every: bool, table: str | None, reason: str | None
) -> None:
    """Mark pending dead letters handled without applying them (acknowledge)."""
    with _session("skip", path) as session:
        pending, handled = _selected("skip", session, ids, every, table, reason)
        _said_handled(handled, ids, "skipped")
        if not pending:
            if not ids:
                click.echo(f"nothing to skip: {_nothing('pending', table, reason)}")
            return
        session.skip(pending, "skipped by cdc dlq skip")
    click.echo(f"skipped {len(pending)} dead letters: {', '.join(str(one.id) for one in pending)}")


@dlq.command("skip-offset")
@config_option
@click.argument("topic")
@click.argument("partition", type=click.IntRange(min=0))
@click.argument("offset", type=click.IntRange(min=0))
def skip_offset(path: Path, topic: str, partition: int, offset: int) -> None:
    """Move the sink past the message at the head of TOPIC's PARTITION (the one at
    OFFSET, where the sink stands), setting it aside on the dead-letter topic
    first (reason skipped): for a message the sink cannot get past. Stop the sink
    first."""
    with _session("skip-offset", path) as session:
        _refuse_while_running("skip-offset", session)
        done = session.skip_offset(topic, partition, offset)
    click.echo(
        f"skipped {done.topic}:{done.partition} offset {done.offset} ({done.table}):"
        f" set aside as dead letter {done.dead_letter_id}; the sink goes on at {done.offset + 1}"
    )
