"""Sink workers: consume change events from Kafka and apply them to a target database."""
