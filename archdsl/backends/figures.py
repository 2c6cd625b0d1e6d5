"""Figures of one cost report, as PNG bytes: the cost per section, and the
roofline of every layer on each hardware preset (MobileNetV4's picture).

matplotlib is optional (`pip install archdsl[sweep]`); without it each
figure is None and its page says why. `rep` is a backends.cost.Report.
"""
from __future__ import annotations

import io
import math

from archdsl.compiler.ir import section_of

NO_MATPLOTLIB = "matplotlib is not installed (pip install 'archdsl[sweep]'): no figures"


def pyplot():
    """matplotlib.pyplot drawing to files only, or None when matplotlib is missing."""
    try:
        import matplotlib
    except ImportError:
        return None
    matplotlib.use("Agg")  # never open a window
    import matplotlib.pyplot as plt

    return plt


def _png(plt, fig) -> bytes:
    # Margins are laid out by the figures themselves (fixed, or constrained
    # once): a "tight" bounding box measures every text again, which was most
    # of a build's time on a small model.
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return buf.getvalue()


def section_bars(rep) -> bytes | None:
    """Params, MACs, bytes moved and roofline time (first preset) of each section, as bars."""
    plt = pyplot()
    if plt is None:
        return None
    secs = rep.by_section()
    names = list(secs)
    panels = [("params (M)", [t.params / 1e6 for t in secs.values()]),
              ("MACs (G)", [t.macs / 1e9 for t in secs.values()]),
              ("bytes moved (MB)", [t.bytes / 1e6 for t in secs.values()])]
    if rep.hardware:
        hw = rep.hardware[0]
        times = {k: 0.0 for k in names}
        for l in rep.layers:
            times[section_of(l.name)] += l.time(hw)
        panels.append((f"roofline time on {hw.name} (ms)", [times[k] * 1e3 for k in names]))
    width = max(map(len, names)) * 0.07 + 0.3  # inches of the section names left of the first panel
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels) + width, 0.35 * len(names) + 1.2), sharey=True)
    fig.subplots_adjust(left=width / fig.get_figwidth(), right=0.98, top=1 - 0.75 / fig.get_figheight(),
                        bottom=0.3 / fig.get_figheight(), wspace=0.08)
    for ax, (title, values) in zip(axes, panels):
        ax.barh(range(len(names)), values, color="#4c72b0")
        ax.set_title(title, fontsize=9, y=1.0)  # y given: placed, not measured against the tick labels
        ax.tick_params(labelsize=8)
    axes[0].set_yticks(range(len(names)), names)
    axes[0].invert_yaxis()
    fig.suptitle(f"{rep.name}: cost per section", fontsize=10)
    return _png(plt, fig)


def roofline(rep) -> bytes | None:
    """One panel per hardware preset: the roof (attainable MACs/s against MACs per
    byte moved) and every layer with MACs on it, sized by its share of the time."""
    plt = pyplot()
    if plt is None or not rep.hardware:
        return None
    layers = [l for l in rep.layers if l.macs and l.bytes]
    sections = list(rep.by_section())
    colors = plt.get_cmap("viridis")
    n = len(rep.hardware)
    cols = min(n, 2)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 3.8 * rows + 0.5), squeeze=False)
    xs = [l.macs / l.bytes for l in layers] or [1.0]
    for ax, hw in zip(axes.flat, rep.hardware):
        lo = min(min(xs) / 2, hw.ridge_point / 20)
        hi = max(max(xs) * 2, hw.ridge_point * 20)
        grid = [lo * (hi / lo) ** (i / 200) for i in range(201)]
        ax.plot(grid, [min(hw.peak_macs, hw.mem_bw * x) for x in grid], color="black", lw=1.2)
        ax.axvline(hw.ridge_point, color="grey", ls=":", lw=1)
        total = rep.roofline(hw) or 1.0
        for sec_i, sec in enumerate(sections):
            mine = [l for l in layers if section_of(l.name) == sec]
            if mine:
                ax.scatter([l.macs / l.bytes for l in mine], [l.macs / l.time(hw) for l in mine],
                           s=[8 + 400 * l.time(hw) / total for l in mine], alpha=0.7,
                           color=colors(sec_i / max(1, len(sections) - 1)), label=sec, edgecolors="none")
        no_macs = [l for l in rep.layers if not l.macs]
        share = sum(l.time(hw) for l in no_macs) / total
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.minorticks_off()  # log axes' minor ticks were most of a build's time, and read no better
        ax.set_xlabel("operational intensity (MACs / byte)", fontsize=8)
        ax.set_ylabel("attainable MACs / s", fontsize=8)
        ax.set_title(f"{hw.name}: ridge {hw.ridge_point:.3g} MACs/B\n{len(no_macs)} layers without MACs "
                     f"({100 * share:.0f}% of the time) not shown", fontsize=8, y=1.0)  # y: no text measured
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[n:]:
        ax.set_visible(False)
    axes.flat[0].legend(fontsize=6, ncol=2, loc="lower right")
    fig.suptitle(f"{rep.name}: roofline of every layer (dot area: share of the time)", fontsize=10)
    height = fig.get_figheight()  # margins in inches: the title above, the axis labels below
    fig.subplots_adjust(left=0.9 / fig.get_figwidth(), right=0.98, bottom=0.55 / height, top=1 - 0.95 / height,
                        hspace=0.6, wspace=0.3)
    return _png(plt, fig)
