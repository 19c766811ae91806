"""`cdc run`: the daemon."""

from __future__ import annotations

from pathlib import Path

import click
import structlog

from cdc import logs
from cdc.commands.common import config_option, load_or_exit
from cdc.daemon import Stopper, run_source
from cdc.errors import TerminalError


@click.command()
@config_option
@click.option(
    "--role",
    type=click.Choice(["source"]),
    default="source",
    show_default=True,
    help="source: read the database's changes into Kafka.",
)
def run(path: Path, role: str) -> None:
    """Run the pipeline until SIGTERM/SIGINT (a second signal exits at once)."""
    settings = load_or_exit(path)
    logs.configure(settings.log.format, settings.log.level)
    log = structlog.get_logger("cdc")
    stopper = Stopper()
    stopper.install()
    try:
        run_source(settings, stopper)
    except TerminalError as error:
        log.error("stopped", error=error.message, fix=error.remedy, role=role)
        raise SystemExit(1) from None
