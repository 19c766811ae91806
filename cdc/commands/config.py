"""`cdc config ...`: check and print a pipeline configuration."""

from __future__ import annotations

import json
from pathlib import Path

import click
import yaml

from cdc.commands.common import config_option, load_or_exit
from cdc.secrets import redact
from cdc.settings import json_schema


@click.group()
def config() -> None:
    """Work with a pipeline configuration file."""


@config.command()
@config_option
def check(path: Path) -> None:
    """Validate FILE; print the resolved configuration (secrets masked) or every problem found.

    Exits 0 when the file is valid, 2 otherwise (problems on stderr, one per line).
    """
    settings = load_or_exit(path)
    text = yaml.safe_dump(settings.masked(), sort_keys=False, allow_unicode=True)
    click.echo(redact(text), nl=False)


@config.command()
def schema() -> None:
    """Print the JSON schema of the configuration file (as committed in config/schema.json)."""
    click.echo(json.dumps(json_schema(), indent=2))
