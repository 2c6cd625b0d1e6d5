"""Pooling: windowed max/average and global pooling."""
from __future__ import annotations

from typing import Literal

from pydantic import Field
from torch import nn

from archdsl.ops.registry import Attrs, Cost, LowerContext, OpDef, Shape, ShapeError, register


class PoolAttrs(Attrs):
    k: int = Field(gt=0)
    stride: int | None = Field(None, gt=0, description="default: k")
    padding: int = Field(0, ge=0)
    ceil_mode: bool = False
    count_include_pad: bool = True  # average pooling only


def _out(size: int, a: PoolAttrs) -> int:
    s = a.stride or a.k
    span = size + 2 * a.padding - a.k
    n = (-(-span // s) if a.ceil_mode else span // s) + 1
    # PyTorch drops a last window that would start in the right padding.
    if a.ceil_mode and (n - 1) * s >= size + a.padding:
        n -= 1
    return n


def shape(a: PoolAttrs, x: Shape) -> Shape:
    c, h, w = x
    if 2 * a.padding > a.k:
        raise ShapeError(f"padding ({a.padding}) must be at most half the kernel ({a.k})")
    oh, ow = _out(h, a), _out(w, a)
    if oh <= 0 or ow <= 0:
        raise ShapeError(f"a {a.k}x{a.k} pool leaves no output on a {h}x{w} input")
    return (c, oh, ow)


def no_cost(a, x: Shape, y: Shape) -> Cost:
    return Cost()


def lower_max(a: PoolAttrs, x: Shape, y: Shape, ctx: LowerContext) -> nn.Module:
    return nn.MaxPool2d(a.k, a.stride or a.k, a.padding, ceil_mode=a.ceil_mode)


def lower_avg(a: PoolAttrs, x: Shape, y: Shape, ctx: LowerContext) -> nn.Module:
    return nn.AvgPool2d(a.k, a.stride or a.k, a.padding, ceil_mode=a.ceil_mode,
                    count_include_pad=a.count_include_pad)


class GlobalPoolAttrs(Attrs):
    kind: Literal["avg", "max"] = "avg"


def global_shape(a: GlobalPoolAttrs, x: Shape) -> Shape:
    return (x[0], 1, 1)


def lower_global(a: GlobalPoolAttrs, x: Shape, y: Shape, ctx: LowerContext) -> nn.Module:
    return (nn.AdaptiveAvgPool2d if a.kind == "avg" else nn.AdaptiveMaxPool2d)(1)


register(OpDef("max_pool", PoolAttrs, shape, no_cost, lower_max,
               "max_pool(k, stride: k, padding: 0, ceil_mode: false)"))
register(OpDef("avg_pool", PoolAttrs, shape, no_cost, lower_avg,
               "avg_pool(k, stride: k, padding: 0, ceil_mode: false, count_include_pad: true)"))
register(OpDef("global_pool", GlobalPoolAttrs, global_shape, no_cost, lower_global,
               'global_pool(kind: "avg") — keeps a 1x1 spatial size'))
