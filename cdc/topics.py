"""Kafka topic names: `<topic_prefix>.<schema>.<table>`."""

from __future__ import annotations

import hashlib
import re

# Kafka accepts only these characters in topic names, at most 249 of them.
_INVALID = re.compile(r"[^a-zA-Z0-9._-]")
_MAX_LENGTH = 249


def _safe(part: str) -> str:
    cleaned = _INVALID.sub("_", part)
    if cleaned == part:
        return part
    # Two names that differ only in invalid characters must not share a topic.
    return f"{cleaned}_{hashlib.sha1(part.encode()).hexdigest()[:8]}"


def table_topic(prefix: str, schema: str, table: str) -> str:
    name = f"{prefix}.{_safe(schema)}.{_safe(table)}"
    if len(name) > _MAX_LENGTH:
        digest = hashlib.sha1(name.encode()).hexdigest()[:12]
        name = f"{name[: _MAX_LENGTH - 13]}_{digest}"
    return name


def schemas_topic(prefix: str) -> str:
    return f"{prefix}.__schemas"


def offsets_topic(prefix: str) -> str:
    return f"{prefix}.__offsets"


def dead_letter_topic(prefix: str) -> str:
    return f"{prefix}.__dlq"


def table_topics_pattern(prefix: str) -> str:
    """A librdkafka subscription regex for every table topic of a prefix,
    leaving out the internal `<prefix>.__*` topics."""
    return "^" + re.escape(prefix) + r"\.([^_]|_[^_])"
