"""The configured transforms, applied in order to each change the sink decodes."""

from __future__ import annotations

from collections.abc import Sequence

from cdc.changes import Change
from cdc.errors import TerminalError
from cdc.schemas import TableSchema
from cdc.settings import TransformSettings
from transforms.base import SchemaError, Transform, TransformError
from transforms.registry import build


class Pipeline:
    """Runs `transforms` in order; the first that returns None drops the change.

    Each transform sees the change with the schema the transforms before it
    produced, and the change leaves with the last one's schema, so the
    applier creates target tables with the columns the rows really have.
    Schemas are derived once per source table version.
    """

    def __init__(self, transforms: Sequence[Transform]) -> None:
        self._transforms = list(transforms)
        # by id() of the source schema object, which is kept in the value so the id stays its
        # own (a TableSchema holds dicts, so it cannot be a dict key itself)
        self._stages: dict[int, tuple[TableSchema, list[TableSchema]]] = {}

    @classmethod
    def from_settings(cls, settings_list: Sequence[TransformSettings]) -> Pipeline:
        return cls(build(settings_list))

    def __bool__(self) -> bool:
        return bool(self._transforms)

    def stages(self, source: TableSchema) -> list[TableSchema]:
        """The schema each transform gets, then the final one (len = transforms + 1)."""
        found = self._stages.get(id(source))
        if found is not None:
            return found[1]
        stages = [source]
        for index, transform in enumerate(self._transforms):
            try:
                stages.append(transform.schema(stages[-1]))
            except SchemaError as exc:
                raise TerminalError(f"transforms[{index}]: {exc.message}", exc.remedy) from None
        self._stages[id(source)] = (source, stages)
        return stages

    def schema(self, source: TableSchema) -> TableSchema:
        """The table as the target gets it."""
        return self.stages(source)[-1]

    def apply(self, change: Change) -> Change | None:
        """The transformed change, or None when a transform dropped it; `TransformError`
        (naming the transform) when this change cannot be transformed."""
        if not self._transforms:
            return change
        stages = self.stages(change.schema)
        for index, transform in enumerate(self._transforms):
            change.schema = stages[index]
            try:
                result = transform.apply(change)
            except TransformError as exc:
                raise TransformError(f"transforms[{index}]: {exc}") from None
            if result is None:
                return None
            change = result
        change.schema = stages[-1]
        return change
