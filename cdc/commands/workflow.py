"""What `cdc cutover`, `cdc rollback`, `cdc status` and `cdc verify` share: loading
a pipeline (with a target), progress lines, errors and exit status, the metrics
endpoint, the JSON report."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn, TypeVar

import click

from cdc import logs
from cdc.commands.common import EXIT_CONFIG, load_or_exit
from cdc.errors import TerminalError
from cdc.secrets import redact
from cdc.settings import Settings

T = TypeVar("T")

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


def run_step(
    command: str, path: Path, metrics_listen: str | None, action: Callable[[Settings], T]
) -> T:
    """`action` on the pipeline at `path` (it needs a target), the metrics endpoint
    serving meanwhile; whatever stops it ends the command with exit 2 and the reason."""
    settings = load_with_target(command, path)
    try:
        serve_metrics(metrics_listen)
        return action(settings)
    except TerminalError as exc:
        fail(command, str(exc), EXIT_COULD_NOT_RUN)
    except Exception as exc:  # a server down, a refused privilege: say what and stop
        fail(command, f"{type(exc).__name__}: {exc}", EXIT_COULD_NOT_RUN)


def echo_json(document: object) -> None:
    """A report on stdout as JSON, secrets redacted."""
    click.echo(redact(json.dumps(document, indent=2, default=str)))
