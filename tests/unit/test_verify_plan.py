"""Which target table and columns `cdc verify` compares a source table with."""

from __future__ import annotations

from typing import Any

from cdc.app.engines import engine_for
from cdc.engine import Sides
from cdc.migrate.verify.plan import TablePlan, plan_table
from cdc.settings import Settings
from transforms.registry import build

COLUMNS = ("id", "name", "email", "secret")


def plan(
    transforms: list[dict[str, Any]],
    target: dict[str, Any] | None = None,
    key: tuple[str, ...] = ("id",),
    table: tuple[str, str] = ("public", "customers"),
) -> TablePlan:
    settings = Settings.model_validate(
        {
            "name": "shop",
            "source": {
                "type": "postgres",
                "dsn": "postgresql://cdc:pw@db:5432/shop",
                "tables": ["public.customers", "public.orders"],
            },
            "kafka": {"bootstrap_servers": "kafka:9092"},
            "target": target or {"type": "postgres", "dsn": "postgresql://cdc:pw@new:5432/shop"},
            "transforms": transforms,
        }
    )
    sides = Sides.of(settings, engine_for)
    return plan_table(settings, sides, build(settings.transforms), table, COLUMNS, key)


def test_without_transforms_the_target_has_the_source_names() -> None:
    found = plan([])
    assert found.target == ("public", "customers")
    assert found.columns == [(c, c) for c in COLUMNS]
    assert not found.not_verifiable


def test_renamed_and_routed_tables_are_followed() -> None:
    assert plan(
        [{"type": "rename_table", "table": "public.customers", "to": "clients"}]
    ).target == (
        "public",
        "clients",
    )
    routed = plan([{"type": "route", "table": "public.*", "to": "crm.legacy_{table}"}])
    assert routed.target == ("crm", "legacy_customers")


def test_renamed_and_left_out_columns_are_followed() -> None:
    found = plan(
        [
            {"type": "rename_column", "table": "public.customers", "from": "name", "to": "full"},
            {"type": "columns", "table": "public.customers", "exclude": ["secret"]},
        ]
    )
    assert found.columns == [("id", "id"), ("name", "full"), ("email", "email")]
    assert not found.not_verifiable


def test_a_mysql_target_holds_every_table_in_its_database() -> None:
    found = plan([], target={"type": "mysql", "dsn": "mysql://cdc:pw@new:3306/shop_new"})
    assert found.target == ("shop_new", "customers")


def test_tables_whose_rows_are_changed_on_the_way_are_not_verifiable() -> None:
    masked = plan(
        [{"type": "mask", "table": "public.customers", "column": "email", "with": "null"}]
    )
    assert masked.not_verifiable == "transforms[0] (mask) changes its rows on the way"
    filtered = plan(
        [
            {"type": "rename_table", "table": "public.customers", "to": "clients"},
            {"type": "filter", "table": "public.c*", "where": "id > 10"},
        ]
    )
    assert filtered.not_verifiable.startswith("transforms[1] (filter)")


def test_a_transform_of_another_table_changes_nothing() -> None:
    found = plan([{"type": "mask", "table": "public.orders", "column": "email", "with": "null"}])
    assert not found.not_verifiable


def test_a_table_without_a_primary_key_is_planned_without_one() -> None:
    found = plan(
        [{"type": "rename_column", "table": "public.customers", "from": "name", "to": "n"}], key=()
    )
    assert not found.not_verifiable  # compared as multisets of rows (`verify.multiset`)
    assert found.key == ()
    assert ("name", "n") in found.columns


def test_a_transform_that_does_not_fit_says_so() -> None:
    found = plan([{"type": "rename_column", "table": "public.customers", "from": "x", "to": "y"}])
    assert found.not_verifiable.startswith("transforms[0] (rename_column) does not fit it")
