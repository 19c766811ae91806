"""`cdc status`: one screen on where a pipeline stands."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import click

from cdc.commands.common import config_option
from cdc.commands.workflow import EXIT_COULD_NOT_RUN, echo_json, fail, json_option, load


@click.command()
@config_option
@json_option
def status(path: Path, as_json: bool) -> None:
    """Show, per pipeline (and its reverse after a cut-over) and table: the phase
    (snapshot, streaming, cutting over, cut over, rolled back), the source's lag
    and bytes not yet in Kafka, per table the sink's lag in seconds and messages,
    what the source retains (PostgreSQL slot WAL, MySQL binlogs), dead letters,
    the last verify and the latest source schema changes the target followed or
    ignored.

    Exit status: 0 shown, 2 could not run (configuration, a server unreachable).
    """
    from cdc.app.engines import engine_for  # noqa: PLC0415
    from cdc.migrate.status.run import status as read_status  # noqa: PLC0415

    settings = load(path)
    try:
        found = read_status(settings, engine_for)
    except Exception as exc:  # a server down: say which and stop
        fail("status", f"{type(exc).__name__}: {exc}", EXIT_COULD_NOT_RUN)
    if as_json:
        echo_json([dataclasses.asdict(pipeline) for pipeline in found])
        return
    for pipeline in found:
        verify = "unknown"
        if pipeline.last_verify is not None:
            at, equal = pipeline.last_verify
            verify = f"{'equal' if equal else 'DIFFERENT'} at {at.isoformat(timespec='seconds')}"
        click.echo(
            f"{pipeline.name}: {pipeline.phase}; source "
            + ("streaming" if pipeline.source_streaming else "NOT streaming")
            + (
                " (no position yet)"
                if pipeline.source_position is None
                else f" at {pipeline.source_position}"
            )
            + f", {_bytes(pipeline.source_lag_bytes)} not yet in Kafka,"
            f" retains {_bytes(pipeline.retained_bytes)}; dead letters {pipeline.dead_letters};"
            f" last verify {verify}"
        )
        if pipeline.source_lag_seconds is not None:
            click.echo(f"  source lag {pipeline.source_lag_seconds:.1f} s (its server to Kafka)")
        # per table only what is in Kafka can be told apart: the sink's part of the lag
        width = max([5, *(len(t.table) for t in pipeline.tables)])
        click.echo(f"  {'TABLE':<{width}}  {'PHASE':<12}  {'SINK LAG S':>10}  {'SINK MSGS':>9}")
        for table in pipeline.tables:
            click.echo(
                f"  {table.table:<{width}}  {table.phase:<12}  {table.lag_seconds:>10.1f}"
                f"  {table.lag_messages:>9}"
            )
        if pipeline.schema_changes:
            click.echo("  schema changes (latest last):")
        for change in pipeline.schema_changes:
            renamed = f" (was {change.previous})" if change.previous else ""
            ddl = f": {change.target_ddl}" if change.target_ddl else ""
            click.echo(
                f"    {change.at}  {change.table}  {change.kind} {change.column}{renamed}"
                f"  {change.action}{ddl}"
            )


def _bytes(value: int | None) -> str:
    return "? bytes" if value is None else f"{value} bytes"
