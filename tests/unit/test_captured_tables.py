"""The record of captured tables: a table added after the snapshot is named once."""

from __future__ import annotations

from typing import Any

from structlog.testing import capture_logs

from cdc.captured_tables import CAPTURED_KEY, note_captured


class MemoryStore:
    def __init__(self) -> None:
        self.data: dict[str, Any] = {}
        self.puts = 0

    def get(self, key: str) -> Any | None:
        return self.data.get(key)

    def put(self, key: str, value: Any) -> None:
        self.data[key] = value
        self.puts += 1

    def delete(self, key: str) -> None:
        self.data.pop(key, None)

    def keys(self, prefix: str = "") -> list[str]:
        return [k for k in self.data if k.startswith(prefix)]


def test_a_first_start_records_without_a_warning() -> None:
    store = MemoryStore()
    with capture_logs() as logs:
        assert note_captured(store, ["public.b", "public.a"], warn=True) == []
    assert logs == []
    assert store.data[CAPTURED_KEY] == ["public.a", "public.b"]


def test_a_table_added_later_is_named_once_with_its_remedy() -> None:
    store = MemoryStore()
    note_captured(store, ["public.a"], warn=True)
    with capture_logs() as logs:
        assert note_captured(store, ["public.a", "public.new"], warn=True) == ["public.new"]
    assert [(e["event"], e["table"], e["log_level"]) for e in logs] == [
        ("table_added_without_snapshot", "public.new", "warning")
    ]
    assert "cdc verify" in logs[0]["fix"]
    with capture_logs() as again:
        assert note_captured(store, ["public.a", "public.new"], warn=True) == []
    assert again == []


def test_no_warning_when_not_asked_and_no_write_when_nothing_changed() -> None:
    store = MemoryStore()
    note_captured(store, ["public.a"], warn=False)
    with capture_logs() as logs:
        assert note_captured(store, ["public.a", "public.b"], warn=False) == ["public.b"]
    assert logs == []
    puts = store.puts
    note_captured(store, ["public.b", "public.a"], warn=False)
    assert store.puts == puts
