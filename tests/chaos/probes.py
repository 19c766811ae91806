"""Recovery time: after a fault ends, a probe row is written on each pipeline's
source and timed until the target has it."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from datetime import datetime

from tests.chaos.databases import DOWN, Database
from tests.chaos.ledger import Ledger
from tests.chaos.tables import PROBES

PROBE_TIMEOUT_S = 180.0
_ids = itertools.count(1)


def write_probe(source: Database, ledger: Ledger) -> int:
    """Insert one probe row (waiting for the server if it is coming back); its id."""
    while True:
        probe = next(_ids)
        row = {"id": probe, "at": datetime(2026, 1, 1, 0, 0, probe % 60)}
        conn = source.connect_retrying(autocommit=True)
        try:
            conn.cursor().execute(
                f"INSERT INTO {source.quote(PROBES.name)} (id, at) VALUES (%s, %s)",
                (row["id"], row["at"]),
            )
        except DOWN:
            if _present(source, probe):  # the reply was lost, the row is there
                break
            continue
        finally:
            conn.close()
        break
    with ledger.lock:
        ledger.tables["probes"][(probe,)] = row
    return probe


def _present(db: Database, probe: int) -> bool:
    try:
        conn = db.connect(autocommit=True, timeout=2)
    except DOWN:
        return False
    try:
        cur = conn.cursor()
        cur.execute(f"SELECT 1 FROM {db.table(PROBES.name)} WHERE id = %s", (probe,))
        return cur.fetchone() is not None
    except DOWN:
        return False
    except Exception:
        return False
    finally:
        conn.close()


def time_probes(
    pairs: list[tuple[str, Database, Ledger, Database]],
    since: float,
    check: Callable[[], None],
) -> dict[str, float | None]:
    """For each (label, source, ledger, target): seconds from `since` (a monotonic time,
    the fault's end) until the target has a probe written now; None if never."""
    waiting = {
        label: (write_probe(source, ledger), target) for label, source, ledger, target in pairs
    }
    found: dict[str, float | None] = {}
    deadline = time.monotonic() + PROBE_TIMEOUT_S
    checked = time.monotonic()
    while waiting and time.monotonic() < deadline:
        if time.monotonic() - checked > 1:
            check()
            checked = time.monotonic()
        for label, (probe, target) in list(waiting.items()):
            if _present(target, probe):
                found[label] = time.monotonic() - since
                del waiting[label]
        time.sleep(0.05)
    found.update(dict.fromkeys(waiting))
    return found
