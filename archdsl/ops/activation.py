"""Pointwise activations: `act(fn)` and one alias per function (`relu`, `silu`, ...)."""
from __future__ import annotations

from typing import Literal

from torch import nn

from archdsl.ops.registry import Attrs, Cost, LowerContext, OpDef, Shape, register

Fn = Literal["relu", "relu6", "silu", "swish", "gelu", "sigmoid", "hard_sigmoid",
             "hard_swish", "tanh", "identity"]

_MODULES = {
    "relu": nn.ReLU, "relu6": nn.ReLU6, "silu": nn.SiLU, "swish": nn.SiLU,
    "hard_sigmoid": nn.Hardsigmoid, "hard_swish": nn.Hardswish,
}
_NO_INPLACE = {"gelu": nn.GELU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "identity": nn.Identity}


class ActAttrs(Attrs):
    fn: Fn


def shape(a: ActAttrs, x: Shape) -> Shape:
    return x


def cost(a: ActAttrs, x: Shape, y: Shape) -> Cost:
    return Cost()


def lower(a: ActAttrs, x: Shape, y: Shape, ctx: LowerContext) -> nn.Module:
    if a.fn in _MODULES:
        return _MODULES[a.fn](inplace=ctx.inplace_ok)
    return _NO_INPLACE[a.fn]()


ACT = register(OpDef("act", ActAttrs, shape, cost, lower, "act(fn): " + ", ".join(Fn.__args__)),
               aliases={fn: {"fn": fn} for fn in Fn.__args__ if fn != "identity"})
