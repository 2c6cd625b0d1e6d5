"""Design spaces for `archc search`: a sampler per parameter and constraints on costs.

A space is a YAML file (bundled ones in conf/spaces/):

    base: regnetx_004                 # the config the points vary (a preset or a path)
    overrides: []                     # Hydra overrides applied to the base first
    params:                           # one sampler per network parameter
      depth: {sampler: quantized, low: 12, high: 28, step: 1}
      wm:    {sampler: log_uniform, low: 1.5, high: 3.0, step: 0.001}
      group_w: {sampler: power2, low: 1, high: 32}
      widths: {sampler: list, length: 4, item: {sampler: log_uniform, low: 8, high: 1024, step: 8}}
    constraints:                      # [low, high] on analytic costs; null: open
      macs: [360.0e+6, 400.0e+6]
      stages: [4, 4]
      time_a100_s: [null, 1.0e-4]     # roofline time on a hardware preset

Samplers follow pycls's sweep samplers (pycls/sweep/random.py): `uniform`
on [low, high]; `quantized`, uniform on the multiples of step in [low, high];
`log_uniform`, log-uniform on [low, high] (with a step: rounded up to its
multiples, as pycls does); `power2`, a uniform power of two in [low, high];
`choice` among values; `list` of `length` independent draws of `item`.
All are vectorized: one call draws a whole chunk of samples.

A space file is checked as a config file is (UTF-8, its size, its nesting and
aliases: located errors), and so are its numbers: finite, within 2**53 (so a
draw is exact and fits int64), a step of at least 1e-9, and at most
MAX_VALUES values in one sample (lists' lengths multiplied), since a chunk of
samples is drawn at once.
"""
from __future__ import annotations

import decimal
import math
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from archdsl.configs import quick_compose
from archdsl.language.ast import Loc
from archdsl.language.errors import ArchError, ConfigError
from archdsl.language.resources import conf_dir

COST_KEYS = ("stages", "params", "macs", "activations", "bytes")  # and time_<hardware>_s
LARGEST = 2.0 ** 53  # |low|, |high|: exact as floats, and within int64 when drawn as integers
SMALLEST_STEP = 1e-9  # finer steps round badly (and Decimal cannot take the ratios)
MAX_VALUES = 1024  # values of one sample (a chunk of 8192 samples: at most ~64 MB a parameter)


