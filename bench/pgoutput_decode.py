"""Micro-benchmark of the pgoutput decoder on a captured 10k-row insert stream.

    .venv/bin/python -m bench.pgoutput_decode [--rounds N]

Input: tests/unit/fixtures/pgoutput/bench_inserts_10k.json.gz (Begin,
Relation, 10,000 Inserts of six text-format columns, Commit, as PostgreSQL 15
sent them). Decodes the whole stream `--rounds` times with one `Decoder` and
prints the best round as columns/s, rows/s and ns per column. No server needed.
"""

from __future__ import annotations

import argparse
import gzip
import json
import time
from pathlib import Path

from cdc.postgres.pgoutput import Decoder
from cdc.postgres.pgoutput_messages import Insert

FIXTURE = (
    Path(__file__).resolve().parent.parent
    / "tests/unit/fixtures/pgoutput/bench_inserts_10k.json.gz"
)


def load() -> list[bytes]:
    document = json.loads(gzip.decompress(FIXTURE.read_bytes()))
    return [bytes.fromhex(record["hex"]) for record in document["messages"]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()

    messages = load()
    decoder = Decoder()
    columns = sum(len(m.new) for m in map(decoder.decode, messages) if isinstance(m, Insert))
    rows = sum(1 for data in messages if data[:1] == b"I")
    best = float("inf")
    for _ in range(args.rounds):
        decode = Decoder().decode
        start = time.perf_counter()
        for data in messages:
            decode(data)
        best = min(best, time.perf_counter() - start)
    print(
        f"pgoutput decode: {len(messages)} messages, {rows} rows, {columns} columns;"
        f" best of {args.rounds}: {best * 1e3:.1f} ms"
    )
    print(
        f"  {columns / best / 1e6:.2f} M columns/s, {rows / best / 1e3:.0f} k rows/s,"
        f" {best / columns * 1e9:.0f} ns/column"
    )


if __name__ == "__main__":
    main()
