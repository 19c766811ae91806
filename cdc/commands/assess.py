"""`cdc assess`: is this pipeline ready to migrate, and what will it take."""

from __future__ import annotations

import json
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from cdc.app.engines import engine_for
from cdc.commands.common import config_option, load_or_exit
from cdc.engine.assessment import Assessment, human_size
from cdc.migrate.assess.run import assess as run_assessment
from cdc.secrets import redact

EXIT_BLOCKERS = 1
EXIT_COULD_NOT_RUN = 2
_STYLES = {"ok": "green", "warning": "yellow", "blocker": "bold red"}


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def _print(report: Assessment) -> None:
    console = Console(soft_wrap=True)
    tables = Table(title=f"cdc assess: {report.source} -> {report.target or 'Kafka only'}")
    for column in ("table", "size", "rows", "key", "copy (est.)"):
        tables.add_column(column, no_wrap=column == "table")
    for facts in report.tables:
        rows = "?" if facts.rows is None else f"{facts.rows:,}" + ("" if facts.rows_exact else " ~")
        size = "?" if facts.size_bytes is None else human_size(facts.size_bytes)
        tables.add_row(facts.table, size, rows, facts.key, _duration(facts.copy_seconds))
    console.print(tables)
    for facts in report.tables:
        lines = [f"  {c['column']}: {c['change']}" for c in facts.type_changes]
        lines += [f"  {feature}" for feature in facts.features]
        if lines:
            console.print(f"{facts.table} -> {facts.target or '?'}", style="bold", markup=False)
            for line in lines:
                console.print(line, markup=False)
    checks = Table(title="readiness")
    for column in ("scope", "check", "status", "detail"):
        checks.add_column(column, no_wrap=column in ("check", "status"))
    for check in report.checks:
        style = _STYLES[check.status]
        checks.add_row(check.scope, check.name, f"[{style}]{check.status}[/]", check.detail)
    console.print(checks)
    for check in report.checks:
        if check.status != "ok" and check.fix:
            console.print(
                f"{check.status}: {check.detail}", style=_STYLES[check.status], markup=False
            )
            console.print(f"  fix: {check.fix}", markup=False)
    blockers, warnings = report.count("blocker"), report.count("warning")
    verdict = "ready" if not blockers else "not ready"
    console.print(f"{verdict}: {blockers} blockers, {warnings} warnings", markup=False)


@click.command()
@config_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def assess(path: Path, as_json: bool) -> None:
    """Check both sides before a migration: per table its size, rows, key, the types
    that change on the target and the features the stream cannot carry, and an
    initial copy time measured on a sample; the source server's settings and the
    source user's rights, Kafka, the target user's rights and space.

    Exit status: 0 ready (warnings allowed), 1 blockers (each with its fix),
    2 could not run (bad configuration, source unreachable).
    """
    settings = load_or_exit(path)
    source = engine_for(settings.source)
    target = None if settings.target is None else engine_for(settings.target)
    try:
        report = run_assessment(settings, source, target)
    except source.errors as exc:
        click.echo(
            redact(f"cdc assess: cannot read the source: {type(exc).__name__}: {exc}"), err=True
        )
        raise SystemExit(EXIT_COULD_NOT_RUN) from None
    if as_json:
        click.echo(redact(json.dumps(report.to_json(), indent=2)))
    else:
        _print(report)
    if report.count("blocker"):
        raise SystemExit(EXIT_BLOCKERS)
