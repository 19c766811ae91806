"""Kafka transport: topic administration and the publisher."""
