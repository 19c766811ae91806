"""The end of a run: every row of every table, compared between the ledger, the
source and the target in canonical value text. Counts alone would miss a
changed value or a lost row hidden by an extra one."""

from __future__ import annotations

from dataclasses import dataclass, field

from tests.chaos.databases import Database
from tests.chaos.ledger import Key, Ledger, Row
from tests.chaos.tables import BULK, ITEMS, LINES, PROBES, Table, canonical_text

EXAMPLES = 5


@dataclass
class Difference:
    lost: list[str] = field(default_factory=list)  # in the ledger, not on the side
    divergent: list[str] = field(default_factory=list)  # on both, with other values
    extra: list[str] = field(default_factory=list)  # on the side, not in the ledger

    def add(self, other: Difference) -> None:
        self.lost += other.lost
        self.divergent += other.divergent
        self.extra += other.extra

    @property
    def clean(self) -> bool:
        return not (self.lost or self.divergent or self.extra)

    def summary(self) -> str:
        parts = [
            f"{len(self.lost)} lost",
            f"{len(self.divergent)} divergent",
            f"{len(self.extra)} extra",
        ]
        examples = (self.lost + self.divergent + self.extra)[:EXAMPLES]
        return ", ".join(parts) + "".join(f"\n      {e}" for e in examples)


def _diff(
    table: Table, columns: tuple[str, ...], expected: dict[Key, Row], found: dict[Key, Row]
) -> Difference:
    result = Difference()
    for key, row in expected.items():
        if key not in found:
            result.lost.append(f"{table.name} {key}")
            continue
        want, got = canonical_text(columns, row), canonical_text(columns, found[key])
        if want != got:
            result.divergent.append(f"{table.name} {key}: expected {want[:300]} found {got[:300]}")
    result.extra += [f"{table.name} {key}" for key in found.keys() - expected.keys()]
    return result


def expected_bulk(ledger: Ledger) -> dict[Key, Row]:
    return {
        (i,): {"id": i, "v": i % 1000}
        for first, last in ledger.bulk_ranges
        for i in range(first, last + 1)
    }


def compare(ledger: Ledger, side: Database) -> Difference:
    """Where `side` (the source or the target) differs from the ledger."""
    result = Difference()
    item_columns = ITEMS.columns + tuple(ledger.added_columns)
    with ledger.lock:
        expected = {
            "items": dict(ledger.tables["items"]),
            "lines": dict(ledger.tables["lines"]),
            "probes": dict(ledger.tables["probes"]),
        }
    for table, columns in ((ITEMS, item_columns), (LINES, LINES.columns), (PROBES, PROBES.columns)):
        result.add(_diff(table, columns, expected[table.name], side.rows(table, columns)))
    result.add(_diff(BULK, BULK.columns, expected_bulk(ledger), side.rows(BULK, BULK.columns)))
    return result
