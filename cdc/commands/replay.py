"""`cdc replay`: rewind the sink's positions in the target, to re-apply from there."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, NoReturn

import click

from cdc.commands.common import EXIT_CONFIG, config_option, load_or_exit
from cdc.secrets import redact

EXIT_FAILED = 1  # the sink is running, or a server could not be reached


def _fail(message: str, code: int) -> NoReturn:
    click.echo(redact(f"cdc replay: {message}"), err=True)
    raise SystemExit(code)


@click.command()
@config_option
@click.option(
    "--from-timestamp",
    "timestamp",
    metavar="T",
    help="Re-apply every change Kafka received at or after T: ISO-8601"
    " (2024-05-01T10:00:00Z; without an offset, UTC) or epoch milliseconds.",
)
@click.option(
    "--from-offsets",
    "offsets",
    metavar="SPEC",
    help="Re-apply from these offsets: topic:partition:offset,... (other partitions stay).",
)
@click.option("--dry-run", is_flag=True, help="Print the current and new offsets; change nothing.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def replay(
    path: Path, timestamp: str | None, offsets: str | None, dry_run: bool, as_json: bool
) -> None:
    """Move the sink's stored offsets (the target's cdc_offsets) back, so that the next
    `cdc run --role sink` re-applies the changes from there. Offsets only move back;
    applying a change again yields the same rows.

    Stop the sink first: a running sink keeps its own positions and would write them
    back. The command refuses while the pipeline's consumer group has members (a
    killed sink stays a member until the session timeout, 10 s by default).

    Exit status: 0 done (or nothing to rewind), 1 the sink is running or a server
    could not be reached, 2 bad input (options, configuration, unknown partition,
    an offset past the sink's position or before what Kafka still holds).
    """
    # Imported here: `cdc config` and `cdc run --role source` need no sink code.
    from cdc.app.appliers import build_applier  # noqa: PLC0415
    from sinks.replay import (  # noqa: PLC0415
        Replay,
        ReplayInputError,
        parse_offsets,
        parse_timestamp,
        rewind,
        stored_offsets,
    )

    if (timestamp is None) == (offsets is None):
        _fail("give exactly one of --from-timestamp and --from-offsets", EXIT_CONFIG)
    settings = load_or_exit(path)
    if settings.target is None:
        _fail(f"{path} has no target: there is no sink to replay", EXIT_CONFIG)
    try:
        ts_ms = parse_timestamp(timestamp) if timestamp is not None else None
        spec = parse_offsets(offsets) if offsets is not None else {}
    except ReplayInputError as exc:
        _fail(str(exc), EXIT_CONFIG)
    kafka = Replay(settings)
    try:
        members = kafka.active_members()
        if members and not dry_run:
            _fail(
                f"the sink is running: consumer group {kafka.group} has {members} member(s)."
                " Stop it first (a killed sink leaves the group after the session timeout)",
                EXIT_FAILED,
            )
        partitions = kafka.partitions()
        applier = build_applier(settings)
        try:
            stored = stored_offsets(applier, partitions)
            if ts_ms is not None:
                moves = kafka.from_timestamp(ts_ms, stored, partitions)
            else:
                moves = kafka.from_offsets(spec, stored, partitions)
            changed = 0 if dry_run else rewind(applier, moves)
        finally:
            applier.close()
    except ReplayInputError as exc:
        _fail(str(exc), EXIT_CONFIG)
    except Exception as exc:  # a server down, a refused connection: nothing was changed
        _fail(f"{type(exc).__name__}: {exc}", EXIT_FAILED)
    finally:
        kafka.close()
    report: dict[str, Any] = {
        "dry_run": dry_run,
        "group": kafka.group,
        "from": {"timestamp_ms": ts_ms} if ts_ms is not None else {"offsets": offsets},
        "sink_members": members,
        "changed": changed if not dry_run else sum(m.changed for m in moves),
        "partitions": [
            {
                "topic": m.topic,
                "partition": m.partition,
                "current": m.current,
                "new": m.new if m.new is not None else m.current,
                "earliest": m.earliest,
                "end": m.end,
                "replayed": m.replayed,
                **({"note": m.note} if m.note else {}),
            }
            for m in moves
        ],
    }
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    _print_human(report, members)


def _print_human(report: dict[str, Any], members: int | None) -> None:
    rows = report["partitions"]
    width = max([len("TOPIC"), *(len(r["topic"]) for r in rows)])

    def shown(value: int | None) -> str:
        return "-" if value is None else str(value)

    click.echo(f"{'TOPIC':<{width}}  PARTITION  {'CURRENT':>10}  {'NEW':>10}  REPLAYED")
    for r in rows:
        click.echo(
            f"{r['topic']:<{width}}  {r['partition']:>9}  {shown(r['current']):>10}"
            f"  {shown(r['new']):>10}  {r['replayed']:>8}"
            + (f"  ({r['note']})" if "note" in r else "")
        )
    replayed = sum(r["replayed"] for r in rows)
    if report["dry_run"]:
        note = " (the sink is running: stop it before the real replay)" if members else ""
        click.echo(
            f"dry run: {report['changed']} of {len(rows)} partitions would move back,"
            f" {replayed} messages re-applied; nothing changed{note}"
        )
    elif report["changed"]:
        click.echo(
            f"rewound {report['changed']} of {len(rows)} partitions in the target's cdc_offsets:"
            f" the next sink run re-applies {replayed} messages"
        )
    else:
        click.echo("nothing to rewind: the sink already stands at or before those offsets")