class Sampler(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    sampler: Literal["uniform", "quantized", "log_uniform", "power2", "choice", "list"]
    low: float | None = None
    high: float | None = None
    step: float | None = None
    values: list[Any] | None = None
    length: int | None = None
    item: "Sampler | None" = None

    @model_validator(mode="after")
    def _check(self):
        s = self.sampler
        if s == "choice":
            if not self.values:
                raise ValueError("choice needs a non-empty list of values")
            return self
        if s == "list":
            if not self.length or self.length < 1 or self.item is None:
                raise ValueError("list needs length >= 1 and an item sampler")
            if self.values_per_sample() > MAX_VALUES:
                raise ValueError(f"a list of {self.values_per_sample():,} values (lengths multiplied) is over "
                                 f"the {MAX_VALUES:,} values a sample may hold")
            return self
        if self.low is None or self.high is None or not self.low <= self.high:
            raise ValueError(f"{s} needs low <= high")
        if max(abs(self.low), abs(self.high)) > LARGEST:
            raise ValueError(f"{s} needs low and high within ±2**53 ({LARGEST:.3g})")
        if self.step is not None and 0 < self.step < SMALLEST_STEP:
            raise ValueError(f"step must be at least {SMALLEST_STEP:g}")
        if s in ("log_uniform", "power2") and self.low <= 0:
            raise ValueError(f"{s} needs low > 0")
        if s == "quantized":
            if not self.step or self.step <= 0:
                raise ValueError("quantized needs a step > 0")
            if not (_multiple(self.low, self.step) and _multiple(self.high, self.step)):
                raise ValueError("quantized needs low and high to be multiples of step")
        if s == "power2" and not (math.log2(self.low).is_integer() and math.log2(self.high).is_integer()):
            raise ValueError("power2 needs low and high to be powers of two")
        if self.step is not None and self.step <= 0:
            raise ValueError("step must be > 0")
        return self

    def values_per_sample(self) -> int:
        return self.length * self.item.values_per_sample() if self.sampler == "list" else 1

    def integral(self) -> bool:
        nums = [x for x in (self.low, self.high, self.step) if x is not None]
        return self.sampler == "power2" and self.low >= 1 or bool(nums) and self.step is not None and all(
            float(x).is_integer() for x in nums)

    def draw(self, rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
        s, lo, hi, q = self.sampler, self.low, self.high, self.step
        if s == "list":
            return self.item.draw(rng, shape + (self.length,))
        if s == "choice":
            return np.asarray(self.values, dtype=object if _mixed(self.values) else None)[
                rng.integers(len(self.values), size=shape)]
        if s == "uniform":
            x = rng.uniform(lo, hi, shape)
        elif s == "quantized":  # uniform on [lo, hi + q), floored to q: each multiple equally likely
            x = np.floor(rng.uniform(lo, hi + q, shape) / q) * q
        elif s == "log_uniform":
            if q is None:
                x = np.exp(rng.uniform(math.log(lo), math.log(hi), shape))
            else:  # pycls: log-uniform on (lo - min(q, lo/2), hi], rounded up to q
                x = np.ceil(np.exp(rng.uniform(math.log(lo - min(q, lo / 2)), math.log(hi), shape)) / q) * q
                x = np.clip(x, lo, hi)
        else:  # power2
            x = 2.0 ** np.floor(rng.uniform(math.log2(lo), math.log2(hi) + 1, shape))
            x = np.minimum(x, hi)
        if self.integral():
            return np.rint(x).astype(np.int64)
        if q is not None:  # 2.3450000000000002 -> 2.345 in the written configs
            x = np.round(x, max(0, -Decimal(str(q)).normalize().as_tuple().exponent))
        return x


def _multiple(x: float, q: float) -> bool:
    try:
        return Decimal(str(x)) % Decimal(str(q)) == 0
    except decimal.InvalidOperation:  # x / q past Decimal's 28 digits: not a multiple it can tell
        return False


def _mixed(values: list) -> bool:
    return len({type(v) for v in values}) > 1 or any(isinstance(v, (list, dict, str)) for v in values)


class Space(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    description: str = ""
    base: str
    overrides: list[str] = []
    params: dict[str, Sampler]
    constraints: dict[str, tuple[float | None, float | None]] = {}

    name: str = ""
    path: str = ""

    def sample(self, rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
        """n points, one array per parameter, drawn in the space's parameter order."""
        return {k: s.draw(rng, (n,)) for k, s in self.params.items()}

    def label(self) -> str:
        """A bundled space by name, any other by its path."""
        bundled = (conf_dir() / "spaces").resolve()
        return self.name if Path(self.path).resolve().parent == bundled else self.path

    def base_path(self) -> str:
        """The base as `archc build` finds it: relative to the space file when a file is there."""
        rel = Path(self.path).parent / self.base
        for cand in (rel, rel.with_name(rel.name + ".yaml")):
            if cand.is_file():
                return str(cand)
        return self.base


def locate_space(space: str | Path) -> Path:
    p = Path(space)
    for cand in (p, p.with_name(p.name + ".yaml")):
        if cand.is_file():
            return cand
    bundled = conf_dir() / "spaces" / (p.stem + ".yaml")
    if len(p.parts) <= 1 and bundled.is_file():
        return bundled
    names = sorted(x.stem for x in (conf_dir() / "spaces").glob("*.yaml"))
    raise ConfigError(f"no space '{space}' (not a file, and not a bundled space)",
                      hint=f"bundled spaces: {', '.join(names)}")


def load_space(space: str | Path) -> Space:
    path = locate_space(space)
    try:
        sp = Space.model_validate({**_read(str(path)), "name": path.stem, "path": str(path)})
    except ValidationError as ve:
        err = ve.errors()[0]
        key = ".".join(str(x) for x in err["loc"] if not str(x).startswith("function-after"))
        raise ConfigError(f"{path}: {err['msg']}", key=key or None) from None
    for k, (lo, hi) in sp.constraints.items():
        if k not in COST_KEYS and not (k.startswith("time_") and k.endswith("_s")):
            raise ConfigError(f"{path}: unknown constraint '{k}'", key=f"constraints.{k}",
                              hint=f"constraints: {', '.join(COST_KEYS)}, time_<hardware>_s")
        if lo is not None and hi is not None and lo > hi:
            raise ConfigError(f"{path}: low {lo:g} > high {hi:g}: no point could pass", key=f"constraints.{k}")
    if sum(s.values_per_sample() for s in sp.params.values()) > MAX_VALUES:
        raise ConfigError(f"{path}: a sample would hold more than {MAX_VALUES:,} values (lists' lengths "
                          "multiplied)", key="params")
    return sp


def _read(path: str) -> dict:
    """A space file's data, read as a config file is: UTF-8, bounded in size, nesting and
    aliases, YAML errors located at file:line:col."""
    try:
        text = quick_compose.read_config_text(path)
    except ArchError as e:
        e.loc = e.loc or Loc(path, 1, 1)  # the file's size: the whole file
        raise
    return quick_compose.config_mapping(text, path, "space file")
