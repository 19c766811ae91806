"""The `cdc` command line: one group, each command in its own module."""

from __future__ import annotations

import click

from cdc import __version__
from cdc.commands.config import config
from cdc.commands.replay import replay
from cdc.commands.run import run


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="cdc")
def main() -> None:
    """Stream changes from PostgreSQL or MySQL/MariaDB through Kafka into a target database."""


main.add_command(config)
main.add_command(run)
main.add_command(replay)
