"""`cdc cutover`: switch writes from the source to the target."""

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
def cutover(path: Path, as_json: bool, metrics_listen: str | None) -> None:
    """Cut over to the target: check the gates (lag, dead letters, last verify), fence
    writes on the source, wait until the sink applied the last change, move sequences
    and AUTO_INCREMENT above the source's, verify, and report how long writes were
    unavailable. With cutover.reverse: true, also write the reverse pipeline's file
    (target back to source; run it with `cdc run -c FILE`).

    Every step is recorded on the target (cdc_cutover): run it again after an
    interruption to continue, or `cdc rollback` to undo. A finished cut-over run
    again does nothing.

    Exit status: 0 cut over (or already), 1 a gate failed or a step could not finish
    (which and why on stderr), 2 could not run (configuration, a server unreachable).
    """
    from cdc.app.engines import engine_for  # noqa: PLC0415
    from cdc.migrate.cutover.run import cutover as run_cutover  # noqa: PLC0415

    report = run_step(
        "cutover",
        path,
        metrics_listen,
        lambda settings: run_cutover(settings, path, progress(as_json), engine_for),
    )
    if as_json:
        echo_json(dataclasses.asdict(report))
    elif report.window_s is not None and report.outcome == "done":
        click.echo(f"cut over: writes were unavailable for {report.window_s:.3f} s")
        if report.reverse_config:
            click.echo(f"reverse pipeline: run `cdc run -c {report.reverse_config}`")
    if report.outcome in ("gate_failed", "step_failed"):
        fail("cutover", f"{report.failed_step} failed: {report.reason}", EXIT_NOT_DONE)
