"""`archc sweep CONFIG OVERRIDES --cost-only`: a grid of analytic reports, with no Hydra jobs.

The grid is Hydra's: the overrides are parsed by Hydra's OverridesParser
(comma lists, `range()`, `choice()`, `glob()`, ...) and expanded by its
BasicSweeper, so `archc build -m` with the same overrides runs the same
points. Unlike a Hydra multirun, no job folders are made and the config is
composed once per distinct setting of non-`params` keys: each point only
sets its params and elaborates (archdsl.explore.points). The points are
evaluated in shards by an engine (archdsl.explore.engines: here, or on Ray)
and the rows kept in grid order, whichever ran them.
"""
from __future__ import annotations

import time
from functools import lru_cache
from pathlib import Path
from typing import Any

from archdsl.configs.compose import open_params
from archdsl.explore import plots, summary
from archdsl.explore.engines import Engine
from archdsl.explore.points import Base
from archdsl.explore.progress import Meter
from archdsl.language.errors import ConfigError


@lru_cache(maxsize=1)
def _parser():
    from hydra.core.override_parser.overrides_parser import OverridesParser

    return OverridesParser.create()


def _parse(overrides: list[str]):
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    try:
        return _parser().parse_overrides(open_params(overrides))
    except (HydraException, OmegaConfBaseException) as e:
        raise ConfigError(" ".join(str(e).split("\n")[:2]).strip()) from None


def expand(overrides: list[str], parsed=None) -> list[list[str]]:
    """Each point's overrides, exactly as Hydra's BasicSweeper splits a multirun."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper

    parsed = _parse(overrides) if parsed is None else parsed
    return [job for batch in BasicSweeper.split_arguments(parsed, None) for job in batch]


def _settings(parsed) -> dict[str, tuple[str, Any] | None]:
    """Every `key=value` string a job can hold -> (param, value) when a point can just set it.

    Values come from the parsed sweeps themselves (no re-parsing: Hydra's
    parser costs ~1 ms a string); None marks overrides that need composing.
    """
    from hydra.core.override_parser.types import QuotedString, Transformer

    def plain(v):
        if isinstance(v, QuotedString):
            return v.text
        return [plain(x) for x in v] if isinstance(v, list) else v

    out: dict[str, tuple[str, Any] | None] = {}
    for o in parsed:
        key = o.get_key_element()
        name = o.key_or_group.split(".", 1)[1] if (
            o.key_or_group.startswith("params.") and o.key_or_group.count(".") == 1
            and not o.is_delete() and not o.package) else None
        if o.is_sweep_override():  # (text, value) pairs from one pass: shuffled sweeps stay paired
            pairs = o.sweep_iterator(transformer=lambda v: (Transformer.str(v), plain(v)))
        else:
            pairs = [(o.get_value_element_as_str(), plain(o.value()))]
        for text, value in pairs:
            out[f"{key}={text}"] = (name, value) if name else None
    return out


SHARD = 64  # points an engine evaluates at once


def _evaluate(bases: dict[tuple[str, ...], Base], shard: list[tuple[tuple[str, ...], dict]]) -> list[dict]:
    """Each point's result on its base: the shard function the engine runs."""
    return [bases[key].evaluate(point) for key, point in shard]


def run(config: str, overrides: list[str], out: Path, hardware: str | None = None,
        quiet: bool = False, engine: Engine | None = None) -> tuple[list[dict], list[str]]:
    """Evaluate every point of the grid; write summary.csv/json and pareto.png into `out`."""
    parsed = _parse(overrides)
    jobs = expand(overrides, parsed)
    settings = _settings(parsed)
    bases: dict[tuple[str, ...], Base] = {}
    points = []  # (base key, point) per job
    t0 = time.perf_counter()
    for job in jobs:
        point, rest = {}, []
        for o in job:
            s = settings[o]
            if s is None:
                rest.append(o)
            else:
                point[s[0]] = s[1]
        key = tuple(rest)
        base = bases.get(key)
        if base is None:  # a new setting of the other keys: compose it once
            base = bases[key] = Base(config, rest)
            base.check(point, [o[2:] if o.startswith("++params.") else o for o in job])  # as typed
            if hardware and hardware not in base.cfg.hardware:
                raise ConfigError(f"no hardware preset '{hardware}'",
                                  hint=f"presets: {', '.join(base.cfg.hardware)}")
        points.append((key, point))
    meter = Meter(len(jobs), "points")
    rows = []
    shards = [points[lo:lo + SHARD] for lo in range(0, len(points), SHARD)]
    for results in (engine or Engine()).map(_evaluate, bases, shards):
        for res in results:
            rows.append(summary.row(len(rows), jobs[len(rows)], res))
        if not quiet:
            meter.update(len(rows), summary.failed(rows))
    seconds = time.perf_counter() - t0
    if not quiet:
        meter.update(len(rows), summary.failed(rows), force=True)
    first = next(iter(bases.values()), None)
    meta = {"config": config, "overrides": overrides, "points": len(rows), "seconds": seconds,
            "title": f"{first.name if first else config}: {len(rows)} points (cost only)"}
    summary.write(out, rows, meta)
    ridges = {h.name: h.ridge_point for h in first.cfg.hardware_list()} if first else {}
    note = plots.pareto_png(out / "pareto.png", rows, hardware, ridges, title=meta["title"])
    return rows, [note] if note else []

