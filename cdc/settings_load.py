"""Read a pipeline file: YAML, `${ENV}` interpolation, validation, and errors a user can act on.

Every problem becomes a `ConfigIssue` (YAML path, message, hint); all of them
are reported at once in one `ConfigError`. Messages never quote a value from
the file (a value may be a secret): they name the key, the expected form and
at most the *type* of what was found. They pass through `redact` as well.
"""

from __future__ import annotations

import os
import re
import types
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from difflib import get_close_matches
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, Tag, ValidationError
from pydantic_core import ErrorDetails

from cdc.secrets import redact
from cdc.settings import Settings, TransformSettings
from transforms.registry import check as check_transforms

Loc = tuple[str | int, ...]
_ENGINE_TAGS = ("postgres", "mysql")
_TABLES_TAGS = ("table-list", "table-filter")


@dataclass(frozen=True)
class ConfigIssue:
    """One problem: `path` is a YAML path (`source.tables[2]`) or, for the whole file, its name."""

    path: str
    message: str
    hint: str = ""

    def __str__(self) -> str:
        text = f"{self.path}: {self.message}"
        return f"{text} (hint: {self.hint})" if self.hint else text


class ConfigError(Exception):
    """The configuration is unusable; `issues` lists every problem found."""

    def __init__(self, issues: Sequence[ConfigIssue]) -> None:
        self.issues = [
            ConfigIssue(issue.path, redact(issue.message), redact(issue.hint)) for issue in issues
        ]
        super().__init__("\n".join(str(issue) for issue in self.issues))


def load_settings(path: str | Path) -> Settings:
    """Read, interpolate and validate one pipeline file; raise `ConfigError` listing every issue."""
    file = Path(path)
    return parse_settings(read_yaml(file), name=str(file), config_dir=file.absolute().parent)


def parse_settings(
    data: Any, *, name: str = "<config>", config_dir: Path | None = None
) -> Settings:
    """Validate an already parsed document (interpolating `${ENV}`); raise `ConfigError`.

    `config_dir` anchors relative `*_file` paths when $CREDENTIALS_DIRECTORY is unset.
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
    issues += _transform_issues(settings, data, issues)
    if issues or settings is None:
        raise ConfigError(issues)
    return settings


def _transform_issues(
    settings: Settings | None, data: dict[str, Any], found: Sequence[ConfigIssue]
) -> list[ConfigIssue]:
    """The model only reads each transform's `type`; the registry checks its options. Entries
    with an issue already (an unset ${VAR}, not a mapping) are left out: one message each."""
    raw = data.get("transforms")
    if not isinstance(raw, list):
        return []
    entries = []
    for index, item in enumerate(raw):
        if any(_is_under(issue.path, f"transforms[{index}]") for issue in found):
            continue
        try:
            entries.append((index, TransformSettings.model_validate(item)))
        except ValidationError:
            continue  # reported with the other validation errors
    selects = settings.source.selects if settings is not None else None
    return [
        ConfigIssue(format_path(("transforms", i.index, i.option)), i.message, i.hint)
        for i in check_transforms(entries, selects)
    ]


def _is_under(path: str, parent: str) -> bool:
    return path == parent or path.startswith((parent + ".", parent + "["))


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


def format_path(loc: Sequence[str | int]) -> str:
    """`("target", "tables", "public.a", "conflict")` -> `target.tables["public.a"].conflict`."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        elif re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", part):
            text += f".{part}" if text else part
        else:
            text += f'["{part}"]'
    return text


# --- pydantic errors ----------------------------------------------------------------------------


def issues_from_validation_error(
    error: ValidationError, skip: Sequence[str] = ()
) -> list[ConfigIssue]:
    """One `ConfigIssue` per error of a `Settings` validation; never shows the input.

    Errors at or below a path in `skip` are left out, except unknown keys: a key whose
    `${VAR}` is unset fails validation too, and its interpolation issue already says why.
    """
    issues = []
    for details in error.errors(include_url=False):
        issue = _issue(details)
        if details["type"] == "extra_forbidden" or not any(_is_under(issue.path, p) for p in skip):
            issues.append(issue)
    return issues


def _clean_loc(loc: Loc) -> Loc:
    """The YAML path: without pydantic's union tags and `[key]` markers."""
    kept: list[str | int] = []
    for index, part in enumerate(loc):
        previous = loc[index - 1] if index else None
        in_union = index == 1 and loc[0] in ("source", "target") and part in _ENGINE_TAGS
        if in_union or (previous == "tables" and part in _TABLES_TAGS) or part == "[key]":
            continue
        kept.append(part)
    return tuple(kept)


