"""`cdc schema`: the target DDL of a pipeline's tables; printed, or applied."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, NoReturn

import click
from rich.console import Console
from rich.table import Table

from cdc.app.engines import engine_for
from cdc.commands.common import EXIT_CONFIG, config_option, load_or_exit
from cdc.ddl.model import AFTER_COPY, TABLES, Statement
from cdc.engine import Sides
from cdc.migrate.schema.apply import Outcome, apply
from cdc.migrate.schema.plan import SchemaPlan, build
from cdc.secrets import redact
from cdc.settings import Settings

EXIT_PROBLEMS = 1
EXIT_COULD_NOT_RUN = 2
_PHASES = {"all": (TABLES, AFTER_COPY), "tables": (TABLES,), "after-copy": (AFTER_COPY,)}
_HEADINGS: dict[str, str] = {
    TABLES: "Tables, with primary and unique keys: create them before the initial copy",
    AFTER_COPY: "After the initial copy: secondary indexes and foreign keys"
    " (faster built once over all rows than kept up row by row)",
}


def _fail(message: str) -> NoReturn:
    click.echo(redact(f"cdc schema: {message}"), err=True)
    raise SystemExit(EXIT_COULD_NOT_RUN)


def _plan_and_apply(
    settings: Settings, sides: Sides, run: bool, phases: tuple[str, ...]
) -> tuple[SchemaPlan, list[Outcome]]:
    plan = build(settings, sides, sides.source.table_defs(), sides.target.ddl())
    if not run:
        return plan, []
    wanted = [s for s in plan.statements if s.phase in phases]
    with sides.target.catalog() as catalog:
        return plan, apply(catalog, wanted, sides.target.errors)


def _statement_json(statement: Statement) -> dict[str, str]:
    return {
        "phase": statement.phase,
        "kind": statement.kind,
        "target": statement.target,
        "name": statement.name,
        "sql": statement.sql,
        "comment": statement.comment,
    }


def _print_sql(plan: SchemaPlan, phases: tuple[str, ...]) -> None:
    click.echo(f"-- cdc schema: {plan.source} -> {plan.target}, {len(plan.tables)} tables")
    for phase in phases:
        click.echo(f"\n-- {_HEADINGS[phase]}")
        for statement in plan.phase(phase):
            comment = "".join(f"\n-- {line}" for line in statement.comment.splitlines())
            click.echo(f"{comment}\n{statement.sql};")


def _print_outcomes(outcomes: list[Outcome]) -> None:
    table = Table(title="cdc schema --apply")
    table.add_column("object", no_wrap=True)
    table.add_column("result", no_wrap=True)
    styles = {"created": "green", "exists": "dim", "differs": "yellow", "failed": "red"}
    for outcome in outcomes:
        statement = outcome.statement
        kind = statement.kind.replace("_", " ")
        table.add_row(
            f"{kind} {statement.target}", f"[{styles[outcome.action]}]{outcome.action}[/]"
        )
    console = Console(soft_wrap=True)
    console.print(table)
    for outcome in outcomes:  # below the table: a narrow terminal keeps them readable
        for detail in outcome.details:
            console.print(f"{outcome.statement.target} {outcome.action}: {detail}", markup=False)


@click.command()
@config_option
@click.option(
    "--apply",
    "run",
    is_flag=True,
    help="Create what the target lacks (existing objects are compared, never dropped).",
)
@click.option(
    "--phase",
    type=click.Choice(list(_PHASES)),
    default="all",
    show_default=True,
    help="tables: before the initial copy; after-copy: secondary indexes and foreign keys.",
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def schema(path: Path, run: bool, phase: str, as_json: bool) -> None:
    """Generate the target's DDL from the source catalog: columns with their types
    translated for the target engine, nullability, defaults that translate, primary
    and unique keys, then secondary indexes and foreign keys. Prints it (notes on
    stderr), or with --apply creates what the target lacks.

    Exit status: 0 done, 1 problems (types without a translation, tables that
    differ from the source's, statements the target refused), 2 could not run.
    """
    settings = load_or_exit(path)
    if settings.target is None:
        click.echo(f"cdc schema: {path} has no target: there is no schema to create", err=True)
        raise SystemExit(EXIT_CONFIG)
    phases = _PHASES[phase]
    sides = Sides.of(settings, engine_for)
    try:
        plan, outcomes = _plan_and_apply(settings, sides, run, phases)
    except (*sides.source.errors, *sides.target.errors) as exc:
        _fail(f"{type(exc).__name__}: {str(exc).strip()}")
    failed = [o for o in outcomes if o.action in ("differs", "failed")]
    ok = not plan.notes.problems and not failed
    if as_json:
        report: dict[str, Any] = {
            "ok": ok,
            "source": plan.source,
            "target": plan.target,
            "tables": [t.qualified for t in plan.tables],
            "statements": [_statement_json(s) for s in plan.statements if s.phase in phases],
            "notes": [
                {"table": n.table, "column": n.column, "severity": n.severity, "message": n.message}
                for n in plan.notes.items
            ],
        }
        if run:
            report["applied"] = [
                {**_statement_json(o.statement), "result": o.action, "details": o.details}
                for o in outcomes
            ]
        click.echo(json.dumps(report, indent=2))
    else:
        if run:
            _print_outcomes(outcomes)
        else:
            _print_sql(plan, phases)
        for note in plan.notes.items:
            click.echo(str(note), err=True)
    if not ok:
        raise SystemExit(EXIT_PROBLEMS)
