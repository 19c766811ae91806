"""The Kafka offset store survives a restart of its process."""

from __future__ import annotations

from cdc.kafka.offsets import KafkaOffsetStore


def test_values_survive_a_new_store_and_deletes_stick(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    store = KafkaOffsetStore(kafka_bootstrap, topic_prefix)
    assert store.keys() == []
    store.put("source/position", {"file": "binlog.000001", "pos": 4})
    store.put("snapshot/public.t/0", {"done": True})
    store.put("snapshot/public.t/1", {"done": True})
    store.put("source/position", {"file": "binlog.000002", "pos": 99})
    store.delete("snapshot/public.t/1")

    again = KafkaOffsetStore(kafka_bootstrap, topic_prefix)
    assert again.get("source/position") == {"file": "binlog.000002", "pos": 99}
    assert again.keys("snapshot/") == ["snapshot/public.t/0"]
    assert again.get("snapshot/public.t/1") is None
