"""`source.tables` checked against the source's tables: a listed table that does not
exist stops the start with the closest names; a pattern that matches nothing warns."""

from __future__ import annotations

import pytest
from structlog.testing import capture_logs

from cdc.errors import TerminalError
from cdc.settings_names import TableFilter
from cdc.table_selection import check_selection

EXISTING = [("public", "orders"), ("public", "order_items"), ("public", "Customers"), ("app", "x")]


def test_listed_tables_that_exist_pass() -> None:
    selection = check_selection(["public.orders", "app.x"], EXISTING)
    assert not selection.missing
    selection.enforce()


def test_a_misspelled_table_names_the_closest_existing_tables() -> None:
    selection = check_selection(["public.orders", "public.ordres", "public.customers"], EXISTING)
    assert list(selection.missing) == ["public.ordres", "public.customers"]
    assert selection.missing["public.ordres"][0] == "public.orders"
    # another case of the same letters comes first
    assert selection.missing["public.customers"][0] == "public.Customers"
    with pytest.raises(TerminalError) as caught:
        selection.enforce()
    assert "public.ordres (closest: public.orders" in caught.value.message
    assert "public.customers (closest: public.Customers" in caught.value.message
    assert "source.tables" in caught.value.remedy


def test_a_name_like_nothing_is_named_without_suggestions() -> None:
    selection = check_selection(["billing.zzz"], EXISTING)
    assert selection.missing == {"billing.zzz": []}
    assert selection.describe_missing() == "billing.zzz"


def test_a_pattern_that_matches_nothing_warns_and_starts() -> None:
    tables = TableFilter(include=["public.order*", "audit.*"], exclude=["public.order_items"])
    selection = check_selection(tables, EXISTING)
    assert not selection.missing
    assert selection.unmatched == ["audit.*"]
    with capture_logs() as logs:
        selection.enforce()
    assert [(e["event"], e["pattern"]) for e in logs] == [
        ("tables_pattern_matches_nothing", "audit.*")
    ]
