"""The house plan, read from the imports: which package may import which, no import cycle
between modules or between packages, no module over 400 lines.

Every import counts, wherever it is written (module level, inside a function, under
`TYPE_CHECKING`): each is an arrow a reader has to follow, and a cycle through a deferred
import is still a cycle in the design.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import ROOT

PACKAGES = ("cdc", "sinks", "transforms")
MAX_LINES = 400

FACE = ("cdc.app", "cdc.cli", "cdc.commands")

# Source -> targets it must never import. A module belongs to the row of the longest name
# that contains it, so the row "cdc" is the core: cdc/ without its face, engines and
# orchestrators, which have rows of their own. Arrows point into the core.
PLAN: dict[str, tuple[str, ...]] = {
    # the core knows no engine, no sink, no transform
    "cdc": ("cdc.postgres", "cdc.mysql", "sinks", "transforms", *FACE),
    # the face wires engines into orchestrators: it may import anything
    "cdc.app": (),
    "cdc.cli": (),
    "cdc.commands": (),
    # orchestrators get their engine objects from the face
    "cdc.migrate": ("cdc.postgres", "cdc.mysql", "sinks", *FACE),
    # an engine's reading side and dialect: not the other engine, not the writing side,
    # not the orchestrators that use it
    "cdc.postgres": ("cdc.mysql", "sinks", "cdc.migrate", *FACE),
    "cdc.mysql": ("cdc.postgres", "sinks", "cdc.migrate", *FACE),
    # the consumer loop and the appliers: no orchestrator; an applier not the other engine
    "sinks": ("cdc.migrate", *FACE),
    "sinks.postgres": ("cdc.mysql", "sinks.mysql", "cdc.migrate", *FACE),
    "sinks.mysql": ("cdc.postgres", "sinks.postgres", "cdc.migrate", *FACE),
    # pure row transforms over the core's Change
    "transforms": ("sinks", "cdc.postgres", "cdc.mysql", "cdc.migrate", *FACE),
}

# Modules allowed over MAX_LINES, each with its reason: generated or data files only.
LONG_MODULES: dict[str, str] = {}


@dataclass(frozen=True)
class Import:
    source: str  # the importing module
    path: Path
    line: int
    target: str  # the most specific module of the project the import names

    def __str__(self) -> str:
        return f"{self.path}:{self.line} {self.source} -> {self.target}"


def within(module: str, name: str) -> bool:
    return module == name or module.startswith(name + ".")


def modules_under(root: Path, packages: Iterable[str]) -> dict[str, Path]:
    """Dotted module name -> file, for every Python file of the packages (a package is
    its `__init__.py`)."""
    modules: dict[str, Path] = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join(parts)] = path
    return modules


def package_of(module: str, modules: Mapping[str, Path]) -> str:
    return module if modules[module].name == "__init__.py" else module.rpartition(".")[0]


def imports_of(modules: Mapping[str, Path], root: Path) -> list[Import]:
    """Every import of a project module, resolved to the most specific project module it
    names: `from cdc.postgres import source` is `cdc.postgres.source`, `from cdc.settings
    import Settings` is `cdc.settings`. Imports of other distributions are left out."""
    found: set[Import] = set()
    for module, path in modules.items():
        relative = path.relative_to(root)
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package_of(module, modules).split(".")
                    anchor = anchor[: len(anchor) - node.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                names = [f"{base}.{alias.name}" for alias in node.names]
            else:
                continue
            for name in names:
                target = name
                while target and target not in modules:
                    target = target.rpartition(".")[0]
                if target and target != module:
                    found.add(Import(module, relative, node.lineno, target))
    return sorted(found, key=lambda i: (str(i.path), i.line, i.target))


def row_of(module: str, plan: Mapping[str, tuple[str, ...]]) -> str | None:
    rows = [name for name in plan if within(module, name)]
    return max(rows, key=len) if rows else None


def forbidden_imports(
    imports: Iterable[Import], plan: Mapping[str, tuple[str, ...]]
) -> list[tuple[Import, str, str]]:
    """(import, its source's row, the forbidden target it falls under) for each import
    against the plan."""
    broken: list[tuple[Import, str, str]] = []
    for imp in imports:
        row = row_of(imp.source, plan)
        if row is None:
            continue
        for target in plan[row]:
            if within(imp.target, target):
                broken.append((imp, row, target))
    return broken


def cycles(edges: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """The strongly connected components of more than one node, each sorted (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in edges.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component: list[str] = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return sorted(found)


def cycle_report(imports: Iterable[Import], node_of: Mapping[str, str]) -> list[str]:
    """One paragraph per cycle among the nodes (modules or packages): its members, and for
    each arrow between two of them the number of imports and the first one."""
    joining: dict[str, dict[str, list[Import]]] = defaultdict(lambda: defaultdict(list))
    for imp in imports:
        a, b = node_of[imp.source], node_of[imp.target]
        if a != b:
            joining[a][b].append(imp)
    report = []
    for component in cycles(joining):
        lines = [f"cycle between {', '.join(component)}:"]
        for a in component:
            for b, via in sorted(joining[a].items()):
                if b in component:
                    lines.append(f"  {a} -> {b} ({len(via)} imports): {via[0]}")
        report.append("\n".join(lines))
    return report


def long_modules(
    modules: Mapping[str, Path], limit: int, exceptions: Mapping[str, str]
) -> list[str]:
    return [
        f"{module}: {lines} lines"
        for module, path in modules.items()
        if (lines := len(path.read_text().splitlines())) > limit and module not in exceptions
    ]


MODULES = modules_under(ROOT, PACKAGES)
IMPORTS = imports_of(MODULES, ROOT)


def test_the_plan_names_packages_that_exist() -> None:
    # A renamed package would leave its row empty of modules and its rule silently true.
    named = set(PLAN) | {target for targets in PLAN.values() for target in targets}
    assert sorted(n for n in named if not any(within(m, n) for m in MODULES)) == []
    assert sorted(set(LONG_MODULES) - set(MODULES)) == []


def test_no_import_against_the_house_plan() -> None:
    broken = [
        f"{imp}  ({row} must not import {target})"
        for imp, row, target in forbidden_imports(IMPORTS, PLAN)
    ]
    assert not broken, "imports against the plan:\n" + "\n".join(broken)


def test_no_import_cycle_between_modules() -> None:
    report = cycle_report(IMPORTS, {m: m for m in MODULES})
    assert not report, "\n".join(report)


def test_no_import_cycle_between_packages() -> None:
    report = cycle_report(IMPORTS, {m: package_of(m, MODULES) for m in MODULES})
    assert not report, "\n".join(report)


def test_no_module_over_the_line_limit() -> None:
    long = long_modules(MODULES, MAX_LINES, LONG_MODULES)
    assert not long, f"modules over {MAX_LINES} lines:\n" + "\n".join(long)


# The checker itself, on a tiny tree: a broken checker must not pass silently.

SYNTHETIC = {
    "cdc/__init__.py": "",
    "cdc/core_a.py": "from cdc.postgres import reader\nfrom .core_b import thing\n",
    "cdc/core_b.py": "import os\n\n\ndef f():\n    from . import core_a\n    import sinks.worker\n",
    "cdc/core_c.py": "",
    "cdc/postgres/__init__.py": "",
    "cdc/postgres/reader.py": "from ..mysql.binlog import decode\nfrom cdc import core_c\n",
    "cdc/mysql/__init__.py": "",
    "cdc/mysql/binlog.py": "import struct\n",
    "cdc/app/__init__.py": "from cdc.postgres import reader\nfrom cdc.mysql import binlog\n",
    "sinks/__init__.py": "",
    "sinks/worker.py": "from cdc.core_a import x\n" + "pass\n" * 400,
    "transforms/__init__.py": (
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import cdc.app\n"
        "from sinks import worker\n" + "pass\n" * 396
    ),
}


def synthetic_tree(root: Path) -> dict[str, Path]:
    for name, text in SYNTHETIC.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return modules_under(root, PACKAGES)


def test_the_checker_resolves_every_form_of_import(tmp_path: Path) -> None:
    modules = synthetic_tree(tmp_path)
    found = {(i.source, i.line, i.target) for i in imports_of(modules, tmp_path)}
    assert found == {
        ("cdc.core_a", 1, "cdc.postgres.reader"),
        ("cdc.core_a", 2, "cdc.core_b"),
        ("cdc.core_b", 5, "cdc.core_a"),
        ("cdc.core_b", 6, "sinks.worker"),
        ("cdc.postgres.reader", 1, "cdc.mysql.binlog"),
        ("cdc.postgres.reader", 2, "cdc.core_c"),
        ("cdc.app", 1, "cdc.postgres.reader"),
        ("cdc.app", 2, "cdc.mysql.binlog"),
        ("sinks.worker", 1, "cdc.core_a"),
        ("transforms", 3, "cdc.app"),
        ("transforms", 4, "sinks.worker"),
    }


def test_the_checker_flags_each_arrow_against_the_plan(tmp_path: Path) -> None:
    modules = synthetic_tree(tmp_path)
    broken = forbidden_imports(imports_of(modules, tmp_path), PLAN)
    assert [(i.source, i.line, i.target, row, t) for i, row, t in broken] == [
        ("cdc.core_a", 1, "cdc.postgres.reader", "cdc", "cdc.postgres"),
        ("cdc.core_b", 6, "sinks.worker", "cdc", "sinks"),
        ("cdc.postgres.reader", 1, "cdc.mysql.binlog", "cdc.postgres", "cdc.mysql"),
        ("transforms", 3, "cdc.app", "transforms", "cdc.app"),
        ("transforms", 4, "sinks.worker", "transforms", "sinks"),
    ]


def test_the_checker_finds_cycles_between_modules_and_packages(tmp_path: Path) -> None:
    modules = synthetic_tree(tmp_path)
    imports = imports_of(modules, tmp_path)
    by_module = cycle_report(imports, {m: m for m in modules})
    assert len(by_module) == 1
    assert by_module[0].startswith("cycle between cdc.core_a, cdc.core_b, sinks.worker:")
    by_package = cycle_report(imports, {m: package_of(m, modules) for m in modules})
    assert len(by_package) == 1
    assert by_package[0].startswith("cycle between cdc, cdc.postgres, sinks:")
    assert "cdc.postgres -> cdc (1 imports): cdc/postgres/reader.py:2" in by_package[0]
    assert cycles({"a": ["b"], "b": ["c"], "c": []}) == []


def test_the_checker_counts_lines_and_keeps_its_exceptions(tmp_path: Path) -> None:
    modules = synthetic_tree(tmp_path)
    assert long_modules(modules, MAX_LINES, {}) == ["sinks.worker: 401 lines"]
    assert long_modules(modules, MAX_LINES, {"sinks.worker": "generated"}) == []
