"""`archc search SPACE --samples N --keep K --seed S`: sample a design space under cost constraints.

Like pycls's sweep setup: draw N points from the space's samplers, reject
those that break a constraint, drop duplicates, keep the first K. Cheap
checks come first: for RegNet/AnyNet spaces a vectorized closed form
(archdsl.explore.estimate) gives every sample's stages, params, MACs and
activations at once, so only survivors are elaborated — and each of those is
then checked exactly, on every constraint, against its analytic report.

Samples are drawn in chunks, each from its own generator seeded with
(seed, chunk index): a run is reproducible, and a larger N only appends
samples (the first N of a bigger run are the same points).

The kept points are written as configs `archc build` runs
(`defaults: [<base>, _self_]` + params), with summary.csv/json,
histograms.png (their cost distributions) and pareto.png.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from archdsl.explore import plots, summary
from archdsl.explore.estimate import ESTIMATORS, NEEDS, SHAPE_PARAMS, structure_key
from archdsl.explore.points import Base
from archdsl.explore.progress import Meter
from archdsl.explore.space import Space, load_space
from archdsl.language.errors import ConfigError

CHUNK = 8192
CHEAP = ("stages", "params", "macs", "activations")  # what the estimators give, in checking order


@dataclass
class Stats:
    samples: int = 0
    rejected: dict[str, int] = field(default_factory=dict)  # by the first constraint a sample broke
    invalid: int = 0  # the network could not be built from the sample (an error in elaboration)
    duplicates: int = 0
    elaborated: int = 0
    kept: int = 0
    estimator: str | None = None
    seconds: float = 0.0

    def reject(self, key: str, n: int = 1) -> None:
        self.rejected[key] = self.rejected.get(key, 0) + n


def _estimator(base: Base, space: Space):
    """The network's closed-form estimator with its fixed parameters, or None."""
    name = base.network.name
    if name not in ESTIMATORS:
        return None
    fixed = {k: v for k, v in base.values(NEEDS[name]).items() if k not in space.params}
    if any(v is None for v in fixed.values()):
        return None
    return name, fixed


def _value(v: Any) -> Any:
    v = v.tolist() if hasattr(v, "tolist") else v
    return v


def _within(value: float, bounds) -> bool:
    lo, hi = bounds
    return (lo is None or value >= lo) and (hi is None or value <= hi)


