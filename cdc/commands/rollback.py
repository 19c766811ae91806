"""`cdc rollback`: give writes back to the source after (or during) a cut-over."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import click

from cdc.commands.common import config_option
from cdc.commands.workflow import (
    EXIT_NOT_DONE,
    echo_json,
    fail,
    json_option,
    metrics_option,
    progress,
    run_step,
)


@click.command()
@config_option
@json_option
@metrics_option
def rollback(path: Path, as_json: bool, metrics_listen: str | None) -> None:
    """Roll a cut-over back: fence writes on the target, wait until the reverse
    pipeline applied every change made there to the source, and lift the source's
    fence. A cut-over that did not finish only needs the source's fence lifted.
    Then the reverse pipeline's slot on the target is dropped; while that pipeline
    still reads it, a warning says so: stop it and run `cdc rollback` again.
    Each step is recorded: run it again after an interruption; once rolled back,
    running it again does nothing.

    Exit status: 0 rolled back (or already, or no cut-over to roll back), 1 a step
    could not finish (the reverse pipeline did not catch up in
    cutover.fence.timeout_s), 2 could not run.
    """
    from cdc.app.engines import engine_for  # noqa: PLC0415
    from cdc.migrate.cutover.rollback import rollback as run_rollback  # noqa: PLC0415

    report = run_step(
        "rollback",
        path,
        metrics_listen,
        lambda settings: run_rollback(settings, progress(as_json), engine_for),
    )
    if as_json:
        echo_json(dataclasses.asdict(report))
    else:
        for warning in report.warnings:
            click.echo(f"warning: {warning}", err=True)
        if report.window_s is not None and report.outcome == "done":
            click.echo(f"rolled back: writes were unavailable for {report.window_s:.3f} s")
    if report.outcome == "step_failed":
        fail("rollback", f"{report.failed_step} failed: {report.reason}", EXIT_NOT_DONE)
