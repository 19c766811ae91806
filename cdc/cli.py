"""The `cdc` command line: one group, each command in its own module.

Commands are imported when they run, not at start-up: the daemon (`cdc run`)
does not pay for the migration commands' imports on every start or restart.
"""

from __future__ import annotations

import importlib

import click

from cdc import __version__, logs

# name -> module in cdc.commands holding the click command of that name
COMMANDS = {
    "config": "config",
    "run": "run",
    "replay": "replay",
    "dlq": "dlq",
    "assess": "assess",
    "schema": "schema",
    "verify": "verify",
    "cutover": "cutover",
    "rollback": "rollback",
    "status": "status",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        module = COMMANDS.get(cmd_name)
        if module is None:
            return None
        command = getattr(importlib.import_module(f"cdc.commands.{module}"), cmd_name)
        assert isinstance(command, click.Command)
        return command


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="cdc")
def main() -> None:
    """Stream changes from PostgreSQL or MySQL/MariaDB through Kafka into a target database."""
    # Until a command reads its pipeline's `log:` section: JSON lines on stderr
    # (stdout is a command's report), not structlog's default of every level on stdout.
    logs.configure()
