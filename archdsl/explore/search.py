"""`archc search SPACE --samples N --keep K --seed S`: sample a design space under cost constraints.

Like pycls's sweep setup: draw N points from the space's samplers, reject
those that break a constraint, drop duplicates, keep the first K. Every
sample goes through the compiler's one path, for any recipe: elaboration
(equal blocks and ops are made once across samples: the block and op memos)
and the analytic report. Upper bounds on totals that only grow (stages,
params, MACs, activations, bytes) stop a sample at the section where it
passes one (points.Base.evaluate), so most rejected samples are only partly
elaborated; the rest are checked on every constraint against their report.

Samples are drawn in chunks, each from its own generator seeded with
(seed, chunk index): a run is reproducible, and a larger N only appends
samples (the first N of a bigger run are the same points).

Shards of a chunk are checked and evaluated by `_scan`, a pure function an
engine (archdsl.explore.engines) runs here or on Ray workers; `run` folds
their outcomes in sample order (duplicates, --keep, counts), so every
engine keeps the same points in the same order.

The kept points are written as configs `archc build` runs
(`defaults: [<base>, _self_]` + params), with summary.csv/json,
histograms.png (their cost distributions) and pareto.png.
"""
from __future__ import annotations

import time
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from archdsl.explore import plots, summary
from archdsl.explore.engines import Engine
from archdsl.explore.points import BOUNDED, Base
from archdsl.explore.progress import Meter
from archdsl.explore.space import Space, load_space
from archdsl.language.errors import ArchError, ConfigError

CHUNK = 8192
SHARD = 1024  # samples an engine evaluates at once; a chunk is CHUNK // SHARD shards
HOPELESS = SHARD  # when this many first samples all fail to build, the space is wrong: say why and stop


@dataclass
class Stats:
    samples: int = 0
    # by the first constraint a sample broke (a sample stopped while being built: the bound it passed)
    rejected: dict[str, int] = field(default_factory=dict)
    invalid: int = 0  # the network could not be built from the sample (an error in elaboration)
    duplicates: int = 0
    elaborated: int = 0
    kept: int = 0
    seconds: float = 0.0

    def reject(self, key: str, n: int = 1) -> None:
        self.rejected[key] = self.rejected.get(key, 0) + n


def _value(v: Any) -> Any:
    return v.tolist() if hasattr(v, "tolist") else v


def _within(value: float, bounds) -> bool:
    lo, hi = bounds
    return (lo is None or value >= lo) and (hi is None or value <= hi)


@dataclass
class _Plan:
    """What every shard of one search needs; an engine sends it once to each worker."""
    space: Space
    base: Base
    seed: int
    bounds: dict  # upper bounds on growing totals: a sample past one stops being elaborated there
    drawn: tuple = (None, None)  # (chunk, its samples): the last chunk this process drew

    def draw(self, c: int) -> dict[str, np.ndarray]:
        if self.drawn[0] != c:
            # Each chunk has its own generator: the first N samples never depend on the total.
            self.drawn = (c, self.space.sample(np.random.default_rng([self.seed, c]), CHUNK))
        return self.drawn[1]


def _scan(plan: _Plan, shard: tuple[int, int, int]) -> list[tuple[int, dict, dict]]:
    """Samples lo..hi of chunk c, each evaluated: (index, point, result). Pure:
    the same on any engine."""
    c, lo, hi = shard
    drawn = plan.draw(c)
    out = []
    for i in range(lo, hi):
        point = {k: _value(v[i]) for k, v in drawn.items()}
        out.append((i, point, plan.base.evaluate(point, stages=True, bounds=plan.bounds)))
    return out


