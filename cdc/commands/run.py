"""`cdc run`: the daemon."""

from __future__ import annotations

from pathlib import Path

import click
import structlog

from cdc import logs
from cdc.daemon import Stopper, run_source
from cdc.errors import TerminalError
from cdc.secrets import redact
from cdc.settings_load import ConfigError, load_settings


@click.command()
@click.option(
    "-c",
    "--config",
    "path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The pipeline's YAML file.",
)
@click.option(
    "--role",
    type=click.Choice(["source"]),
    default="source",
    show_default=True,
    help="source: read the database's changes into Kafka.",
)
def run(path: Path, role: str) -> None:
    """Run the pipeline until SIGTERM/SIGINT (a second signal exits at once)."""
    try:
        settings = load_settings(path)
    except ConfigError as error:
        for issue in error.issues:
            click.echo(redact(str(issue)), err=True)
        raise SystemExit(2) from None
    logs.configure(settings.log.format, settings.log.level)
    log = structlog.get_logger("cdc")
    stopper = Stopper()
    stopper.install()
    try:
        run_source(settings, stopper)
    except TerminalError as error:
        log.error("stopped", error=error.message, fix=error.remedy, role=role)
        raise SystemExit(1) from None
