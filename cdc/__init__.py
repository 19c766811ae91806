"""cdc: change-data-capture replication for near-zero-downtime database migrations."""

from __future__ import annotations

__version__ = "0.1.0"
