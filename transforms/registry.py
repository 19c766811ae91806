"""Transforms by `type` name, and building them from the `transforms:` list of the config.

`build` is what the sink calls; `check` is what config loading calls, so
`cdc config check` reports every bad option at `transforms[i].<option>`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from difflib import get_close_matches

from cdc.settings import TransformSettings
from transforms import (
    add_column,
    cast,
    columns,
    mask,
    python,
    rename_column,
    rename_table,
    route,
)
from transforms import filter as row_filter  # not `filter`: that is a builtin
from transforms.base import OptionError, Transform, TransformConfigError, TransformIssue
from transforms.options import Options, TableSelector

Selects = Callable[[str, str], bool]


@dataclass(frozen=True)
class Spec:
    build: Callable[[Options], Transform]
    options: Mapping[str, str] | None  # option -> what it takes; None: any (python)


REGISTRY: dict[str, Spec] = {
    "rename_table": Spec(rename_table.build, rename_table.OPTIONS),
    "rename_column": Spec(rename_column.build, rename_column.OPTIONS),
    "columns": Spec(columns.build, columns.OPTIONS),
    "filter": Spec(row_filter.build, row_filter.OPTIONS),
    "mask": Spec(mask.build, mask.OPTIONS),
    "cast": Spec(cast.build, cast.OPTIONS),
    "add_column": Spec(add_column.build, add_column.OPTIONS),
    "route": Spec(route.build, route.OPTIONS),
    "python": Spec(python.build, python.OPTIONS),
}


def build(settings_list: Sequence[TransformSettings]) -> list[Transform]:
    """The transforms, in config order; `TransformConfigError` lists every problem."""
    transforms, issues = _build_all(enumerate(settings_list), None)
    if issues:
        raise TransformConfigError(issues)
    return transforms


def check(
    entries: Iterable[tuple[int, TransformSettings]], selects: Selects | None = None
) -> list[TransformIssue]:
    """Every problem of these (index, settings) entries. With `selects` (the source's table
    selection), a transform naming a table exactly must name one the source captures: a
    misspelt table in a `mask` would otherwise leak the column it was meant to hide."""
    return _build_all(entries, selects)[1]


def _build_all(
    entries: Iterable[tuple[int, TransformSettings]], selects: Selects | None
) -> tuple[list[Transform], list[TransformIssue]]:
    transforms: list[Transform] = []
    issues: list[TransformIssue] = []
    for index, settings in entries:
        try:
            transform = build_one(settings)
        except OptionError as exc:
            issues.append(TransformIssue(index, exc.option, exc.message, exc.hint))
            continue
        tables = getattr(transform, "tables", None)
        if selects is not None and isinstance(tables, TableSelector) and tables.exact:
            for name in tables.patterns:
                schema, _, table = name.partition(".")
                if not selects(schema, table):
                    issues.append(
                        TransformIssue(
                            index,
                            "table",
                            f"{name} is not among the tables the source captures",
                            "name a table that source.tables selects, by its source name",
                        )
                    )
        transforms.append(transform)
    return transforms, issues


def build_one(settings: TransformSettings) -> Transform:
    """One transform; `OptionError` naming the option that is wrong."""
    spec = REGISTRY.get(settings.type)
    if spec is None:
        close = get_close_matches(settings.type, list(REGISTRY), n=1)
        raise OptionError(
            "type",
            f"unknown transform type; known: {', '.join(REGISTRY)}",
            f"did you mean {close[0]}?" if close else "python: factory: ... for your own",
        )
    raw = settings.options
    if spec.options is not None:
        for name in raw:
            if name not in spec.options:
                close = get_close_matches(name, list(spec.options), n=1)
                allowed = ", ".join(spec.options)
                raise OptionError(
                    name,
                    f"unknown option {name} for {settings.type}; allowed: {allowed}",
                    f"did you mean {close[0]}?" if close else "remove it",
                )
    return spec.build(Options(raw, spec.options or {}))
