"""`cdc rollback`: give the writes back to the old side (the pipeline's source).

After a finished cut-over: fence the target, wait until the reverse pipeline
applied every change made on the target to the source, move the source's
sequences / AUTO_INCREMENT above the target's, then lift the source's fence.
Before one finished (the target never took application writes): only lift the
source's fence. Without any cut-over step recorded it changes nothing. Either
way the reverse pipeline's slot on the target is then dropped
(`Engine.retire_reverse`); while that pipeline still reads it, the rollback
says so and a second `cdc rollback` drops it. Steps are recorded in
`cdc_cutover` like the cut-over's, so an interrupted rollback continues; a
finished one leaves the step `rolled_back` (and `reverse` while its slot
stays) and a later `cdc cutover` starts afresh.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from cdc import metrics
from cdc.engine import EngineFor, Sides
from cdc.migrate.cutover.run import Say, StepFailedError, set_phase, wait_drained
from cdc.migrate.cutover.sequences import sync_counters
from cdc.migrate.cutover.state import CutoverState
from cdc.settings import Settings
from cdc.settings_load import load_settings


@dataclass
class RollbackReport:
    pipeline: str
    outcome: str = "done"  # done, already_done, no_cutover, step_failed
    steps: dict[str, str] = field(default_factory=dict)
    failed_step: str | None = None
    reason: str = ""
    window_s: float | None = None
    warnings: list[str] = field(default_factory=list)


def rollback(settings: Settings, say: Say, engines: EngineFor) -> RollbackReport:
    """`engines`: the engine of each side, of this pipeline and of its reverse one."""
    sides = Sides.of(settings, engines)
    report = RollbackReport(settings.name)
    state = CutoverState(settings.name, sides.target)
    done = state.steps()

    def tell(step: str, detail: str) -> None:
        report.steps[step] = detail
        say(step, detail)

    def record(step: str, detail: str) -> datetime:
        tell(step, detail)
        return state.record(step, detail)

    def retire_reverse() -> tuple[str, ...]:
        """The steps to keep: `reverse` while its slot could not be dropped."""
        if "reverse" not in done:
            return ()
        path = done["reverse"][1]
        reverse = load_settings(path)
        retired, detail = engines(reverse.source).retire_reverse(reverse.name, path)
        if not retired:
            report.warnings.append(detail)
            return ("reverse",)
        tell("reverse_retired", detail)  # not recorded: nothing is left to resume
        return ()

    if "rolled_back" in done:
        report.outcome = "already_done"
        set_phase("rolled_back")
        say("rolled_back", f"already rolled back at {done['rolled_back'][0].isoformat()}")
        if not retire_reverse():
            state.clear(keep=("rolled_back",))
        return report

    if not done:
        # The cut-over records its gates before it fences the source: with no
        # step recorded, cdc fenced nothing. A read-only source is someone
        # else's doing, and stays so.
        report.outcome = "no_cutover"
        say("rolled_back", f"no cut-over of {settings.name} is recorded: nothing to roll back")
        return report

    fenced_at = datetime.now(UTC)
    try:
        if "done" in done:
            if "target_fenced" in done:
                fenced_at = done["target_fenced"][0]
            else:
                result = sides.target.fence(settings.cutover.fence.terminate_sessions)
                fenced_at = record(
                    "target_fenced",
                    f"{result.where} read-only, {result.sessions_ended} sessions ended",
                )
            if "reverse" in done:
                reverse = load_settings(done["reverse"][1])
                back = Sides.of(reverse, engines)
                if "reverse_drained" not in done:
                    timeout = settings.cutover.fence.timeout_s
                    again = (
                        "Run `cdc rollback` again to keep waiting"
                        f" (the reverse pipeline: cdc run -c {done['reverse'][1]})"
                    )
                    marker = back.source.mark(reverse.name)
                    drained = wait_drained(reverse, back, marker, timeout, say, again)
                    record("reverse_drained", drained)
                if "source_counters" not in done:
                    # rows came back with their ids; the source's own counters did not move
                    synced = sync_counters(reverse, back)
                    record("source_counters", f"{len(synced)} set above the target's")
            else:
                report.warnings.append(
                    "the cut-over ran without cutover.reverse: writes made on the target since"
                    " then are not on the source"
                )
    except StepFailedError as failed:
        report.outcome = "step_failed"
        report.failed_step = "reverse_drained" if failed.step == "drained" else failed.step
        report.reason = str(failed)
        return report
    where = sides.source.unfence()
    window = (datetime.now(UTC) - fenced_at).total_seconds() if "done" in done else None
    report.window_s = window
    if window is not None:
        metrics.CUTOVER_WRITE_UNAVAILABLE.set(window)
    state.clear(keep=retire_reverse())
    detail = f"{where} writable again"
    if window is not None:
        detail += f"; {window:.3f} s without writes (from the target's fence to now)"
    record("rolled_back", detail)
    set_phase("rolled_back")
    return report
