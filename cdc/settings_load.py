"""Read a pipeline file: YAML, `${ENV}` interpolation, validation; every problem found
is reported at once, as `cdc.settings_issues` says them.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Protocol

import yaml
from pydantic import ValidationError

from cdc.settings import Settings, TransformSettings
from cdc.settings_issues import (
    ConfigError,
    ConfigIssue,
    Loc,
    format_path,
    is_under,
    issues_from_validation_error,
)


class TransformProblem(Protocol):
    """One problem with option `option` of the transform at `index` of `transforms:`."""

    @property
    def index(self) -> int: ...
    @property
    def option(self) -> str: ...
    @property
    def message(self) -> str: ...
    @property
    def hint(self) -> str: ...


# (index, settings) of each transform, and the source's table selection -> their problems
TransformCheck = Callable[
    [Iterable[tuple[int, TransformSettings]], Callable[[str, str], bool] | None],
    Sequence[TransformProblem],
]


def load_settings(path: str | Path, *, check_transforms: TransformCheck | None = None) -> Settings:
    """Read, interpolate and validate one pipeline file; raise `ConfigError` listing every issue."""
    file = Path(path)
    return parse_settings(
        read_yaml(file),
        name=str(file),
        config_dir=file.absolute().parent,
        check_transforms=check_transforms,
    )


def parse_settings(
    data: Any,
    *,
    name: str = "<config>",
    config_dir: Path | None = None,
    check_transforms: TransformCheck | None = None,
) -> Settings:
    """Validate an already parsed document (interpolating `${ENV}`); raise `ConfigError`.

    `config_dir` anchors relative `*_file` paths when $CREDENTIALS_DIRECTORY is unset.
    The model reads only each transform's `type`: `check_transforms` (the face passes
    `transforms.registry.check`) checks their options, and its issues are reported with
    the others. Without it the options are checked when the sink builds its transforms.
    """
    if data is None:
        raise ConfigError([ConfigIssue(name, "the file is empty", "start from config/*.yaml")])
    if not isinstance(data, dict):
        hint = "the top level is a mapping: name: ..., source: ..., kafka: ..."
        raise ConfigError([ConfigIssue(name, "the top level must be a mapping of keys", hint)])
    data, issues = interpolate(data)
    broken = [issue.path for issue in issues]
    settings: Settings | None = None
    try:
        settings = Settings.model_validate(data, context={"config_dir": config_dir})
    except ValidationError as error:
        issues += issues_from_validation_error(error, skip=broken)
    if check_transforms is not None:
        issues += _transform_issues(check_transforms, settings, data, issues)
    if issues or settings is None:
        raise ConfigError(issues)
    return settings


def _transform_issues(
    check: TransformCheck,
    settings: Settings | None,
    data: dict[str, Any],
    found: Sequence[ConfigIssue],
) -> list[ConfigIssue]:
    """What `check` finds in the transforms' options. Entries with an issue already
    (an unset ${VAR}, not a mapping) are left out: one message each."""
    raw = data.get("transforms")
    if not isinstance(raw, list):
        return []
    entries = []
    for index, item in enumerate(raw):
        if any(is_under(issue.path, f"transforms[{index}]") for issue in found):
            continue
        try:
            entries.append((index, TransformSettings.model_validate(item)))
        except ValidationError:
            continue  # reported with the other validation errors
    selects = settings.source.selects if settings is not None else None
    return [
        ConfigIssue(format_path(("transforms", i.index, i.option)), i.message, i.hint)
        for i in check(entries, selects)
    ]


# --- YAML ---------------------------------------------------------------------------------------


class _Loader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate keys: YAML would silently keep only the last one."""


def _mapping(loader: _Loader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue  # `<<: *anchor` may be overridden by explicit keys, by design
        key = loader.construct_object(key_node, deep=True)
        if isinstance(key, str | int | float | bool) and key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=True)


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


def read_yaml(file: Path) -> Any:
    """The parsed YAML document; `ConfigError` for a missing, unreadable or malformed file."""
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([ConfigIssue(str(file), "file not found", "check the path")]) from None
    except OSError as error:
        reason = error.strerror or type(error).__name__
        hint = "check the path and its permissions"
        raise ConfigError([ConfigIssue(str(file), f"cannot read: {reason}", hint)]) from None
    except UnicodeDecodeError:
        raise ConfigError([ConfigIssue(str(file), "not UTF-8 text", "save it as UTF-8")]) from None
    try:
        return yaml.load(text, Loader=_Loader)  # a SafeLoader subclass: no arbitrary objects
    except yaml.MarkedYAMLError as error:
        raise ConfigError([_yaml_issue(str(file), error)]) from None
    except yaml.YAMLError as error:
        raise ConfigError(
            [ConfigIssue(str(file), f"invalid YAML: {type(error).__name__}")]
        ) from None


def _yaml_issue(file: str, error: yaml.MarkedYAMLError) -> ConfigIssue:
    # Built from the parts, not str(error): that quotes the offending line, which may be a DSN.
    mark = error.problem_mark or error.context_mark
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
    problem = error.problem or error.context or "syntax error"
    if problem.startswith("duplicate key"):
        return ConfigIssue(file, f"{problem}{where}", "keep one; YAML would silently use the last")
    context = f" ({error.context})" if error.context and error.problem else ""
    hint = "check indentation and quoting on that line or the one before"
    if "\\t" in problem or "\t" in problem:
        hint = "indent with spaces, YAML does not allow tabs"
    return ConfigIssue(file, f"YAML syntax error{where}: {problem}{context}", hint)


# --- ${ENV} interpolation -------------------------------------------------------------------------

_REFERENCE = re.compile(r"\$\$\{|\$\{([^}]*)\}|\$\{")


def interpolate(data: Any, path: Loc = ()) -> tuple[Any, list[ConfigIssue]]:
    """Replace `${NAME}` in every string value with the environment variable; `$${` is a
    literal `${`. Keys are left alone. A value with an unset variable is kept as written."""
    issues: list[ConfigIssue] = []
    if isinstance(data, dict):
        result: dict[Any, Any] = {}
        for key, item in data.items():
            result[key], found = interpolate(item, (*path, str(key)))
            issues += found
        return result, issues
    if isinstance(data, list):
        items = [interpolate(item, (*path, index)) for index, item in enumerate(data)]
        return [item for item, _ in items], [issue for _, found in items for issue in found]
    if not isinstance(data, str) or "${" not in data:
        return data, issues

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        if match.group(0) == "$${":
            return "${"
        where = format_path(path)
        if name is None:
            issues.append(
                ConfigIssue(where, "unclosed ${", "write ${NAME}, or $${ for a literal ${")
            )
        elif not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            issues.append(ConfigIssue(where, f"${{{name}}} is not a variable name", "use ${NAME}"))
        elif name not in os.environ:
            hint = f"export {name} before running cdc, or write $${{{name}}} for a literal ${{"
            issues.append(ConfigIssue(where, f"environment variable {name} is not set", hint))
        else:
            return os.environ[name]
        return match.group(0)

    text = _REFERENCE.sub(substitute, data)
    # Validating the unresolved text could only add a second, misleading error for this key.
    return (UNRESOLVED if issues else text), issues


class _Unresolved:
    """Stands in for a value whose ${VAR} could not be resolved; fails every type check."""

    def __repr__(self) -> str:
        return "<unresolved>"


UNRESOLVED = _Unresolved()
