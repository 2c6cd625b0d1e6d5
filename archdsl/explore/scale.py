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
  9Gc^2 + 8GCc - F0 = 0 (F0 = 17C^2 for a ResNet, G = 1, c = C). It sets
  the parameters declared `groups` and `group_width`.

Factors reach a network through the scaling roles its spec declares
(`scalable(depth: ..., width: ..., group_width: ..., res: ...)`,
archdsl.compiler.scaling): a float parameter is a multiplier the recipe
applies with its own rounding (EfficientNet's depth_mult, width_mult), an
int, or each int of a per-stage list, is rounded as pycls does
(pycls/models/scaler.py): depth d -> max(1, round(d*s_d)), width
w -> 8*max(1, round(w*s_w/8)), group width g -> max(1, round(g*s_g)) snapped
to 1, 2, 4 or a multiple of 8, resolution -> 4*round(r*s_r/4). A network
declared `scalable as` another (a RegNet as the AnyNet of its stages) is
scaled, and written, as that one.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from archdsl.backends.units import fmt_seconds
from archdsl.compiler import scaling
from archdsl.explore import summary
from archdsl.explore.points import Base
from archdsl.language.errors import ArchError, ConfigError
from archdsl.language.resources import recipes_dir

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

_ROUNDED = {  # role -> how a count (an int) is scaled by its factor
    "depth": lambda x, f: max(1, round(x * f)),
    "width": lambda x, f: max(1, round(x * f / 8)) * 8,
    "group_width": lambda x, f: _snap_group(max(1, round(x * f))),
    "res": _res,
}


def scaled(role: scaling.Role, name: str, value: Any, factor: float) -> Any:
    """A parameter's value scaled by its role's factor (a float: a multiplier; ints: rounded)."""
    one = (lambda x: round(x * factor, 4)) if role.kind == "float" else (lambda x: _ROUNDED[name](x, factor))
    return [one(x) for x in value] if role.per_stage else one(value)


class Scaler:
    """Applies (depth, width, group width, resolution) factors to one base config,
    through the scaling roles its spec declares."""

    def __init__(self, config: str, overrides: list[str] | None = None):
        self.base = Base(config, overrides or [])
        self.roots = [self.base.config_dir.parent, self.base.config_dir]  # as Base finds recipes
        # The base as the network it is scaled as (a RegNet: an AnyNet), and what that declares.
        self.form = scaling.written_as(self.base.program, self.base.network, dict(self.base.cfg.params), self.roots)
        self.declared = self.form.declared
        self.target = self.base if self.form.recipe is None else Base("base", [f"recipe={self._recipe()}"])

    def _recipe(self) -> str:
        """The form's recipe as a config names it: a bundled one by name, else its path."""
        path = self.form.recipe
        return path.stem if path.parent == recipes_dir().resolve() else str(path)

    def require(self, rule: str, roles=("depth", "width", "res")) -> None:
        missing = [r for r in roles if r not in self.declared.roles]
        if missing:
            has = ", ".join(f"{r}: {x.param}" for r, x in self.declared.roles.items()) or "none"
            raise ArchError(  # located at the network whose spec would declare them
                f"{rule} scaling needs a network that declares {', '.join(roles)} scalable; network "
                f"'{self.form.network.name}' declares {has}", self.form.network.loc,
                hint=f"in its spec, e.g. scalable({', '.join(f'{r}: <parameter>' for r in roles)}) "
                     "(docs/language.md, Scaling)")

    def value(self, role: str) -> Any:
        """The base's value of the parameter that plays `role`."""
        return self.declared.values[self.declared.roles[role].param]

    def apply(self, values: dict[str, Any]) -> dict[str, Any]:
        """The point that sets these parameters (by name) on the base. A base scaled as
        another network (or in a normal form) gives all of that network's parameters."""
        if self.declared.written_as is None and self.form.recipe is None:
            return values
        f = self.form
        return scaling.written_as(f.program, f.network, {**f.params, **values}, self.roots, f.recipe).params

    def point(self, d: float, w: float, g: float, r: float) -> dict[str, Any]:
        factors = {"depth": d, "width": w, "group_width": g, "res": r}
        return self.apply({role.param: scaled(role, name, self.declared.values[role.param], factors[name])
                           for name, role in self.declared.roles.items() if name in factors})

    def evaluate(self, point: dict) -> dict:
        return self.target.evaluate(point)

    def write(self, path: Path, point: dict, comment: str) -> Path:
        if self.target is self.base:
            return self.base.write_config(path, point, comment)
        return self.base.write_config(path, point, comment, recipe=self._recipe())


# ---------------------------------------------------------------- the command

def _row(job: int, label: str, res: dict, base_macs: int, extra: dict) -> dict:
    """A summary row; `job` numbers it (an int, as in every summary), `point` names it."""
    r = summary.row(job, [], res)
    r["point"] = label
    if res["status"] == "ok":
        r["macs_x"] = round(res["macs"] / base_macs, 4)
    r.update(extra)
    return r


MAX_POINTS = 1000  # networks one run may evaluate (each one is elaborated and costed)
MAX_FACTOR = 1e6  # depth, width or resolution factor; past it only the budgets would refuse, slowly


def check_options(phis, alpha, beta, gamma, grid_step, tolerance, keep, factors, a, groups) -> None:
    """Refuse, before any network is built, option values the rules cannot use: each
    error names its option (`archc scale --phi ...`)."""
    def bad(option: str, value, why: str) -> ConfigError:
        shown = str(value) if len(str(value)) <= 40 else f"{str(value)[:20]}… ({len(str(value)):,} characters)"
        return ConfigError(f"{option} {shown}: {why}")

    for option, values in (("--phi", phis), ("--factor", factors), ("--groups", groups)):
        if len(values[:MAX_POINTS + 1]) > MAX_POINTS:  # (sliced: len() of a range past 2**63 fails)
            raise bad(option, f"({values[0]}, {values[1]}, ...)", f"more than {MAX_POINTS:,} points a run")
        for v in values:
            if isinstance(v, float) and not math.isfinite(v):  # (an int is finite, and may be past float's range)
                raise bad(option, v, "not a finite number")
    for option, v in (("--alpha", alpha), ("--beta", beta), ("--gamma", gamma)):
        if not (math.isfinite(v) and v > 0):
            raise bad(option, v, "must be a finite number > 0")
    for phi in phis:
        try:
            grown = compound(phi, alpha, beta, gamma)
        except OverflowError:
            grown = (math.inf,)
        if not all(1 / MAX_FACTOR <= f <= MAX_FACTOR for f in grown):
            raise bad("--phi", phi, f"alpha, beta, gamma ** phi must stay within 1e-6..1e6 (here alpha={alpha}, "
                      f"beta={beta}, gamma={gamma})")
    if not (math.isfinite(a) and 0 <= a <= 1):
        raise bad("--a", a, "the share of width is in [0, 1]")
    for s in factors:
        if not (0 < s <= MAX_FACTOR and all(1 / MAX_FACTOR <= f <= MAX_FACTOR for f in fast(s, a))):
            raise bad("--factor", s, "a FLOP factor is > 0, at most 1e6, and its depth, width and resolution "
                      "factors within 1e-6..1e6")
    for g in groups:
        if g != int(g) or not 1 <= g <= 2 ** 20:
            raise bad("--groups", g, "a group count is a whole number in 1..2**20")
    if not (math.isfinite(grid_step) and 0.01 <= grid_step <= 1):
        raise bad("--grid-step", grid_step, "must be in [0.01, 1]")
    if not (math.isfinite(tolerance) and tolerance >= 0):
        raise bad("--tolerance", tolerance, "must be a finite number >= 0")
    if keep < 0:
        raise bad("--keep", keep, "must be >= 0")


def run(rule: str, config: str, out: Path, *, phis=(1, 2, 3), alpha=1.2, beta=1.1, gamma=1.15,
        search: bool = False, grid_step: float = 0.05, tolerance: float = 0.1, objective: str = "time",
        hardware: str | None = None, keep: int = 3, factors=(2, 4, 8), a: float = 0.8,
        groups=(1, 2, 4, 8, 16, 32, 64)) -> list[dict]:
    """Evaluate the rule's points, write their configs (and summary.csv/json) into `out`."""
    if rule not in RULES:
        raise ConfigError(f"no scaling rule '{rule}'", hint=f"rules: {', '.join(RULES)}")
    check_options(phis, alpha, beta, gamma, grid_step, tolerance, keep, factors, a, groups)
    groups = [int(g) for g in groups]
    sc = Scaler(config)
    base_res = sc.base.evaluate({})
    if base_res["status"] != "ok":
        raise ConfigError(f"the base config does not build:\n{base_res['error']}")
    base_macs = base_res["macs"]
    hw = hardware or ("a100" if "a100" in sc.base.cfg.hardware else next(iter(sc.base.cfg.hardware), None))
    if hardware and hardware not in sc.base.cfg.hardware:
        raise ConfigError(f"--hardware {hardware}: no such hardware preset",
                          hint=f"presets: {', '.join(sc.base.cfg.hardware)}")
    rows = [_row(0, "base", base_res, base_macs, {"config": sc.base.config})]
    if "res" in sc.declared.roles:
        rows[0][f"params.{sc.declared.roles['res'].param}"] = sc.value("res")
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
            if len(cands) > MAX_POINTS:
                raise ConfigError(f"--grid-step {grid_step} --tolerance {tolerance}: {len(cands):,} candidates, "
                                  f"at most {MAX_POINTS:,} a run", hint="a coarser grid or a smaller tolerance")
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
        sc.require(rule, ("groups", "group_width"))
        g0, c0 = sc.value("groups"), sc.value("group_width")
        names = sc.declared.roles["groups"].param, sc.declared.roles["group_width"].param
        for G in groups:
            c_exact = iso_flop_group_width(G, c0, g0)
            c = round(c_exact)
            if c < 1:
                continue
            emit(f"{G}x{c}d", sc.apply(dict(zip(names, (G, c)))), {"G": G, "c": c, "c_exact": round(c_exact, 3)},
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
    res_key = next((k for k in rows[0] if k.startswith("params.")), "params.res")  # the base's resolution
    head = ["point", *extra, "res", "params (M)", "GMACs", "MACs x base", "acts (M)", f"{hw}"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        if r["status"] != "ok":
            lines.append(f"| {r['point']} | failed: {r['error'].splitlines()[0]} |")
            continue
        cells = [r["point"], *[r.get(k, "") for k in extra], r.get(res_key, rows[0].get(res_key, "")),
                 f"{r['params'] / 1e6:.2f}", f"{r['macs'] / 1e9:.3f}", f"{r.get('macs_x', 1):.2f}",
                 f"{r['activations'] / 1e6:.2f}", fmt_seconds(r[summary.time_key(hw)])]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines)
