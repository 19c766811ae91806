"""What every command that reads a pipeline file shares."""

from __future__ import annotations

from pathlib import Path

import click

from cdc.secrets import redact
from cdc.settings import Settings
from cdc.settings_issues import ConfigError
from cdc.settings_load import load_settings
from transforms.registry import check as check_transforms

# Exit status for a configuration the user must fix (click uses 2 for usage errors too).
EXIT_CONFIG = 2

config_option = click.option(
    "-c",
    "--config",
    "path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The pipeline's YAML file.",
)


def load_or_exit(path: Path) -> Settings:
    """The settings, or every problem on stderr (one per line) and exit 2."""
    try:
        return load_settings(path, check_transforms=check_transforms)
    except ConfigError as error:
        for issue in error.issues:
            click.echo(redact(str(issue)), err=True)
        raise SystemExit(EXIT_CONFIG) from None
