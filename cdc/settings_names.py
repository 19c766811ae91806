"""The names a pipeline file is made of: the pipeline's own name (which names its slot,
publication and topics), `schema.table` names, and the tables a source selects."""

from __future__ import annotations

import re
from fnmatch import fnmatchcase
from typing import Annotated, Any

from pydantic import AfterValidator, Discriminator, Field, Tag, WithJsonSchema

from cdc.secrets import setting_error
from cdc.settings_base import SettingsModel


def _check_name(value: str) -> str:
    if re.fullmatch(r"[a-z0-9_]{1,63}", value):
        return value
    example = re.sub(r"[^a-z0-9_]+", "_", value.lower()).strip("_")[:63] or "orders_migration"
    raise setting_error(
        "must be 1 to 63 lowercase letters, digits or underscores"
        " (what a PostgreSQL replication slot name allows)",
        f"for example '{example}'",
    )


# schema.table: each part may hold spaces ("public.order items"), but neither starts
# nor ends with one, which is how a stray space after the dot shows itself.
_PART = r"[^.\s](?:[^.]*[^.\s])?"
_TABLE_PATTERN = rf"{_PART}\.{_PART}"


def _check_table(value: str) -> str:
    if re.fullmatch(_TABLE_PATTERN, value):
        return value
    raise setting_error(
        "must be schema.table (for MySQL: database.table)",
        "for example public.orders; include/exclude patterns may use * and ?, like public.*",
    )


# WithJsonSchema: editors check the form too; the validators give the friendlier message.
Name = Annotated[
    str,
    AfterValidator(_check_name),
    WithJsonSchema({"type": "string", "pattern": "^[a-z0-9_]{1,63}$"}),
]
TableName = Annotated[
    str,
    AfterValidator(_check_table),
    WithJsonSchema({"type": "string", "pattern": f"^{_TABLE_PATTERN}$"}),
]


class TableFilter(SettingsModel):
    """Tables chosen by glob patterns (`*`, `?`, `[abc]`) on `schema.table`."""

    include: list[TableName] = Field(
        min_length=1, description="a list of schema.table patterns, like [public.*]"
    )
    exclude: list[TableName] = Field(
        default_factory=list, description="a list of patterns to leave out, like [public.tmp_*]"
    )

    def matches(self, schema: str, table: str) -> bool:
        name = f"{schema}.{table}"
        included = any(fnmatchcase(name, pattern) for pattern in self.include)
        return included and not any(fnmatchcase(name, pattern) for pattern in self.exclude)


def _tables_kind(value: Any) -> str | None:
    if isinstance(value, list):
        return "table-list"
    return "table-filter" if isinstance(value, dict | TableFilter) else None


Tables = Annotated[
    Annotated[list[TableName], Tag("table-list")] | Annotated[TableFilter, Tag("table-filter")],
    Discriminator(
        _tables_kind,
        custom_error_type="cdc_config",
        custom_error_message="{message}",
        custom_error_context={
            "message": "must be a list of schema.table names or a mapping with include/exclude",
            "hint": "for example [public.orders, public.customers] or {include: [public.*]}",
        },
    ),
    Field(
        description="tables to replicate: [schema.table, ...] or {include: [...], exclude: [...]}"
    ),
]