def _type_name(value: Any) -> str:
    names = {dict: "a mapping", list: "a list", str: "a string", bool: "true/false"}
    names |= {int: "a number", float: "a number", type(None): "nothing (null)"}
    return names.get(type(value), "a value of another kind")


def _issue(details: ErrorDetails) -> ConfigIssue:
    loc, kind, ctx = details["loc"], details["type"], details.get("ctx") or {}
    path = _clean_loc(loc)
    where = format_path(path)
    if kind == "cdc_config":
        return ConfigIssue(where, str(ctx.get("message")), str(ctx.get("hint") or ""))
    if kind == "extra_forbidden":
        return _unknown_key(loc, where)
    if kind == "missing":
        described = _field_description(loc)
        hint = f"add {path[-1]}: {described}" if described else f"add {path[-1]}: ..."
        if path[-1] == "dsn":
            hint += "; or dsn_file: a file holding it"
        return ConfigIssue(where, f"required key {path[-1]} is missing", hint)
    if kind in ("union_tag_not_found", "union_tag_invalid"):
        where = format_path((*path, "type"))
        if kind == "union_tag_not_found":
            return ConfigIssue(where, "required key type is missing", "add type: postgres or mysql")
        return ConfigIssue(where, "must be postgres or mysql", "type: postgres or type: mysql")
    if kind == "literal_error":
        allowed = re.findall(r"'([^']*)'", str(ctx.get("expected")))
        close = get_close_matches(str(details["input"]), allowed, n=1)
        hint = f"did you mean {close[0]}?" if close else _field_description(loc)
        return ConfigIssue(where, f"must be one of: {', '.join(allowed)}", hint)
    message = _PLAIN_MESSAGES.get(kind) or re.sub(
        r"^(Input|Value|String|List|Dictionary) should", "must", details["msg"]
    )
    if kind.endswith("_type"):
        message += f", got {_type_name(details['input'])}"
    return ConfigIssue(where, message, _field_description(loc))


_PLAIN_MESSAGES = {
    "model_type": "must be a mapping of keys",
    "model_attributes_type": "must be a mapping of keys",
    "dict_type": "must be a mapping",
    "path_type": "must be a file path",
}


def _unknown_key(loc: Loc, where: str) -> ConfigIssue:
    key = str(loc[-1])
    model = _model_at(loc[:-1])
    allowed = list(model.model_fields) if model else []
    message = f"unknown key {key}" + (f"; allowed keys: {', '.join(allowed)}" if allowed else "")
    close = get_close_matches(key, allowed, n=1)
    hint = f"did you mean {close[0]}?" if close else "remove it"
    if len(loc) == 3 and loc[1] in _ENGINE_TAGS and not close:
        # A key of the other engine (server_id under a postgres source) is a common slip.
        for other in _ENGINE_TAGS:
            sibling = _model_at((loc[0], other))
            if other != loc[1] and sibling and key in sibling.model_fields:
                hint = f"{key} applies to type: {other}, and this {loc[0]} has type: {loc[1]}"
    return ConfigIssue(where, message, hint)


def _field_description(loc: Loc) -> str:
    model = _model_at(loc[:-1])
    field = model.model_fields.get(str(loc[-1])) if model else None
    return (field.description or "") if field else ""


def _model_at(loc: Loc) -> type[BaseModel] | None:
    """The model class that validated the value at pydantic location `loc`, if any."""
    current: Any = Settings
    for part in loc:
        current = _step(current, part)
    current = _unwrap(current)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _unwrap(annotation: Any) -> Any:
    while get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    return annotation


def _tag(member: Any) -> str | None:
    tags = [meta.tag for meta in getattr(member, "__metadata__", ()) if isinstance(meta, Tag)]
    if tags:
        return tags[0]
    member = _unwrap(member)
    if isinstance(member, type) and issubclass(member, BaseModel) and "type" in member.model_fields:
        literal = member.model_fields["type"].annotation
        if get_origin(literal) is Literal:
            return str(get_args(literal)[0])
    return None


def _step(annotation: Any, part: str | int) -> Any:
    annotation = _unwrap(annotation)
    origin = get_origin(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        field = annotation.model_fields.get(str(part))
        return field.annotation if field else None
    if origin in (Union, types.UnionType):
        members = [arg for arg in get_args(annotation) if arg is not type(None)]
        tagged = [member for member in members if _tag(member) == part]
        if tagged:
            return tagged[0]
        return _step(members[0], part) if len(members) == 1 else None
    if origin is list and isinstance(part, int):
        return get_args(annotation)[0]
    if origin in (dict, Mapping) and isinstance(part, str):
        return get_args(annotation)[1]
    return None
