"""The run's report, for a person: the seed, the faults, the rows, what differs,
the recovery times, and the command that runs the same faults again."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from tests.chaos.compare import Difference
from tests.chaos.nemesis import Nemesis

GOAL_S = 5.0
SLOWEST_SHOWN = 12


@dataclass
class Verdict:
    text: str
    failures: list[str]


def report(nemesis: Nemesis, found: dict[str, tuple[Difference, Difference]]) -> Verdict:
    failures = list(nemesis.problems)
    command = (
        f"CHAOS_SEED={nemesis.seed} CHAOS_FAULTS={nemesis.faults} "
        f"CHAOS_LONG_ROWS={nemesis.long_rows} make test-chaos"
    )
    lines = [
        f"chaos run: seed {nemesis.seed}, {nemesis.faults} faults; logs in {nemesis.workdir}",
        f"again: {command}",
        "",
    ]
    kinds = Counter(o.kind for o in nemesis.outcomes if o.kind not in ("start", "end"))
    lines.append("faults by kind:")
    lines += [f"  {count:3d}  {kind}" for kind, count in sorted(kinds.items())]
    lines.append("")
    for pipeline in nemesis.pipelines:
        label = pipeline.label
        ledger = nemesis.ledgers[label]
        source, target = found[label]
        dead = nemesis.dead_letters(pipeline)
        poisoned = nemesis.poisoned.get(label, 0)
        rows = {t: len(r) for t, r in ledger.tables.items()}
        settled = ledger.settled
        lines += [
            f"{label}:",
            f"  transactions committed {settled.committed}, reply lost then found committed"
            f" {settled.unknown_committed}, reply lost and rolled back"
            f" {settled.unknown_rolled_back}",
            f"  rows at the end: items {rows['items']}, lines {rows['lines']},"
            f" probes {rows['probes']}, bulk {ledger.bulk_rows()}"
            f" (snapshots taken again after a lost position: {pipeline.generation})",
            f"  target against the ledger: {target.summary()}",
            f"  source against the ledger: {source.summary()}",
            f"  dead letters: {dead} ({poisoned} poison messages written)",
        ]
        if not target.clean:
            failures.append(f"{label}: the target differs from the ledger: {target.summary()}")
        if not source.clean:
            failures.append(
                f"{label}: the source differs from the ledger (the run's own"
                f" bookkeeping): {source.summary()}"
            )
        if dead != poisoned:
            failures.append(f"{label}: {dead} dead letters, {poisoned} expected")
    lines += [
        "",
        f"positions checked while Kafka was down: {nemesis.slot_checks} times",
        "",
        f"recovery (fault end to probe row on the target; goal {GOAL_S:.0f} s):",
        "  kind                         median      max  probes",
    ]
    for kind, (median, longest, probes) in sorted(nemesis.recovery_by_kind().items()):
        # the first probe waits for the start-up and the snapshot; the last for the backlog
        mark = "" if longest <= GOAL_S or kind in ("start", "end") else "  over the goal"
        lines.append(f"  {kind:28s} {median:6.2f} s {longest:6.2f} s  {probes:5d}{mark}")
    slow = sorted(
        (
            (seconds, o, label)
            for o in nemesis.outcomes
            if o.number
            for label, seconds in o.recovery.items()
            if seconds is not None and seconds > GOAL_S
        ),
        key=lambda found: -found[0],
    )
    if slow:
        # to take apart in the logs: a pipeline taking a new snapshot, a busy machine
        lines += ["", f"slowest recoveries ({len(slow)} over the goal):"]
        lines += [
            f"  fault {o.number} at {o.at}, {o.kind} (drawn: {o.pipeline}): {label} {s:.1f} s"
            for s, o, label in slow[:SLOWEST_SHOWN]
        ]
    if failures:
        lines += ["", "FAILED:", *(f"  - {f}" for f in failures), "", f"reproduce: {command}"]
    return Verdict("\n".join(lines), failures)
