"""Applying a dead letter again, through the sink's own applier.

The message is decoded as the sink decodes it (its schema from `__schemas`),
goes through the pipeline's transforms, is collapsed into a table batch
(`sinks.collapse`) and handed to `Applier.apply`: the target's conflict
policy, schema following and value conversion are the sink's, in one target
transaction. The stored offsets are left alone (`apply` with none). A change
the target still refuses, or one the policy would dead-letter again, rolls
back and stays pending.

Whether it may be applied at all is `sinks.dlq.supersede`; the decision is
recorded after the transaction commits, so a crash in between leaves it
pending, and a second redrive applies the same change again: the same rows.
"""

from __future__ import annotations

from dataclasses import dataclass

from cdc.applier import Applier, ApplyResult
from cdc.changes import Change
from cdc.errors import EventError
from cdc.events import TABLE_OPS
from sinks.change_decoding import PoisonMessageError, decode_change
from sinks.collapse import collapse
from sinks.dlq.letters import DeadLetter
from sinks.schema_cache import SchemaCache
from sinks.worker import REJECTED
from transforms.pipeline import Pipeline

SCHEMA_WAIT_S = 5.0  # the schema was published long ago, or it is not coming


class NotAppliedError(Exception):
    """The dead letter cannot be applied (yet): it stays pending."""


@dataclass(frozen=True)
class Applied:
    rows: int  # rows the target wrote (0: the conflict policy kept the target's)
    dropped: bool = False  # the transforms drop this change: nothing to apply


def decode(letter: DeadLetter, schemas: SchemaCache) -> Change:
    """The row change a dead letter holds, as the sink decodes it."""
    if letter.value is None or letter.key is None:
        raise NotAppliedError("not a row change (no key or no value)")
    try:
        change = decode_change(
            letter.headers,
            letter.key,
            letter.value,
            lambda fingerprint: schemas.get(fingerprint, SCHEMA_WAIT_S),
            letter.origin,
        )
    except PoisonMessageError as exc:
        raise NotAppliedError(str(exc)) from exc
    if change.op in TABLE_OPS:
        raise NotAppliedError(f"a table-wide event ({change.op}) is not applied again")
    return change


class Redriver:
    def __init__(self, applier: Applier, schemas: SchemaCache, transforms: Pipeline) -> None:
        self._applier = applier
        self._schemas = schemas
        self._transforms = transforms

    def apply(self, letter: DeadLetter) -> Applied:
        """Apply the dead letter in one target transaction; `NotAppliedError` with
        the reason when the target refuses it again."""
        change: Change | None = decode(letter, self._schemas)
        try:
            if self._transforms:
                change = self._transforms.apply(change)  # type: ignore[arg-type]
        except EventError as exc:
            raise NotAppliedError(str(exc)) from exc
        if change is None:
            return Applied(0, dropped=True)

        def refused_again(result: ApplyResult) -> None:
            # under `conflict: error` the policy sets it aside again: nothing is applied
            if result.dead:
                raise NotAppliedError(result.dead[0][1])

        try:
            result = self._applier.apply(list(collapse([change])), {}, refused_again)
        except REJECTED as exc:
            raise NotAppliedError(str(exc).strip()) from exc
        return Applied(sum(result.rows.values()))