def run(space_ref: str, samples: int, keep: int | None, seed: int, out: Path,
        hardware: str | None = None, quiet: bool = False) -> tuple[list[dict], Stats, list[str]]:
    keep = keep or None  # 0: every point that passes
    space = load_space(space_ref)
    base = Base(space.base_path(), space.overrides)
    base.check(space.params, [f"params.{k}" for k in space.params])
    for k in space.constraints:
        if k.startswith("time_") and k[5:-2] not in base.cfg.hardware:
            raise ConfigError(f"{space.path}: no hardware preset '{k[5:-2]}'", key=f"constraints.{k}",
                              hint=f"presets: {', '.join(base.cfg.hardware)}")
    est = _estimator(base, space)
    stats = Stats(estimator=est[0] if est else None)
    order = [k for k in CHEAP if k in space.constraints] + [k for k in space.constraints if k not in CHEAP]
    cheap = [k for k in order if k in CHEAP] if est else []
    other = [k for k in space.params if not est or k not in SHAPE_PARAMS[est[0]]]
    meter = Meter(samples, "samples")
    seen: set = set()
    rows: list[dict] = []
    full = False
    t0 = time.perf_counter()
    for c in range(-(-samples // CHUNK)):
        # Each chunk has its own generator: the first N samples never depend on the total.
        drawn = space.sample(np.random.default_rng([seed, c]), CHUNK)
        m = min(CHUNK, samples - c * CHUNK)
        pts = {k: v[:m] for k, v in drawn.items()}
        why = np.full(m, -1)  # per sample: -1 passed the cheap checks, -2 invalid, else the constraint broken
        if est:
            e = ESTIMATORS[est[0]]({**est[1], **pts}, m)
            why[~e["ok"]] = -2
            for n, k in enumerate(cheap):
                lo, hi = space.constraints[k]
                bad = ((e[k] < lo) if lo is not None else False) | ((e[k] > hi) if hi is not None else False)
                why[(why == -1) & bad] = n
        upto = m
        for i in np.flatnonzero(why == -1):
            point = {k: _value(v[i]) for k, v in pts.items()}
            if est:
                key = structure_key(e, int(i), tuple(repr(point[k]) for k in other))
                if key in seen:
                    stats.duplicates += 1
                    continue
            res = base.evaluate(point, stages=True)
            stats.elaborated += 1
            if res["status"] != "ok":
                stats.invalid += 1
                continue
            broken = next((k for k in order if not _within(_metric(res, k), space.constraints[k])), None)
            if broken:
                stats.reject(broken)
                continue
            if not est:  # no structure key: networks equal in every total are one point
                key = (res["stages"], res["params"], res["macs"], res["activations"], res["bytes"])
                if key in seen:
                    stats.duplicates += 1
                    continue
            seen.add(key)
            row = summary.row(len(rows), [], res, point)
            row["sample"] = c * CHUNK + int(i)
            row["stages"] = res["stages"]
            rows.append(row)
            if keep is not None and len(rows) >= keep:
                full, upto = True, int(i) + 1
                break
        head = why[:upto]  # what the cheap checks rejected among the samples looked at
        stats.invalid += int((head == -2).sum())
        for n, k in enumerate(cheap):
            stats.reject(k, int((head == n).sum()))
        stats.samples = c * CHUNK + upto
        if not quiet:
            meter.update(stats.samples, 0)
        if full:
            break
    stats.kept = len(rows)
    stats.seconds = time.perf_counter() - t0
    if not quiet:
        meter.update(stats.samples, 0, force=True)
    notes = write(space, base, rows, stats, seed, out, hardware)
    return rows, stats, notes


def _metric(res: dict, key: str) -> float:
    if key.startswith("time_"):
        return res["roofline_s"][key[5:-2]]
    return res[key]


def write(space: Space, base: Base, rows: list[dict], stats: Stats, seed: int, out: Path,
          hardware: str | None) -> list[str]:
    """The kept points as configs, summary.csv/json, histograms.png and pareto.png."""
    cfg_dir = out / "configs"
    for r in rows:
        point = {k[7:]: v for k, v in r.items() if k.startswith("params.")}
        path = base.write_config(cfg_dir / f"{space.name}_{r['job']:04d}.yaml", point,
                                 comment=f"sample {r['sample']} of space {space.label()} (seed {seed}); "
                                         f"{r['macs'] / 1e6:.1f} MMACs, {r['params'] / 1e6:.2f} M params")
        r["config"] = str(path)
    meta = {"space": space.path, "base": space.base, "seed": seed, "constraints": space.constraints,
            "stats": stats.__dict__, "title": f"{space.name}: {len(rows)} points kept of {stats.samples}"}
    summary.write(out, rows, meta)
    ridges = {h.name: h.ridge_point for h in base.cfg.hardware_list()}
    notes = [plots.histograms_png(out / "histograms.png", rows, hardware, meta["title"]),
             plots.pareto_png(out / "pareto.png", rows, hardware, ridges, meta["title"])]
    return [n for n in notes if n]


def describe(stats: Stats) -> str:
    rej = ", ".join(f"{v} on {k}" for k, v in stats.rejected.items() if v) or "none"
    how = f"closed-form {stats.estimator} estimate, then elaboration" if stats.estimator else "elaboration"
    rate = stats.samples / stats.seconds if stats.seconds else 0.0
    return (f"{stats.samples} samples in {stats.seconds:.1f} s ({rate:,.0f}/s; checks: {how}): "
            f"rejected {rej}; {stats.invalid} invalid, {stats.duplicates} duplicates, "
            f"{stats.elaborated} elaborated, {stats.kept} kept")
