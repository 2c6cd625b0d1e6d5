"""Pooling: windowed max/average (kernel, stride, padding an int or (h, w)) and global pooling."""
from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from archdsl.ops.registry import (Attrs, Cost, LowerContext, NonNegPair, OpDef, PosPair, Shape, ShapeError,
                                  fmt, hw, numel, register)


class PoolAttrs(Attrs):
    k: PosPair = Field(description="window: an int or (h, w)")
    stride: PosPair | None = Field(None, description="default: k")
    padding: NonNegPair = 0
    ceil_mode: bool = False
    count_include_pad: bool = True  # average pooling only


def _out(size: int, k: int, s: int, p: int, ceil_mode: bool) -> int:
    span = size + 2 * p - k
    n = (-(-span // s) if ceil_mode else span // s) + 1
    # PyTorch drops a last window that would start in the right padding.
    if ceil_mode and (n - 1) * s >= size + p:
        n -= 1
    return n


def _paren(v: int | tuple[int, int]) -> str:
    return f"({v})" if isinstance(v, int) else fmt(v)


def shape(a: PoolAttrs, x: Shape) -> Shape:
    c, h, w = x
    ks, ps = hw(a.k), hw(a.padding)
    ss = hw(a.stride or a.k)
    if any(2 * p > k for k, p in zip(ks, ps)):
        raise ShapeError(f"padding {_paren(a.padding)} must be at most half the kernel {_paren(a.k)}")
    oh, ow = (_out(n, k, s, p, a.ceil_mode) for n, k, s, p in zip((h, w), ks, ss, ps))
    if oh <= 0 or ow <= 0:
        raise ShapeError(f"a {ks[0]}x{ks[1]} pool leaves no output on a {h}x{w} input")
    return (c, oh, ow)


def no_cost(a, x: Shape, y: Shape) -> Cost:
    return Cost()


def lower_max(a: PoolAttrs, x: Shape, y: Shape, ctx: LowerContext) -> nn.Module:
    return nn.MaxPool2d(a.k, a.stride or a.k, a.padding, ceil_mode=a.ceil_mode)


def lower_avg(a: PoolAttrs, x: Shape, y: Shape, ctx: LowerContext) -> nn.Module:
    return nn.AvgPool2d(a.k, a.stride or a.k, a.padding, ceil_mode=a.ceil_mode,
                    count_include_pad=a.count_include_pad)


class GlobalPoolAttrs(Attrs):
    # avgmax: the mean of average and max pooling (timm's "avgmax").
    kind: Literal["avg", "max", "avgmax"] = "avg"


def global_shape(a: GlobalPoolAttrs, x: Shape) -> Shape:
    return (x[0], 1, 1)


class AdaptiveAvgMaxPool2d(nn.Module):
    """0.5 * (global average + global max), per channel; torch has no such layer."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 0.5 * (F.adaptive_avg_pool2d(x, 1) + F.adaptive_max_pool2d(x, 1))


def global_cost(a: GlobalPoolAttrs, x: Shape, y: Shape) -> Cost:
    # fvcore counts adaptive_avg_pool2d (avg, avgmax) as one per input element
    return Cost(fvcore=numel(x) if a.kind != "max" else 0)


def lower_global(a: GlobalPoolAttrs, x: Shape, y: Shape, ctx: LowerContext) -> nn.Module:
    if a.kind == "avgmax":
        return AdaptiveAvgMaxPool2d()
    return (nn.AdaptiveAvgPool2d if a.kind == "avg" else nn.AdaptiveMaxPool2d)(1)


register(OpDef("max_pool", PoolAttrs, shape, no_cost, lower_max,
               "max_pool(k, stride: k, padding: 0, ceil_mode: false); k, stride, padding: an int or (h, w)"))
register(OpDef("avg_pool", PoolAttrs, shape, no_cost, lower_avg,
               "avg_pool(k, stride: k, padding: 0, ceil_mode: false, count_include_pad: true); "
               "k, stride, padding: an int or (h, w)"))
register(OpDef("global_pool", GlobalPoolAttrs, global_shape, global_cost, lower_global,
               'global_pool(kind: "avg" | "max" | "avgmax") — keeps a 1x1 spatial size', layout="contiguous"))