def _shards(samples: int):
    """(chunk, lo, hi) of each shard, lazily: a huge --samples costs nothing up front."""
    for c in range(-(-samples // CHUNK)):
        for lo in range(0, min(CHUNK, samples - c * CHUNK), SHARD):
            yield c, lo, min(lo + SHARD, samples - c * CHUNK)


def _base(space: Space) -> Base:
    """The space's base config, composed; an error that names no place names the key `base`."""
    try:
        return Base(space.base_path(), space.overrides)
    except ConfigError as e:
        if e.loc or e.key or e.override:
            raise
        raise ConfigError(f"{space.path}: {e.message}", key="base", hint=e.hint) from None


def check_options(samples: int, keep: int | None, seed: int) -> None:
    """What the command line may ask (argparse has made them ints)."""
    for option, value, least in (("--samples", samples, 1), ("--keep", keep or 0, 0), ("--seed", seed, 0)):
        if value < least:
            raise ConfigError(f"{option} {value}: must be >= {least}")


def run(space_ref: str, samples: int, keep: int | None, seed: int, out: Path,
        hardware: str | None = None, quiet: bool = False,
        engine: Engine | None = None) -> tuple[list[dict], Stats, list[str]]:
    check_options(samples, keep, seed)
    keep = keep or None  # 0: every point that passes
    space = load_space(space_ref)
    base = _base(space)
    base.check(space.params, [f"params.{k}" for k in space.params])
    for k in space.constraints:
        if k.startswith("time_") and k[5:-2] not in base.cfg.hardware:
            raise ConfigError(f"{space.path}: no hardware preset '{k[5:-2]}'", key=f"constraints.{k}",
                              hint=f"presets: {', '.join(base.cfg.hardware)}")
    if hardware is not None and hardware not in base.cfg.hardware:  # before the search, not after it
        raise ConfigError(f"--hardware {hardware}: no such hardware preset",
                          hint=f"presets: {', '.join(base.cfg.hardware)}")
    stats = Stats()
    order = list(space.constraints)
    bounds = {k: hi for k, (lo, hi) in space.constraints.items() if k in BOUNDED and hi is not None}
    plan = _Plan(space, base, seed, bounds)
    meter = Meter(samples, "samples")
    seen: set = set()
    rows: list[dict] = []
    full = False
    first_error = None
    t0 = time.perf_counter()
    with closing((engine or Engine()).map(_scan, plan, _shards(samples))) as scanned:
        for (c, lo, hi), evaluated in zip(_shards(samples), scanned):
            upto = hi - lo
            for i, point, res in evaluated:
                stats.elaborated += 1
                if res["status"] == "exceeded":  # stopped where its cost passed the bound
                    stats.reject(res["constraint"])
                    continue
                if res["status"] != "ok":
                    stats.invalid += 1
                    first_error = first_error or res["error"]
                    if stats.invalid == HOPELESS == stats.elaborated:
                        raise ArchError(f"the first {HOPELESS:,} samples of {space.path} all fail to build "
                                        f"(the space or its base is wrong); the first:\n{first_error}")
                    continue
                broken = next((k for k in order if not _within(_metric(res, k), space.constraints[k])), None)
                if broken:
                    stats.reject(broken)
                    continue
                # networks equal in every total are one point (other samples of one structure)
                key = (res["stages"], res["params"], res["macs"], res["activations"], res["bytes"])
                if key in seen:
                    stats.duplicates += 1
                    continue
                seen.add(key)
                row = summary.row(len(rows), [], res, point)
                row["sample"] = c * CHUNK + i
                row["stages"] = res["stages"]
                rows.append(row)
                if keep is not None and len(rows) >= keep:
                    full, upto = True, i - lo + 1
                    break
            stats.samples = c * CHUNK + lo + upto
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
    rate = stats.samples / stats.seconds if stats.seconds else 0.0
    return (f"{stats.samples} samples in {stats.seconds:.1f} s ({rate:,.0f}/s): "
            f"rejected {rej}; {stats.invalid} invalid, {stats.duplicates} duplicates, "
            f"{stats.elaborated} elaborated, {stats.kept} kept")
