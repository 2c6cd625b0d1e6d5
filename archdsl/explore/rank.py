"""`archc rank SUMMARY.csv`: constraints and objectives on latency over the
points a search or a sweep left (their summary.csv has a time_<hw>_s
column per hardware preset: a calibrated one is this machine's latency).

Objectives:
- `--latency COL` alone: the fastest first.
- with `--accuracy COL` (a column the user adds, e.g. after training):
  MnasNet's weighted product (Tan et al. 2019, eq. 2),
      reward = ACC · (LAT / T)^w,  w = alpha if LAT <= T else beta,
  with T the target latency (`--target`) and alpha = beta = -0.07 (the
  paper's soft constraint; alpha = 0, beta = -1 is its hard one).
Constraints `--max COL=V` / `--min COL=V` drop the rows outside them.
Writes ranked.csv (the kept rows, best first, with an `objective` column)
and pareto_latency.png: accuracy (or MACs) against latency, the front marked.
"""
from __future__ import annotations

import csv
from pathlib import Path

from archdsl.explore.summary import pareto
from archdsl.language.errors import ConfigError


def read(path: Path) -> list[dict]:
    try:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
    except OSError as e:
        raise ConfigError(f"cannot read {path}: {e.strerror}") from None
    for r in rows:
        for k, v in r.items():
            try:
                r[k] = float(v) if v not in ("", None) else None
            except (TypeError, ValueError):
                pass
    return rows


def _column(rows: list[dict], col: str, what: str) -> None:
    if rows and col not in rows[0]:
        numeric = [k for k, v in rows[0].items() if isinstance(v, float)]
        raise ConfigError(f"no column '{col}' for {what}", hint=f"numeric columns: {', '.join(numeric)}")


def mnasnet_reward(acc: float, lat: float, target: float, alpha: float = -0.07, beta: float = -0.07) -> float:
    """ACC · (LAT / T)^w, w = alpha when LAT <= T, else beta (MnasNet, eq. 2)."""
    return acc * (lat / target) ** (alpha if lat <= target else beta)


def _bound(text: str) -> tuple[str, float]:
    col, _, v = text.partition("=")
    try:
        return col, float(v)
    except ValueError:
        raise ConfigError(f"a bound is COLUMN=NUMBER, not '{text}'") from None


def rank(rows: list[dict], latency: str, accuracy: str | None = None, target: float | None = None,
         alpha: float = -0.07, beta: float = -0.07, maxima=(), minima=()) -> list[dict]:
    """The rows within the bounds, best first, each with its `objective`."""
    _column(rows, latency, "--latency")
    if accuracy:
        _column(rows, accuracy, "--accuracy")
        if target is None or target <= 0:
            raise ConfigError("MnasNet's objective needs the target latency --target T (seconds, > 0)")
    bounds = [(*_bound(m), max) for m in maxima] + [(*_bound(m), min) for m in minima]
    for col, _, _ in bounds:
        _column(rows, col, "a bound")
    kept = []
    for r in rows:
        if r.get("status", "ok") != "ok" or not isinstance(r.get(latency), float):
            continue
        if any(not isinstance(r.get(c), float) or (r[c] > v if f is max else r[c] < v) for c, v, f in bounds):
            continue
        if accuracy:
            if not isinstance(r.get(accuracy), float):
                continue
            r["objective"] = mnasnet_reward(r[accuracy], r[latency], target, alpha, beta)
        else:
            r["objective"] = -r[latency]
        kept.append(r)
    kept.sort(key=lambda r: -r["objective"])
    return kept


def write(rows: list[dict], out: Path, latency: str, accuracy: str | None) -> None:
    out.mkdir(parents=True, exist_ok=True)
    if rows:
        keys = list(rows[0])
        with open(out / "ranked.csv", "w", newline="") as f:
            w = csv.DictWriter(f, keys)
            w.writeheader()
            w.writerows(rows)
    else:
        (out / "ranked.csv").write_text("")
    plot(rows, out / "pareto_latency.png", latency, accuracy or "macs")


def plot(rows: list[dict], path: Path, latency: str, gain: str) -> None:
    """`gain` against latency, one point per row, the Pareto front joined."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pts = [r for r in rows if isinstance(r.get(gain), float)]
    fig, ax = plt.subplots(figsize=(6, 4.5))
    ax.scatter([r[latency] * 1e3 for r in pts], [r[gain] for r in pts], s=10, alpha=0.6)
    front = sorted((pts[i] for i in pareto(pts, latency, gain)), key=lambda r: r[latency])
    ax.plot([r[latency] * 1e3 for r in front], [r[gain] for r in front], color="red", lw=1, marker="o", ms=3)
    ax.set_xlabel(f"{latency} (ms)")
    ax.set_ylabel(gain)
    ax.set_title(f"{gain} vs latency: {len(front)} on the front of {len(pts)}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
