"""results.json, report.md and (when matplotlib is installed) ratios.png."""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

from bench.workloads import Entry, Result

RSS_NOTE = (
    "Peak RSS is the largest single client process of the runner (GNU time), "
    "database servers excluded."
)


def _entry_json(result: Result, e: Entry) -> dict[str, Any]:
    m = e.measurement
    return {
        "name": e.name,
        "role": e.role,
        "note": e.note,
        "rows": m.rows if m else None,
        "seconds": round(m.seconds, 4) if m else None,
        "rows_per_s": round(m.rows_per_s, 1) if m else None,
        "peak_rss_mb": round(m.peak_rss_mb, 1) if m and m.peak_rss_mb is not None else None,
        "ratio": _round(result.ratio(m)),
        "latency_ms": dict(zip(("p50", "p99", "max"), m.latency_ms, strict=True))
        if m and m.latency_ms
        else None,
        "error": e.error,
    }


def _round(x: float | None) -> float | None:
    return round(x, 4) if x is not None else None


def to_json(results: list[Result], meta: dict[str, Any]) -> dict[str, Any]:
    return {
        "meta": meta,
        "workloads": [
            {
                "name": r.workload,
                "title": r.title,
                "reference": next((e.name for e in r.entries if e.role == "reference"), None),
                "entries": [_entry_json(r, e) for e in r.entries],
            }
            for r in results
        ],
    }


def _ratio_text(x: float | None, *, reference: bool = False) -> str:
    if reference:
        return "1.00x (reference)"
    if x is None:
        return "n/a"
    # Two decimals would flatten the small ratios (0.038 vs 0.044) that matter most.
    return f"{x:.3f}x" if x < 0.1 else f"{x:.2f}x"


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"


def to_markdown(results: list[Result], meta: dict[str, Any], plot: str | None) -> str:
    lines = [
        "# cdc bench report",
        "",
        f"{meta['rows']:,} rows per workload; run {meta['started_at']} on "
        f"{meta['host']['cpus']} CPUs ({meta['host']['platform']}).",
        "Headline figures are ratios: a runner's rows/s over the reference's rows/s, "
        "measured in this run on the same rows (higher is better; 1.00x = as fast as the "
        "reference).",
        "",
        "## Ratios against the reference",
        "",
        _row(["Workload", "Reference", "Runner", "Role", "vs reference"]),
        _row(["---"] * 5),
    ]
    for r in results:
        ref = next((e.name for e in r.entries if e.role == "reference"), "?")
        for e in r.entries:
            if e.role == "reference":
                continue
            cell = f"failed: {e.error}" if e.error else _ratio_text(r.ratio(e.measurement))
            lines.append(_row([r.title, ref, e.name, e.role, cell]))
    if plot:
        lines += ["", f"![ratios against the reference]({plot})"]
    for r in results:
        lines += [
            "",
            f"## {r.title}",
            "",
            _row(["Runner", "Role", "Rows", "Seconds", "Rows/s", "Peak RSS MB", "vs reference"]),
            _row(["---", "---", "---:", "---:", "---:", "---:", "---:"]),
        ]
        for e in r.entries:
            m = e.measurement
            if m is None:
                lines.append(_row([e.name, e.role, "", "", "", "", f"failed: {e.error}"]))
                continue
            rss = f"{m.peak_rss_mb:.0f}" if m.peak_rss_mb is not None else ""
            ratio = _ratio_text(r.ratio(m), reference=e.role == "reference")
            lines.append(
                _row(
                    [
                        e.name,
                        e.role,
                        f"{m.rows:,}",
                        f"{m.seconds:.2f}",
                        f"{m.rows_per_s:,.0f}",
                        rss,
                        ratio,
                    ]
                )
            )
        lines.append("")
        lines += [
            f"- {e.name}: latency p50 {m.latency_ms[0]:.0f} ms, p99 {m.latency_ms[1]:.0f} ms,"
            f" max {m.latency_ms[2]:.0f} ms"
            for e in r.entries
            if (m := e.measurement) is not None and m.latency_ms is not None
        ]
        lines += [f"- {e.name}: {e.note}" for e in r.entries if e.note]
    lines += ["", "## Setup", "", f"- {RSS_NOTE}"]
    lines += [f"- {k}: {v}" for k, v in meta["versions"].items()]
    lines += [f"- command: `{meta['command']}`", ""]
    return "\n".join(lines)


def plot_ratios(results: list[Result], path: Path) -> bool:
    """Bar chart of the ratios; False when matplotlib is not installed (it is optional)."""
    try:
        # Imported by name so the bench type-checks with or without matplotlib installed.
        mpl = importlib.import_module("matplotlib")
    except ImportError:
        return False
    mpl.use("Agg")
    plt = importlib.import_module("matplotlib.pyplot")
    labels: list[str] = []
    values: list[float] = []
    for r in results:
        for e in r.entries:
            x = r.ratio(e.measurement)
            if e.role != "reference" and x is not None:
                labels.append(f"{r.workload}: {e.name}")
                values.append(x)
    if not values:
        return False
    fig, ax = plt.subplots(figsize=(8, 0.6 * len(values) + 1.2))
    ax.barh(labels[::-1], values[::-1], color="#4878a8")
    ax.axvline(1.0, color="#a84848", linestyle="--", linewidth=1)
    ax.set_xlabel("rows/s relative to the workload's reference (1.0 = reference)")
    for y, v in enumerate(values[::-1]):
        ax.annotate(f"{v:.2f}x", (v, y), xytext=(3, 0), textcoords="offset points", va="center")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def write(results: list[Result], meta: dict[str, Any], out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(to_json(results, meta), indent=2) + "\n")
    plot = "ratios.png" if plot_ratios(results, out / "ratios.png") else None
    if plot is None:
        # A chart left from an earlier run would not match this report.
        (out / "ratios.png").unlink(missing_ok=True)
    report = out / "report.md"
    report.write_text(to_markdown(results, meta, plot))
    return report
