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

from cdc import envelope
from cdc.applier import Applier, ApplyResult
from cdc.changes import Change
from cdc.errors import EventError, TransientError
from cdc.events import Op
from cdc.schemas import SCHEMA_HEADER, fingerprint_of
from sinks.collapse import collapse
from sinks.dlq.letters import DeadLetter
from sinks.schema_cache import SchemaCache
from sinks.worker import REJECTED
from transforms.pipeline import Pipeline

ROW_OPS = frozenset({Op.CREATE, Op.UPDATE, Op.DELETE, Op.READ})
SCHEMA_WAIT_S = 5.0  # the schema was published long ago, or it is not coming


class NotAppliedError(Exception):
    """The dead letter cannot be applied (yet): it stays pending."""


@dataclass(frozen=True)
class Applied:
    rows: int  # rows the target wrote (0: the conflict policy kept the target's)
    dropped: bool = False  # the transforms drop this change: nothing to apply


def decode(letter: DeadLetter, schemas: SchemaCache) -> Change:
    """The row change a dead letter holds, as the sink decodes it."""
    fingerprint = fingerprint_of(letter.headers)
    if fingerprint is None:
        raise NotAppliedError(f"no {SCHEMA_HEADER} header: not a change event")
    if letter.value is None or letter.key is None:
        raise NotAppliedError("not a row change (no key or no value)")
    try:
        value = envelope.decode_value(letter.value)
        key = envelope.decode_key(letter.key)
        ts_ms = int(value.source.get("ts_ms") or 0)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise NotAppliedError(f"not a change event: {exc}") from exc
    if value.op not in ROW_OPS:
        raise NotAppliedError(f"a table-wide event ({value.op}) is not applied again")
    if not all(isinstance(part, dict | None) for part in (value.before, value.after)) or not (
        isinstance(key, dict)
    ):
        raise NotAppliedError("not a change event: key, before, after must be objects")
    try:
        schema = schemas.get(fingerprint, SCHEMA_WAIT_S)
    except TransientError as exc:
        raise NotAppliedError(str(exc)) from exc
    topic, partition, offset = letter.origin
    return Change(
        value.op,
        schema,
        (schema.schema, schema.table),
        dict(key),
        None if value.before is None else dict(value.before),
        None if value.after is None else dict(value.after),
        value.unchanged,
        ts_ms,
        topic,
        partition,
        offset,
    )


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
