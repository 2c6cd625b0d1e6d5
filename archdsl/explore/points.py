"""Points of a design space: a base config composed once, then params -> analytic costs.

Grids (`archc sweep --cost-only`), searches and scaling rules evaluate many
parameter settings of one config. Composing, validating and parsing happen
once here; each point then only elaborates and reports (archdsl.api's
compile_config does the same steps for one config), and writes no files.
Points can also be written out as configs `archc build` loads.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from archdsl.api import Compiled, check_params, compile_config
from archdsl.build import _write as write_atomic
from archdsl.backends.cost import unnamed
from archdsl.build import costs
from archdsl.compiler import ir
from archdsl.compiler.elaborate import elaborate
from archdsl.configs.compose import compose
from archdsl.configs.schema import ArchConfig, validate
from archdsl.language import ast as A
from archdsl.language.errors import ArchError
from archdsl.language.program import find_recipe, load_program
from archdsl.language.resources import conf_dir, recipes_dir


def stage_count(spec: ir.Seq) -> int:
    """Stages of an elaborated network (its `stage` sections)."""
    if spec.role == "network" and len(spec.children) > 1:
        return len(spec.children[1].children)
    return 0


BOUNDED = ("stages", "params", "macs", "activations", "bytes")  # totals that only grow, section by section


class Exceeded(Exception):
    """A network stopped as soon as a running total passed its bound."""

    def __init__(self, key: str):
        super().__init__(key)
        self.key = key


class _Watch:
    """Adds up each section's totals as elaboration makes it; raises Exceeded past a bound."""

    def __init__(self, bounds: dict[str, float], dtype: str, channels_last: bool = False):
        self.bounds = [(k, hi) for k, hi in bounds.items() if k in BOUNDED and hi is not None]
        self.dtype = dtype
        self.channels_last = channels_last
        self.layout = channels_last  # the memory format the next section starts from, as the report walks it
        self.sums = dict.fromkeys(BOUNDED, 0)

    def __call__(self, section: ir.Seq) -> None:
        # its blocks' costs are kept, under the formats the report will meet them in: costed once
        part = unnamed(section, self.dtype, self.channels_last, self.layout)
        self.layout = part.out_layout
        params, macs, activations, weight_bytes, act_bytes, _ = part.sums  # Totals' fields
        sums = self.sums
        sums["stages"] += section.role == "stage"
        sums["params"] += params
        sums["macs"] += macs
        sums["activations"] += activations
        sums["bytes"] += weight_bytes + act_bytes
        for k, hi in self.bounds:
            if sums[k] > hi:
                raise Exceeded(k)


