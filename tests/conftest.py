"""Shared test settings: where the local servers are (see dev/services.sh)."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
