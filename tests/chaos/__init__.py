"""Chaos tests: cdc under crashes, network faults and randomized runs (`make test-chaos`)."""
