"""The transform seam, and the errors a transform reports.

A transform sees one `Change` at a time, after the sink decoded it and before
the batch is collapsed per key, in the order of `transforms:` in the config.

Errors, by who has to act:
- `OptionError` (config load): an option is missing, unknown or malformed;
  `cdc config check` shows it at `transforms[i].<option>` with a hint.
- `SchemaError` (first change of a table version): the transform does not fit
  the table (a column it names is missing); the sink stops with the remedy and
  its positions untouched, because every later change would be wrong too.
- `TransformError` (one change): this row cannot be transformed (a value that
  does not cast); the message goes to the dead-letter topic and the batch goes on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from cdc.changes import Change
from cdc.errors import EventError
from cdc.schemas import TableSchema


class Transform(Protocol):
    """One row transform.

    `schema` says what the transform does to a table's columns (names, types,
    nullability, key), so that target tables are created with the columns the
    rows will have. The pipeline calls it once per table version, in config
    order, before that table's first change reaches `apply`.

    `apply` gets a change whose `schema` is the schema this transform's
    `schema` was given (the output of the transforms before it), and returns
    the change, possibly modified in place, or None to drop it. Values are in
    wire form (see cdc.values). A transform must not change `change.schema`
    itself: the pipeline sets it from `schema`.

    Tables are always selected by their *source* name (`change.schema.schema`
    and `.table` are never renamed): where a table's rows land is
    `change.target`, which `rename_table` and `route` change.
    """

    def apply(self, change: Change) -> Change | None: ...

    def schema(self, schema: TableSchema) -> TableSchema: ...


class TransformError(EventError):
    """This one change cannot be transformed: it goes to the dead-letter topic."""

    reason = "transform"


class SchemaError(Exception):
    """The transform does not fit a table; `remedy` says what to change."""

    def __init__(self, message: str, remedy: str) -> None:
        super().__init__(f"{message} (fix: {remedy})")
        self.message = message
        self.remedy = remedy


class OptionError(ValueError):
    """One option of one transform is wrong: `option` names it (`type` for the type itself)."""

    def __init__(self, option: str, message: str, hint: str = "") -> None:
        super().__init__(f"{option}: {message}")
        self.option = option
        self.message = message
        self.hint = hint


@dataclass(frozen=True)
class TransformIssue:
    """One problem in the `transforms:` list, located by list index and option."""

    index: int
    option: str
    message: str
    hint: str = ""

    @property
    def path(self) -> str:
        return f"transforms[{self.index}].{self.option}"

    def __str__(self) -> str:
        text = f"{self.path}: {self.message}"
        return f"{text} (hint: {self.hint})" if self.hint else text


class TransformConfigError(ValueError):
    """The `transforms:` list is unusable; `issues` lists every problem found."""

    def __init__(self, issues: Sequence[TransformIssue]) -> None:
        self.issues = list(issues)
        super().__init__("\n".join(str(issue) for issue in self.issues))
