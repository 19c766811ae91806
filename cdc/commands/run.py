"""`cdc run`: the daemon."""

from __future__ import annotations

from pathlib import Path

import click

from cdc import logs
from cdc.app import daemon
from cdc.app.lifecycle import Stopper, run_logged
from cdc.commands.common import config_option, load_or_exit


@click.command()
@config_option
@click.option(
    "--role",
    type=click.Choice(["source", "sink", "all"]),
    help="source: the database's changes into Kafka; sink: Kafka into the target; all: both"
    " (the default when the pipeline has a target, else source).",
)
@click.option(
    "--grace-seconds",
    type=click.FloatRange(min=0),
    default=30.0,
    show_default=True,
    help="on SIGTERM/SIGINT, how long to wait for Kafka acknowledgements and the last sink"
    " transaction before exiting (keep it under systemd's TimeoutStopSec and Kubernetes'"
    " terminationGracePeriodSeconds).",
)
def run(path: Path, role: str | None, grace_seconds: float) -> None:
    """Run the pipeline until SIGTERM/SIGINT (a second signal exits at once)."""
    settings = load_or_exit(path)
    role = role or ("all" if settings.target is not None else "source")
    logs.configure(settings.log.format, settings.log.level)
    stopper = Stopper()
    stopper.install()
    status = run_logged(role, lambda: daemon.run(settings, role, stopper, grace_seconds, path))
    if status:
        raise SystemExit(status)
