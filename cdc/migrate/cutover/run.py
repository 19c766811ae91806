"""`cdc cutover`: move the application's writes from the source to the target.

Steps, each recorded on the target (`cdc_cutover`) once done, so that a run
that stopped half way continues where it was and a finished one is a no-op:

1. gates: lag, dead letters, last verify (checked only before the fence);
2. fenced: writes stopped on the source (`Engine.fence`);
3. drained: the source's final position is in Kafka and the sink applied
   every message up to the topics' ends (`cdc.migrate.positions.wait_applied`);
4. counters: sequences / AUTO_INCREMENT of the target above the source's;
5. reverse: with `cutover.reverse`, the reverse pipeline's file and start point;
6. verified: a final verify, with nothing in flight;
7. done: the target's own fence (from an earlier rollback) lifted; the
   write-unavailability window (from the fence to here) recorded.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from cdc import metrics
from cdc.engine import EngineFor, Sides
from cdc.engine.cutover import Marker
from cdc.migrate.cutover.gates import Gate, check_gates
from cdc.migrate.cutover.reverse import prepare_start, write_reverse
from cdc.migrate.cutover.sequences import sync_counters
from cdc.migrate.cutover.state import CutoverState
from cdc.migrate.positions import wait_applied
from cdc.migrate.verify.run import verify
from cdc.settings import Settings
from cdc.settings_load import load_settings

STEPS = ("gates", "fenced", "drained", "counters", "reverse", "verified", "done")
Say = Callable[[str, str], None]


class StepFailedError(Exception):
    """A step could not finish; `step` names it, the message says why and what to do."""

    def __init__(self, step: str, message: str) -> None:
        super().__init__(message)
        self.step = step


@dataclass
class CutoverReport:
    pipeline: str
    outcome: str = "done"  # done, already_done, gate_failed, step_failed
    gates: list[Gate] = field(default_factory=list)
    steps: dict[str, str] = field(default_factory=dict)  # step -> what it found or did
    step_seconds: dict[str, float] = field(default_factory=dict)  # steps of this run: how long
    failed_step: str | None = None
    reason: str = ""
    window_s: float | None = None
    reverse_config: str | None = None


def set_phase(step: str) -> None:
    """cdc_cutover_phase: 1 for the step the workflow stands at, 0 for the others."""
    for name in (*STEPS, "rolled_back"):
        metrics.CUTOVER_PHASE.labels(step=name).set(1 if name == step else 0)


def wait_drained(
    settings: Settings, sides: Sides, marker: Marker, timeout_s: float, say: Say, again: str
) -> str:
    """Wait until the source published past `marker` and the sink applied every
    message of its topics; what was waited for. StepFailedError after `timeout_s`,
    its message ending with `again` (what the operator may do next)."""
    result = wait_applied(
        settings,
        sides,
        marker,
        timeout_s,
        lambda: say("drained", f"source published up to {marker}; waiting for the sink"),
    )
    if not result.published:
        raise StepFailedError(
            "drained",
            f"the source of {settings.name} did not put the changes up to {marker} into"
            f" Kafka within {timeout_s:g} s: is its `cdc run` running? {again}",
        )
    if result.left:
        raise StepFailedError(
            "drained",
            f"the sink of {settings.name} still has {sum(result.left.values())} messages to"
            f" apply after {timeout_s:g} s: is its `cdc run` running? {again}",
        )
    messages = sum(high for _, high in result.ends.values())
    return (
        f"source position {marker}; sink applied all {messages} messages"
        f" of {len(result.ends)} partitions"
    )


def cutover(settings: Settings, config_path: Path, say: Say, engines: EngineFor) -> CutoverReport:
    """`engines`: the engine of each side, of this pipeline and of its reverse one."""
    report = CutoverReport(settings.name)
    sides = Sides.of(settings, engines)
    state = CutoverState(settings.name, sides.target)
    done = state.steps()
    if "done" in done:
        at, detail = done["done"]
        report.outcome = "already_done"
        report.steps = {step: detail for step, (_, detail) in done.items()}
        report.window_s = float(detail.split()[0]) if detail else None
        report.reverse_config = done["reverse"][1] if "reverse" in done else None
        set_phase("done")
        say("done", f"already cut over at {at.isoformat()}: nothing to do")
        return report
    if "rolled_back" in done:  # a new attempt after a rollback
        state.clear()
        done = {}
    for step, (_, detail) in done.items():
        report.steps[step] = detail
    try:
        _run_steps(settings, config_path, engines, sides, state, done, report, say)
    except StepFailedError as failed:
        report.outcome = "step_failed"
        report.failed_step = failed.step
        report.reason = str(failed)
    return report


def _run_steps(
    settings: Settings,
    config_path: Path,
    engines: EngineFor,
    sides: Sides,
    state: CutoverState,
    done: dict[str, tuple[datetime, str]],
    report: CutoverReport,
    say: Say,
) -> None:
    cut = settings.cutover

    clock = [time.monotonic()]

    def record(step: str, detail: str) -> datetime:
        now = time.monotonic()
        report.step_seconds[step] = round(now - clock[0], 3)
        clock[0] = now
        report.steps[step] = detail
        set_phase(step)
        say(step, detail)
        return state.record(step, detail)

    if "fenced" not in done:
        report.gates = check_gates(settings, sides)
        for gate in report.gates:
            say(f"gate {gate.name}", ("passed: " if gate.passed else "FAILED: ") + gate.detail)
        failed = [gate for gate in report.gates if not gate.passed]
        if failed:
            report.outcome = "gate_failed"
            report.failed_step = "gates"
            report.reason = "; ".join(f"{g.name}: {g.detail}" for g in failed)
            return
        record("gates", "lag, dead letters and verify passed")
        result = sides.source.fence(cut.fence.terminate_sessions)
        fenced_at = record(
            "fenced", f"{result.where} read-only, {result.sessions_ended} sessions ended"
        )
    else:
        fenced_at = done["fenced"][0]
        say("fenced", f"since {fenced_at.isoformat()} (resumed)")
    if "drained" not in done:
        marker = sides.source.mark(settings.name)
        again = "Run `cdc cutover` again to keep waiting, or `cdc rollback` to lift the fence"
        record("drained", wait_drained(settings, sides, marker, cut.fence.timeout_s, say, again))
    if "counters" not in done:
        synced = sync_counters(settings, sides)
        shown = ", ".join(f"{c.table}.{c.column}={c.value}" for c in synced)
        record(
            "counters", f"{len(synced)} set above the source's" + (f": {shown}" if shown else "")
        )
    if cut.reverse and "reverse" not in done:
        path = write_reverse(settings, sides, config_path, sides.source.tables())
        reverse = load_settings(path)
        prepare_start(reverse, Sides.of(reverse, engines))
        record("reverse", str(path))
    if cut.reverse:
        report.reverse_config = report.steps.get("reverse") or done["reverse"][1]
    if cut.final_verify and "verified" not in done:
        if not verify(settings, engines).equal:
            raise StepFailedError(
                "verified",
                "the final verify found differences: run `cdc verify -c FILE` for the keys;"
                " the source stays read-only until `cdc cutover` succeeds or `cdc rollback`"
                " lifts the fence",
            )
        record("verified", "target equals source")
    sides.target.unfence()
    window = (datetime.now(UTC) - fenced_at).total_seconds()
    report.window_s = window
    metrics.CUTOVER_WRITE_UNAVAILABLE.set(window)
    record("done", f"{window:.3f} s without writes (from the fence to now)")
