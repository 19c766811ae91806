"""`cdc config ...`: check and print a pipeline configuration."""

from __future__ import annotations

import json
from pathlib import Path

import click
import yaml

from cdc.secrets import redact
from cdc.settings import json_schema
from cdc.settings_load import ConfigError, load_settings

# Exit status for a configuration the user must fix (click uses 2 for usage errors too).
EXIT_CONFIG = 2


@click.group()
def config() -> None:
    """Work with a pipeline configuration file."""


@config.command()
@click.option(
    "-c",
    "--config",
    "path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The pipeline's YAML file.",
)
def check(path: Path) -> None:
    """Validate FILE; print the resolved configuration (secrets masked) or every problem found.

    Exits 0 when the file is valid, 2 otherwise (problems on stderr, one per line).
    """
    try:
        settings = load_settings(path)
    except ConfigError as error:
        for issue in error.issues:
            click.echo(redact(str(issue)), err=True)
        raise SystemExit(EXIT_CONFIG) from None
    text = yaml.safe_dump(settings.masked(), sort_keys=False, allow_unicode=True)
    click.echo(redact(text), nl=False)


@config.command()
def schema() -> None:
    """Print the JSON schema of the configuration file (as committed in config/schema.json)."""
    click.echo(json.dumps(json_schema(), indent=2))
