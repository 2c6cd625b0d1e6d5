"""Figures of a summary: pareto.png (sweeps) and histograms.png (search).

matplotlib is an optional dependency (`pip install archdsl[sweep]`); without
it the summaries are still written and the figure is skipped with a note.
"""
from __future__ import annotations

import os
from pathlib import Path

from archdsl.backends.figures import pyplot as _pyplot
from archdsl.explore.summary import hardware_names, pareto, time_key

HIST_METRICS = [("macs", "MACs (M)", 1e-6), ("params", "params (M)", 1e-6),
                ("activations", "activations (M)", 1e-6)]


def _save(fig, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    os.replace(tmp, path)


def pick_hardware(rows: list[dict], wanted: str | None) -> str | None:
    """The preset of the time panel: the one asked for, else a100, else the first."""
    names = hardware_names(rows)
    if wanted:
        if wanted not in names:
            from archdsl.language.errors import ArchError
            raise ArchError(f"no hardware preset '{wanted}' in the results",
                            hint=f"presets: {', '.join(names) or 'none'}")
        return wanted
    return "a100" if "a100" in names else (names[0] if names else None)


def _prepare(figure: str, rows: list[dict], hardware: str | None):
    """(pyplot, successful rows, hardware preset, None), or a note saying why `figure` is skipped."""
    plt = _pyplot()
    if plt is None:
        return None, [], None, f"{figure} skipped: matplotlib is not installed (pip install 'archdsl[sweep]')"
    ok = [r for r in rows if r.get("status") == "ok"]
    if not ok:
        return None, [], None, f"{figure} skipped: no point succeeded"
    return plt, ok, pick_hardware(rows, hardware), None


def pareto_png(path: Path, rows: list[dict], hardware: str | None, ridges: dict[str, float] | None = None,
               title: str = "") -> str | None:
    """MACs vs params, and roofline time at `hardware` vs MACs; Pareto fronts marked.

    Returns a note when the figure could not be drawn (no matplotlib, no points).
    """
    plt, ok, hw, note = _prepare("pareto.png", rows, hardware)
    if note:
        return note
    panels = [("params", "macs", "params (M)", "MACs (G)", 1e-6, 1e-9)]
    if hw:
        panels.append(("macs", time_key(hw), "MACs (G)", f"roofline time on {hw} (ms)", 1e-9, 1e3))
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4.6), squeeze=False)
    for ax, (xk, yk, xl, yl, xs, ys) in zip(axes[0], panels):
        ax.scatter([r[xk] * xs for r in ok], [r[yk] * ys for r in ok], s=14, alpha=0.6, label="points")
        # Front: most MACs for the params (panel 1) or for the time (panel 2).
        idx = pareto(ok, "params", "macs") if yk == "macs" else pareto(ok, yk, "macs")
        front = sorted((ok[i][xk] * xs, ok[i][yk] * ys) for i in idx)
        if front:
            ax.plot(*zip(*front), "r.-", ms=9, lw=1.2, label=f"Pareto front ({len(front)})")
        ax.set_xlabel(xl)
        ax.set_ylabel(yl)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    if hw and ridges and hw in ridges:
        axes[0][1].set_title(f"{hw}: ridge point {ridges[hw]:.1f} MACs/byte", fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    _save(fig, Path(path))
    plt.close(fig)
    return None


def histograms_png(path: Path, rows: list[dict], hardware: str | None, title: str = "") -> str | None:
    """Distributions of MACs, params, activations and roofline time of the points."""
    plt, ok, hw, note = _prepare("histograms.png", rows, hardware)
    if note:
        return note
    metrics = list(HIST_METRICS) + ([(time_key(hw), f"roofline time on {hw} (ms)", 1e3)] if hw else [])
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.6 * len(metrics), 3.2), squeeze=False)
    for ax, (k, label, scale) in zip(axes[0], metrics):
        ax.hist([r[k] * scale for r in ok], bins=min(30, max(5, len(ok) // 3)), color="tab:blue", alpha=0.8)
        ax.set_xlabel(label)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("points")
    if title:
        fig.suptitle(title, fontsize=10)
    _save(fig, Path(path))
    plt.close(fig)
    return None
