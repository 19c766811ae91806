"""What `cdc cutover`, `cdc rollback` and `cdc status` share: loading a pipeline
with a target, progress lines, errors and exit status, the metrics endpoint."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

import click

from cdc import logs
from cdc.commands.common import EXIT_CONFIG, load_or_exit
from cdc.secrets import redact
from cdc.settings import Settings

EXIT_NOT_DONE = 1  # a gate failed, or a step could not finish (the reason says which)
EXIT_COULD_NOT_RUN = 2

metrics_option = click.option(
    "--metrics-listen",
    metavar="HOST:PORT",
    help="Serve /metrics (cdc_cutover_phase, cdc_cutover_write_unavailable_seconds) meanwhile.",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")


def fail(command: str, message: str, code: int) -> NoReturn:
    click.echo(redact(f"cdc {command}: {message}"), err=True)
    raise SystemExit(code)


def load(path: Path) -> Settings:
    """The settings, logging configured (to stderr: stdout is the report)."""
    settings = load_or_exit(path)
    logs.configure(settings.log.format, settings.log.level)
    return settings


def load_with_target(command: str, path: Path) -> Settings:
    settings = load(path)
    if settings.target is None:
        fail(command, f"{path} has no target: add a target: section", EXIT_CONFIG)
    return settings


def serve_metrics(listen: str | None) -> None:
    if listen:
        from prometheus_client import start_http_server  # noqa: PLC0415

        host, _, port = listen.rpartition(":")
        start_http_server(int(port), addr=host.strip("[]") or "127.0.0.1")


def progress(as_json: bool) -> Callable[[str, str], None]:
    """Prints each step as it happens (not with --json: one document at the end)."""

    def say(step: str, detail: str) -> None:
        if not as_json:
            click.echo(redact(f"{step:<20} {detail}"))

    return say
