"""The `cdc` command line: one group, each command in its own module."""

from __future__ import annotations

import click

from cdc import __version__
from cdc.commands.assess import assess
from cdc.commands.config import config
from cdc.commands.cutover import cutover
from cdc.commands.replay import replay
from cdc.commands.rollback import rollback
from cdc.commands.run import run
from cdc.commands.schema import schema
from cdc.commands.status import status
from cdc.commands.verify import verify


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="cdc")
def main() -> None:
    """Stream changes from PostgreSQL or MySQL/MariaDB through Kafka into a target database."""


main.add_command(config)
main.add_command(run)
main.add_command(replay)
main.add_command(schema)
main.add_command(assess)
main.add_command(verify)
main.add_command(cutover)
main.add_command(rollback)
main.add_command(status)
