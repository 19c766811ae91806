"""`cdc verify`: compare the target's tables with the source's, row for row."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import click
from pydantic import ValidationError

from cdc.commands.common import EXIT_CONFIG, config_option
from cdc.commands.workflow import load
from cdc.secrets import redact
from cdc.settings import MetricsSettings

if TYPE_CHECKING:
    from cdc.migrate.verify.run import TableResult, VerifyReport

KEYS_SHOWN = 10  # per kind and table in the human output; --json lists more


def _address(
    _ctx: click.Context, _param: click.Parameter, value: str | None
) -> tuple[str, int] | None:
    if value is None:
        return None
    try:
        return MetricsSettings(listen=value).address
    except ValidationError:
        raise click.BadParameter("must be host:port, for example 127.0.0.1:9188") from None


@click.command()
@config_option
@click.option(
    "--tables",
    metavar="LIST",
    help="Only these tables: schema.table,... (source names). Default: every table of the"
    " pipeline.",
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option(
    "--chunk-rows",
    type=click.IntRange(min=2),
    default=10_000,
    show_default=True,
    help="Source rows per compared key range.",
)
@click.option(
    "--wait-timeout",
    type=click.FloatRange(min=0),
    default=120.0,
    show_default=True,
    help="Seconds to wait for the sink to apply in-flight changes before rows found"
    " different are reported (0: report them at once, unconfirmed).",
)
@click.option(
    "--metrics-listen",
    metavar="HOST:PORT",
    callback=_address,
    help="Serve /metrics (cdc_verify_*) here while verify runs.",
)
def verify(
    path: Path,
    tables: str | None,
    as_json: bool,
    chunk_rows: int,
    wait_timeout: float,
    metrics_listen: tuple[str, int] | None,
) -> None:
    """Compare every table of the pipeline on the source and the target: row counts and
    checksums per primary-key range, bisected down to the rows that differ. It may run
    while replication is live: rows found different are checked again once the sink has
    applied what the source had then, and only rows still different are reported.

    The result is recorded in the target's cdc_verify_runs table.

    Exit status: 0 equal, 1 different, 2 could not run (the reason on stderr).
    Rows still different when the sink did not catch up within --wait-timeout are
    reported as unconfirmed (exit 1).
    """
    # Imported here: other commands need no database drivers for verify.
    from cdc.app.engines import engine_for  # noqa: PLC0415
    from cdc.health import Health, serve  # noqa: PLC0415
    from cdc.migrate.verify.run import VerifyError  # noqa: PLC0415
    from cdc.migrate.verify.run import verify as run_verify  # noqa: PLC0415

    settings = load(path)
    server = serve(metrics_listen, Health()) if metrics_listen is not None else None
    names = [t.strip() for t in tables.split(",") if t.strip()] if tables else None
    try:
        report = run_verify(
            settings,
            engine_for,
            names,
            chunk_rows=chunk_rows,
            wait_timeout_s=wait_timeout,
            on_table=None if as_json else _progress,
        )
    except VerifyError as exc:
        click.echo(redact(f"cdc verify: {exc}"), err=True)
        raise SystemExit(EXIT_CONFIG) from None
    except Exception as exc:  # Kafka or a database went away mid-run: no verdict
        click.echo(redact(f"cdc verify: could not finish: {type(exc).__name__}: {exc}"), err=True)
        raise SystemExit(EXIT_CONFIG) from None
    finally:
        if server is not None:
            server.shutdown()
    if as_json:
        click.echo(json.dumps(report.to_json(), indent=2))
    else:
        _print_human(report)
    for result in report.tables:
        if result.status == "error":
            click.echo(redact(f"cdc verify: {result.table}: {result.reason}"), err=True)
    raise SystemExit(report.exit_code)


def _progress(result: TableResult) -> None:
    click.echo(f"checked {result.table}: {result.status}", err=True)


def _print_human(report: VerifyReport) -> None:
    from rich.console import Console  # noqa: PLC0415
    from rich.table import Table  # noqa: PLC0415

    table = Table(
        "TABLE", "TARGET", "STATUS", "ROWS", "CHUNKS", "HASHING", "MISSING", "EXTRA", "DIFFERING"
    )
    for r in report.tables:
        table.add_row(
            r.table,
            r.target,
            r.status + (" (unconfirmed)" if r.unconfirmed else ""),
            str(r.rows),
            str(r.chunks),
            r.hashing or "-",  # database | python; none for a table not compared
            str(r.missing),
            str(r.extra),
            str(r.differing),
        )
    console = Console(highlight=False)
    if not console.is_terminal:
        console.width = 1000  # a pipe or file: never cut names short; the table keeps its size
    console.print(table)
    for r in report.tables:
        if r.reason:
            console.print(f"{r.table}: {r.reason}", markup=False)
        for kind, keys in r.keys.items():
            shown = ", ".join(json.dumps(k, ensure_ascii=False) for k in keys[:KEYS_SHOWN])
            more = len(keys) - KEYS_SHOWN
            suffix = f" and {more} more (--json lists them)" if more > 0 else ""
            console.print(f"{r.table} {kind}: {shown}{suffix}", markup=False)
        if r.busy:
            console.print(
                f"{r.table}: {r.busy} rows changed between every two re-checks (busy keys,"
                " in flight through the stream): not counted as different",
                markup=False,
            )
        if r.unconfirmed:
            console.print(
                f"{r.table}: the sink did not catch up within the wait timeout, so these rows"
                " may still be in flight; run verify again with the sink running",
                markup=False,
            )
    console.print("equal" if report.equal else "different", markup=False)
