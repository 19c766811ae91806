"""Which target column types `cdc assess` takes for the kind of value the source sends."""

from __future__ import annotations

import pytest

from cdc.migrate.assess.target_tables import kind_of


@pytest.mark.parametrize(
    ("spelled", "kind"),
    [
        ("bigint", "number"),
        ("int(11)", "number"),
        ("numeric(14,2)", "number"),
        ("double precision", "number"),
        ("character varying(50)", "text"),
        ("longtext", "text"),
        ("timestamp with time zone", "time"),
        ("datetime(6)", "time"),
        ("bytea", "bytes"),
        ("varbinary(16)", "bytes"),
        ("jsonb", "json"),
        ("boolean", "boolean"),
        ("uuid", "uuid"),
        ("point", "point"),  # a kind of its own: only itself matches
    ],
)
def test_kind_of(spelled: str, kind: str) -> None:
    assert kind_of(spelled) == kind
