"""A slot still active when the source connects: a second source of the pipeline stops
with the fix, but the same process reconnecting after a network cut waits for the server
to let its previous connection go (it does within wal_sender_timeout)."""

from __future__ import annotations

from typing import Any

import pytest

from cdc.errors import TerminalError, TransientError
from cdc.postgres import setup, source
from cdc.postgres.source import PostgresSource

KEY = ("7345", 1, "orders")


class _Offsets:
    def get(self, _key: str) -> Any:
        return {"slot": "orders"}


def _source() -> PostgresSource:
    found = object.__new__(PostgresSource)
    found._slot = "orders"  # only what _check_slot reads
    found._offsets = _Offsets()  # type: ignore[assignment]
    return found


@pytest.fixture(autouse=True)
def _slot_in_use(monkeypatch: pytest.MonkeyPatch) -> None:
    def in_use(*_args: Any) -> bool:
        raise setup.SlotInUseError("replication slot 'orders' is in use by another process", "fix")

    monkeypatch.setattr(setup, "check_slot", in_use)


def test_a_second_source_stops_with_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(source, "_ACKNOWLEDGED", {})
    with pytest.raises(TerminalError, match="in use by another process"):
        _source()._check_slot(None, KEY)  # type: ignore[arg-type]


def test_this_process_reconnecting_waits_for_its_old_connection(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(source, "_ACKNOWLEDGED", {KEY: 1234})
    with pytest.raises(TransientError, match="previous connection"):
        _source()._check_slot(None, KEY)  # type: ignore[arg-type]
