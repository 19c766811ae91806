"""The single-source lock's name: readable when it fits, always within the server's limit."""

from __future__ import annotations

from cdc.mysql.lock import MAX_LOCK_NAME, lock_name


def test_a_short_pipeline_name_is_the_lock_name() -> None:
    assert lock_name("shop") == "cdc:shop"


def test_long_pipeline_names_fit_and_stay_apart() -> None:
    first, second = "a" * 62 + "x", "a" * 62 + "y"  # names are at most 63 characters
    assert len(lock_name(first)) <= MAX_LOCK_NAME
    assert lock_name(first) != lock_name(second)
    assert lock_name(first).startswith("cdc:")
