"""`archc scale`: model scaling rules that write configs `archc build` runs.

- efficientnet: compound scaling (Tan & Le 2019). Depth, width and
  resolution grow as alpha^phi, beta^phi, gamma^phi with
  alpha * beta^2 * gamma^2 ~ 2, so FLOPs grow ~2^phi. `--search` does the
  paper's step 1 with analytic costs in place of accuracy: every (alpha,
  beta, gamma) on a grid that meets the constraint is applied at phi = 1 and
  its real MACs, activations and roofline time are computed; the candidates
  whose real MACs double the base's (within a tolerance) are ranked.
- dwr: fast compound scaling (Dollár, Singh & Girshick 2021, "Fast and
  Accurate Model Scaling"). Scaling FLOPs by s, depth grows s^((1-a)/2),
  width s^(a/2), resolution s^((1-a)/4); a = 0.8 is the paper's dWr
  (pycls's scale type d1_w8_g8_r1, which also scales group widths as width).
- resnext: the ResNeXt iso-FLOP rule (Xie et al. 2017, Table 2). For a
  bottleneck of outer width 4C and G groups of width c, FLOPs per position
  are 9Gc^2 + 8GCc; the c that keeps a base's FLOPs solves
  9Gc^2 + 8GCc - F0 = 0 (F0 = 17C^2 for a ResNet, G = 1, c = C).

Factors reach a network in two ways: recipes with `depth_mult`/`width_mult`
multipliers (EfficientNet, MobileNetV2, ...) take them as they are (their
own rounding applies), and RegNet/AnyNet are scaled per stage with pycls's
rounding (pycls/models/scaler.py): d -> max(1, round(d*s_d)),
w -> 8*max(1, round(w*s_w/8)), g -> max(1, round(g*s_g)) snapped to
1, 2, 4 or a multiple of 8, resolution -> 4*round(r*s_r/4); a RegNet is
first written as the AnyNet of its stages (recipes/anynet.arch).
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from archdsl.backends.units import fmt_seconds
from archdsl.explore import summary
from archdsl.explore.estimate import stage_lists
from archdsl.explore.points import Base
from archdsl.language.errors import ConfigError

RULES = ("efficientnet", "dwr", "resnext")


# ---------------------------------------------------------------- the rules' arithmetic

def compound(phi: float, alpha: float, beta: float, gamma: float) -> tuple[float, float, float, float]:
    """EfficientNet: (depth, width, group width, resolution) factors at phi."""
    return alpha ** phi, beta ** phi, 1.0, gamma ** phi


def fast(s: float, a: float = 0.8) -> tuple[float, float, float, float]:
    """Dollár et al.: factors that scale FLOPs by s, mostly along width (a = 1: width only)."""
    e_d, e_w, e_r = (1 - a) / 2, a / 2, (1 - a) / 4
    return s ** e_d, s ** e_w, s ** e_w, s ** e_r


def iso_flop_group_width(groups: int, c_base: float, groups_base: int, planes: int = 64) -> float:
    """ResNeXt: the group width c with 9Gc^2 + 8G*C*c = 9*G0*c0^2 + 8*G0*C*c0 (C = planes)."""
    f0 = 9 * groups_base * c_base ** 2 + 8 * groups_base * planes * c_base
    g, C = groups, planes
    return (-8 * g * C + math.sqrt((8 * g * C) ** 2 + 36 * g * f0)) / (18 * g)


def _snap_group(g: int) -> int:
    return g if g <= 2 else 4 if g <= 5 else round(g / 8) * 8  # pycls


def _res(base_res: int, r: float) -> int:
    return round(base_res * r / 4) * 4


# ---------------------------------------------------------------- applying factors

class Scaler:
    """Applies (depth, width, group, resolution) factors to one base config."""

    def __init__(self, config: str, overrides: list[str] | None = None):
        self.base = Base(config, overrides or [])
        names = set(self.base.param_names)
        self.kind = ("stages" if self.base.network.name in ("regnet", "anynet")
                     else "multipliers" if {"depth_mult", "width_mult", "res"} <= names else None)
        self.target = self.base
        if self.kind == "stages":
            self.params = dict(self.base.defaults(), **self.base.cfg.params)
            self.stages = stage_lists(self.base.network.name, self.params)
            if self.base.network.name == "regnet":  # scaled as the AnyNet of its stages
                self.target = Base("base", ["recipe=anynet"])

    def require(self, rule: str) -> None:
        if self.kind is None:
            raise ConfigError(
                f"{rule} scaling needs a network with depth_mult, width_mult and res parameters "
                f"(EfficientNet, MobileNetV2, ...) or a RegNet/AnyNet; '{self.base.network.name}' has "
                f"{', '.join(self.base.param_names)}")

    def point(self, d: float, w: float, g: float, r: float) -> dict[str, Any]:
        if self.kind == "multipliers":
            p = self.base.values(("depth_mult", "width_mult", "res"))
            return {"depth_mult": round(p["depth_mult"] * d, 4), "width_mult": round(p["width_mult"] * w, 4),
                    "res": _res(p["res"], r)}
        st = self.stages
        widths = [max(1, round(x * w / 8)) * 8 for x in st["widths"]]
        point = {"depths": [max(1, round(x * d)) for x in st["depths"]], "widths": widths,
                 "group_ws": [_snap_group(max(1, round(x * g))) for x in st["group_ws"]],
                 "bottlenecks": st["bottlenecks"]}
        point = stage_lists("anynet", point)  # widths made compatible with the group widths, as written
        keep = [k for k in ("se", "classes", "dropout", "stem_width") if k in self.params]
        point.update({k: self.params[k] for k in keep}, res=_res(self.params["res"], r))
        return point

    def evaluate(self, point: dict) -> dict:
        return self.target.evaluate(point)

    def write(self, path: Path, point: dict, comment: str) -> Path:
        if self.target is self.base:
            return self.base.write_config(path, point, comment)
        return self.base.write_config(path, point, comment, recipe="anynet")


# ---------------------------------------------------------------- the command

def _row(job: int, label: str, res: dict, base_macs: int, extra: dict) -> dict:
    """A summary row; `job` numbers it (an int, as in every summary), `point` names it."""
    r = summary.row(job, [], res)
    r["point"] = label
    if res["status"] == "ok":
        r["macs_x"] = round(res["macs"] / base_macs, 4)
    r.update(extra)
    return r


def run(rule: str, config: str, out: Path, *, phis=(1, 2, 3), alpha=1.2, beta=1.1, gamma=1.15,
        search: bool = False, grid_step: float = 0.05, tolerance: float = 0.1, objective: str = "time",
        hardware: str | None = None, keep: int = 3, factors=(2, 4, 8), a: float = 0.8,
        groups=(1, 2, 4, 8, 16, 32, 64)) -> list[dict]:
    """Evaluate the rule's points, write their configs (and summary.csv/json) into `out`."""
    if rule not in RULES:
        raise ConfigError(f"no scaling rule '{rule}'", hint=f"rules: {', '.join(RULES)}")
    sc = Scaler(config)
    base_res = sc.base.evaluate({})
    if base_res["status"] != "ok":
        raise ConfigError(f"the base config does not build:\n{base_res['error']}")
    base_macs = base_res["macs"]
    hw = hardware or ("a100" if "a100" in sc.base.cfg.hardware else next(iter(sc.base.cfg.hardware), None))
    if hardware and hardware not in sc.base.cfg.hardware:
        raise ConfigError(f"no hardware preset '{hardware}'", hint=f"presets: {', '.join(sc.base.cfg.hardware)}")
    rows = [_row(0, "base", base_res, base_macs, {"config": sc.base.config})]
    rows[0]["params.res"] = sc.base.values(["res"])["res"]
    cfg_dir = out / "configs"
    name = sc.base.name

    def emit(label: str, point: dict, extra: dict, comment: str, write: bool = True) -> dict:
        res = sc.evaluate(point)
        r = _row(len(rows), label, res, base_macs, extra)
        if write and res["status"] == "ok":
            r["config"] = str(sc.write(cfg_dir / f"{name}_{label}.yaml", point, comment))
        r.update({f"params.{k}": v for k, v in point.items()})
        rows.append(r)
        return r

    if rule == "efficientnet":
        sc.require(rule)
        if search:
            cands = []
            steps = [round(1 + i * grid_step, 6) for i in range(int(round(1 / grid_step)) + 1)]
            for al in steps:
                for be in steps[: len(steps) // 2 + 1]:
                    for ga in steps[: len(steps) // 2 + 1]:
                        nominal = al * be ** 2 * ga ** 2
                        if abs(nominal / 2 - 1) <= tolerance:
                            cands.append((al, be, ga, nominal))
            for al, be, ga, nominal in cands:
                emit(f"a{al:g}_b{be:g}_g{ga:g}", sc.point(*compound(1, al, be, ga)),
                     {"alpha": al, "beta": be, "gamma": ga, "nominal": round(nominal, 4)}, "", write=False)
            # The formula is nominal (rounding moves real MACs): rank those that really double.
            ok = [r for r in rows[1:] if r["status"] == "ok" and abs(r["macs_x"] / 2 - 1) <= tolerance]
            # Per MAC: the candidates' real MACs differ by up to the tolerance.
            key = {"time": lambda r: r[summary.time_key(hw)] / r["macs"],
                   "activations": lambda r: r["activations"] / r["macs"],
                   "macs": lambda r: abs(r["macs_x"] - 2)}[objective]
            for rank, r in enumerate(sorted(ok, key=key)[:keep]):
                point = {k[7:]: v for k, v in r.items() if k.startswith("params.")}
                r["rank"] = rank + 1
                r["config"] = str(sc.write(cfg_dir / f"{name}_{r['point']}.yaml", point,
                                           f"EfficientNet step 1 (phi=1), alpha={r['alpha']}, beta={r['beta']}, "
                                           f"gamma={r['gamma']}: rank {rank + 1} by {objective}"))
        else:
            for phi in phis:
                d, w, g, r = compound(phi, alpha, beta, gamma)
                emit(f"phi{phi:g}", sc.point(d, w, g, r), {"phi": phi, "d": round(d, 4), "w": round(w, 4),
                     "r": round(r, 4)}, f"EfficientNet compound scaling of {config}: phi={phi}, "
                     f"alpha={alpha}, beta={beta}, gamma={gamma}")
    elif rule == "dwr":
        sc.require(rule)
        for s in factors:
            d, w, g, r = fast(s, a)
            emit(f"x{s:g}", sc.point(d, w, g, r), {"s": s, "d": round(d, 4), "w": round(w, 4), "r": round(r, 4)},
                 f"fast compound scaling (dWr, a={a}) of {config}: flops x{s}")
    else:  # resnext
        params = sc.base.values(("block", "groups", "base_width"))
        if sc.base.network.name != "resnet" or params["block"] != "bottleneck":
            raise ConfigError("the ResNeXt rule needs a ResNet/ResNeXt with bottleneck blocks "
                              "(recipe resnet, block: bottleneck)")
        g0, c0 = params["groups"], params["base_width"]
        for G in groups:
            c_exact = iso_flop_group_width(G, c0, g0)
            c = round(c_exact)
            if c < 1:
                continue
            emit(f"{G}x{c}d", {"groups": G, "base_width": c}, {"G": G, "c": c, "c_exact": round(c_exact, 3)},
                 f"ResNeXt iso-FLOP rule on {config}: 9Gc^2 + 8GCc = {9 * g0 * c0 ** 2 + 8 * g0 * 64 * c0} "
                 f"(C=64) gives c = {c_exact:.3f} for G = {G}")
    summary.write(out, rows, {"rule": rule, "config": config, "hardware": hw})
    return rows


def table(rows: list[dict], hardware: str | None) -> str:
    """A markdown table of the points, the numbers the docs quote."""
    extra = [k for k in ("phi", "s", "alpha", "beta", "gamma", "G", "c", "c_exact", "d", "w", "r", "rank")
             if any(k in r for r in rows)]
    hw = hardware or next((k[5:-2] for k in rows[0] if k == "time_a100_s"), None) or \
        next((k[5:-2] for k in rows[0] if k.startswith("time_")), None)
    head = ["point", *extra, "res", "params (M)", "GMACs", "MACs x base", "acts (M)", f"{hw}"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        if r["status"] != "ok":
            lines.append(f"| {r['point']} | failed: {r['error'].splitlines()[0]} |")
            continue
        cells = [r["point"], *[r.get(k, "") for k in extra], r.get("params.res", rows[0].get("params.res", "")),
                 f"{r['params'] / 1e6:.2f}", f"{r['macs'] / 1e9:.3f}", f"{r.get('macs_x', 1):.2f}",
                 f"{r['activations'] / 1e6:.2f}", fmt_seconds(r[summary.time_key(hw)])]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines)
