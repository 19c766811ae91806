"""What is wrong with a pipeline file, said so a user can act on it.

Every problem becomes a `ConfigIssue` (YAML path, message, hint); all of them
are reported at once in one `ConfigError`. Messages never quote a value from
the file (a value may be a secret): they name the key, the expected form and
at most the *type* of what was found. They pass through `redact` as well.
`issues_from_validation_error` says pydantic's errors of a `Settings` that way.
"""

from __future__ import annotations

import re
import types
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from difflib import get_close_matches
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, Tag, ValidationError
from pydantic_core import ErrorDetails

from cdc.secrets import redact
from cdc.settings import Settings

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


def is_under(path: str, parent: str) -> bool:
    """Whether YAML path `path` is `parent` or lies below it."""
    return path == parent or path.startswith((parent + ".", parent + "["))


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
        if details["type"] == "extra_forbidden" or not any(is_under(issue.path, p) for p in skip):
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
