"""`cdc config ...`: check and print a pipeline configuration."""

from __future__ import annotations

import click


@click.group()
def config() -> None:
    """Work with a pipeline configuration file."""