class Base:
    """A config composed and validated once, its recipe parsed once."""

    def __init__(self, config: str | Path, overrides: list[str] | tuple[str, ...] = ()):
        self.config = str(config)
        self.overrides = list(overrides)
        data, self.name, self.config_dir = compose(config, self.overrides)
        self.cfg: ArchConfig = validate(data, self.name, self.overrides)
        roots = [self.config_dir.parent, self.config_dir]  # as api.compile_config looks
        self.program = load_program(find_recipe(self.cfg.recipe, roots), roots)
        self.network = self.program.network(self.cfg.network)
        self.param_names = [p.name for p in self.network.params]
        self.hardware = self.cfg.hardware_list()  # made once: every point's report takes the same

    def check(self, keys, overrides=()) -> None:
        """Every key must be a parameter of the network (a user error otherwise)."""
        probe = self.cfg.model_copy(update={"params": {**self.cfg.params, **{k: None for k in keys}}})
        check_params(self.program, probe, list(overrides))

    def params(self, point: dict[str, Any]) -> dict[str, Any]:
        return {**self.cfg.params, **point}

    def defaults(self) -> dict[str, Any]:
        """The network's parameters whose defaults are constants (`res = 224`), by name."""
        out = {}
        for p in self.network.params:
            try:
                out[p.name] = _const(p.default)
            except ValueError:
                continue
        return out

    def values(self, keys) -> dict[str, Any]:
        """What the base sets these parameters to: its config, else the network's default."""
        d = self.defaults()
        return {k: self.cfg.params.get(k, d.get(k)) for k in keys}

    def compiled(self, point: dict[str, Any], bounds: dict[str, float] | None = None) -> Compiled:
        params = self.params(point)
        if self.cfg.deploy:  # the deployed graph takes compile_config's extra passes
            return compile_config(self.cfg.model_copy(update={"params": params}), (), self.config_dir)
        watch = _Watch(bounds, self.cfg.dtype, self.cfg.uses_channels_last) if bounds else None
        return Compiled(self.cfg, self.program, elaborate(self.program, params, self.cfg.network,
                                                          after_section=watch), ())

    def evaluate(self, point: dict[str, Any], stages: bool = False, bounds: dict[str, float] | None = None) -> dict:
        """A job-like result for one point; an invalid point is a result with its error.

        bounds: upper bounds on totals (params, macs, activations, bytes); a
        network past one is stopped at the section where it passes it (totals
        only grow), and the result says which ("exceeded": the constraint).
        A search rejects most samples so, having elaborated part of them."""
        try:
            c = self.compiled(point, bounds)
            res = {"status": "ok", "name": self.cfg.name, **costs(c.report(self.hardware))}
            if stages:
                res["stages"] = stage_count(c.spec)
            return res
        except Exceeded as e:
            return {"status": "exceeded", "name": self.cfg.name, "constraint": e.key}
        except ArchError as e:
            return {"status": "error", "name": self.cfg.name, "error": e.render()}

    # ------------------------------------------------------------ writing points
    def defaults_entry(self) -> tuple[str | None, dict]:
        """How a written point refers to this base: a bundled preset by name, else base + the config."""
        skip = {"name", "params", "hardware"}
        mine = self.cfg.model_dump(exclude=skip)
        if self.config_dir.resolve() == conf_dir().resolve():
            # Keep what this base's own overrides changed (dtype=fp16, recipe=anynet, ...).
            try:
                data, name, _ = compose(self.name)
                plain = validate(data, name).model_dump(exclude=skip)
            except ArchError:  # base.yaml itself: no recipe until overridden
                plain = ArchConfig(recipe="").model_dump(exclude=skip)
            return self.name, {k: v for k, v in mine.items() if v != plain.get(k)}
        keep = self.cfg.model_dump(exclude=skip, exclude_defaults=True)
        recipe = find_recipe(self.cfg.recipe, [self.config_dir.parent, self.config_dir])
        bundled = recipes_dir().resolve()
        keep["recipe"] = recipe.stem if recipe.parent == bundled else str(recipe)
        return "base", {**keep, "params": dict(self.cfg.params)}

    def write_config(self, path: Path, point: dict[str, Any], comment: str = "",
                     recipe: str | None = None) -> Path:
        """A YAML `archc build` loads: `defaults: [<preset or base>, _self_]` + the point's params.

        `recipe`: the point is a network of another recipe (a RegNet scaled as
        an AnyNet); it then starts from base and `point` holds all its params.
        """
        if recipe is None:
            parent, body = self.defaults_entry()
        else:
            skip = {"name", "params", "hardware", "recipe", "network"}
            parent, body = "base", {**self.cfg.model_dump(exclude=skip, exclude_defaults=True), "recipe": recipe}
        doc: dict[str, Any] = {"defaults": [parent, "_self_"]}
        doc.update(body)
        doc["params"] = {**doc.get("params", {}), **_plain(point)}
        text = (f"# {comment}\n" if comment else "") + yaml.safe_dump(doc, sort_keys=False,
                                                                      default_flow_style=None)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, text)
        return path


def _const(e: A.Expr | None) -> Any:
    if isinstance(e, A.Const):
        return e.value
    if isinstance(e, A.Neg) and isinstance(e.operand, A.Const):
        return -e.operand.value if e.op == "-" else e.operand.value
    if isinstance(e, A.ListExpr):
        return [_const(x) for x in e.items]
    raise ValueError("not a constant")


def _plain(point: dict) -> dict:
    """numpy scalars and tuples -> plain YAML values."""
    out = {}
    for k, v in point.items():
        if hasattr(v, "item"):
            v = v.item()
        elif isinstance(v, tuple):
            v = list(v)
        if isinstance(v, list):
            v = [x.item() if hasattr(x, "item") else x for x in v]
        out[k] = v
    return out

