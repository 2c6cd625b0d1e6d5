"""Multiplication by a constant: the gamma that keeps a normalizer-free net's
activations at unit variance, the NF residual's alpha and beta, an SE's gain."""
from __future__ import annotations

import torch
from torch import nn

from archdsl.ops.registry import Attrs, Cost, LowerContext, OpDef, Shape, register


class ScaleAttrs(Attrs):
    value: float


class Scale(nn.Module):
    def __init__(self, value: float):
        super().__init__()
        self.value = value

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Out of place: an in-place multiply would break ReLU's backward, which reads its output.
        return x * self.value

    def extra_repr(self) -> str:
        return f"value={self.value!r}"


def same(a: ScaleAttrs, x: Shape) -> Shape:
    return x


def no_cost(a: ScaleAttrs, x: Shape, y: Shape) -> Cost:
    return Cost()  # elementwise, like an activation: no MACs


def lower(a: ScaleAttrs, x: Shape, y: Shape, ctx: LowerContext) -> nn.Module:
    return Scale(a.value)


register(OpDef("scale", ScaleAttrs, same, no_cost, lower, "scale(value) — x * value"))
