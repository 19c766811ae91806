"""Benchmarks of cdc against the reference tools (``make bench`` runs :mod:`bench.run`).

Every figure the report headlines is a ratio measured in the same run against a
reference tool on the same workload, so results from different machines compare.
"""
