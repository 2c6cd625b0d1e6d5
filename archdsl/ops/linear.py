"""Fully connected layer on the flattened input."""
from __future__ import annotations

import torch
from pydantic import Field
from torch import nn

from archdsl.ops.registry import Attrs, Cost, LowerContext, OpDef, Shape, numel, register


class LinearAttrs(Attrs):
    out: int = Field(gt=0)
    bias: bool = True


def shape(a: LinearAttrs, x: Shape) -> Shape:
    return (a.out, 1, 1)


def cost(a: LinearAttrs, x: Shape, y: Shape) -> Cost:
    n = numel(x)
    return Cost(params=n * a.out + (a.out if a.bias else 0), macs=n * a.out)


class FlatLinear(nn.Linear):
    """nn.Linear that flattens (N, C, 1, 1) first; returns (N, out)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.flatten(1))


def lower(a: LinearAttrs, x: Shape, y: Shape, ctx: LowerContext) -> nn.Module:
    return FlatLinear(numel(x), a.out, bias=a.bias)


register(OpDef("linear", LinearAttrs, shape, cost, lower, "linear(out, bias: true)", layout="contiguous"))
