"""Activations: `act(fn)`, one op per function (`relu`, `silu`, ...), and
`softmax` over a dimension.

A function with parameters (`leaky_relu(slope)`, `prelu`, `elu`, `celu`,
`gelu(approximate)`, `hard_tanh`, `softplus`) is an op of its own with them
as attributes; `act("leaky_relu")` is that op at its defaults, so a block can
take its activation as a name. The others are aliases of `act`.
"""
from __future__ import annotations

from typing import Literal

from pydantic import Field, ValidationInfo, field_validator
from torch import nn

from archdsl.ops.registry import Attrs, Cost, LowerContext, OpDef, Shape, register


def same(a, x: Shape) -> Shape:
    return x


def no_cost(a, x: Shape, y: Shape) -> Cost:
    return Cost()


# --- functions with parameters, one op each ---------------------------------

class LeakyReluAttrs(Attrs):
    slope: float = Field(0.01, ge=0, description="slope for x < 0")


class PreluAttrs(Attrs):
    per_channel: bool = Field(False, description="one learnable slope per channel, else one in all")
    init: float = Field(0.25, description="initial slope for x < 0")


class AlphaAttrs(Attrs):
    alpha: float = Field(1.0, gt=0, description="saturation value for x < 0 is -alpha")


class GeluAttrs(Attrs):
    approximate: Literal["none", "tanh"] = "none"


class HardTanhAttrs(Attrs):
    min: float = -1.0
    max: float = 1.0

    @field_validator("max")
    @classmethod
    def _above_min(cls, v: float, info: ValidationInfo) -> float:
        if "min" in info.data and v <= info.data["min"]:
            raise ValueError(f"must be greater than min ({info.data['min']})")
        return v


class SoftplusAttrs(Attrs):
    beta: float = Field(1.0, gt=0)
    threshold: float = Field(20.0, gt=0, description="linear above beta * x > threshold")


def prelu_cost(a: PreluAttrs, x: Shape, y: Shape) -> Cost:
    return Cost(params=x[0] if a.per_channel else 1)


# In place where the input is ours to overwrite; the bounds above (slope >= 0,
# alpha > 0) are also what PyTorch's in-place backward needs.
_PARAMETRIC = {
    "leaky_relu": (LeakyReluAttrs, no_cost,
                   lambda a, x, ctx: nn.LeakyReLU(a.slope, inplace=ctx.inplace_ok),
                   "leaky_relu(slope: 0.01)"),
    "prelu": (PreluAttrs, prelu_cost,
              lambda a, x, ctx: nn.PReLU(x[0] if a.per_channel else 1, init=a.init),
              "prelu(per_channel: false, init: 0.25) — learnable slope: 1 or C params"),
    "elu": (AlphaAttrs, no_cost, lambda a, x, ctx: nn.ELU(a.alpha, inplace=ctx.inplace_ok), "elu(alpha: 1.0)"),
    "celu": (AlphaAttrs, no_cost, lambda a, x, ctx: nn.CELU(a.alpha, inplace=ctx.inplace_ok),
             "celu(alpha: 1.0)"),
    "gelu": (GeluAttrs, no_cost, lambda a, x, ctx: nn.GELU(approximate=a.approximate),
             'gelu(approximate: "none" | "tanh")'),
    "hard_tanh": (HardTanhAttrs, no_cost,
                  lambda a, x, ctx: nn.Hardtanh(a.min, a.max, inplace=ctx.inplace_ok),
                  "hard_tanh(min: -1, max: 1) — clamp to [min, max]"),
    "softplus": (SoftplusAttrs, no_cost, lambda a, x, ctx: nn.Softplus(a.beta, a.threshold),
                 "softplus(beta: 1, threshold: 20)"),
}

OWN_OPS: dict[str, OpDef] = {}
for _name, (_attrs, _cost, _build, _doc) in _PARAMETRIC.items():
    OWN_OPS[_name] = register(OpDef(
        _name, _attrs, same, _cost, lambda a, x, y, ctx, build=_build: build(a, x, ctx), _doc,
        keeps_output=True))


# --- act(fn) --------------------------------------------------------------

Fn = Literal["relu", "relu6", "silu", "swish", "gelu", "gelu_tanh", "sigmoid", "hard_sigmoid",
             "hard_swish", "tanh", "mish", "selu", "leaky_relu", "prelu", "elu", "celu", "hard_tanh",
             "softplus", "identity"]

_MODULES = {
    "relu": nn.ReLU, "relu6": nn.ReLU6, "silu": nn.SiLU, "swish": nn.SiLU,
    "hard_sigmoid": nn.Hardsigmoid, "hard_swish": nn.Hardswish, "mish": nn.Mish, "selu": nn.SELU,
}
_NO_INPLACE = {"sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "identity": nn.Identity,
               "gelu_tanh": lambda: nn.GELU(approximate="tanh")}


class ActAttrs(Attrs):
    fn: Fn


def _own(a: ActAttrs) -> tuple[OpDef, Attrs] | None:
    """The op of its own that `act(fn)` stands for, with its default attributes."""
    op = OWN_OPS.get(a.fn)
    return (op, op.attrs()) if op is not None else None


def cost(a: ActAttrs, x: Shape, y: Shape) -> Cost:
    own = _own(a)
    return own[0].cost(own[1], x, y) if own else Cost()


def lower(a: ActAttrs, x: Shape, y: Shape, ctx: LowerContext) -> nn.Module:
    own = _own(a)
    if own:
        return own[0].lower(own[1], x, y, ctx)
    if a.fn in _MODULES:
        return _MODULES[a.fn](inplace=ctx.inplace_ok)
    return _NO_INPLACE[a.fn]()


ACT = register(OpDef("act", ActAttrs, same, cost, lower,
                     "act(fn): " + ", ".join(Fn.__args__) + " — a parametric fn at its op's defaults",
                     keeps_output=True),
               aliases={fn: {"fn": fn} for fn in Fn.__args__ if fn != "identity" and fn not in OWN_OPS})


# --- softmax ----------------------------------------------------------------

class SoftmaxAttrs(Attrs):
    # Counted as torch counts with the batch: 1 channels, 2 rows, 3 columns.
    dim: Literal[1, 2, 3, -1, -2, -3] = 1


register(OpDef("softmax", SoftmaxAttrs, same, no_cost, lambda a, x, y, ctx: nn.Softmax(a.dim),
               "softmax(dim: 1) — over channels (1), rows (2) or columns (3)", keeps_output=True, layout="contiguous"))
