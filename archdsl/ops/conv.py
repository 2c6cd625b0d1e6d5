"""2-D convolution (grouped, dilated, strided)."""
from __future__ import annotations

from pydantic import Field
from torch import nn

from ..ir import Shape
from .registry import Attrs, Cost, LowerContext, OpDef, ShapeError, register


class ConvAttrs(Attrs):
    out: int = Field(gt=0, description="output channels")
    k: int = Field(gt=0, description="kernel size")
    stride: int = Field(1, gt=0)
    groups: int = Field(1, gt=0)
    dilation: int = Field(1, gt=0)
    bias: bool = False
    padding: int | None = Field(None, ge=0, description="default: keeps size/stride")


def padding(a: ConvAttrs) -> int:
    if a.padding is not None:
        return a.padding
    # Symmetric padding that maps H to ceil(H / stride) for odd kernels.
    return ((a.stride - 1) + a.dilation * (a.k - 1)) // 2


def _out_size(size: int, a: ConvAttrs) -> int:
    return (size + 2 * padding(a) - a.dilation * (a.k - 1) - 1) // a.stride + 1


def shape(a: ConvAttrs, x: Shape) -> Shape:
    c, h, w = x
    if c % a.groups:
        raise ShapeError(f"groups ({a.groups}) must divide the input channels ({c})")
    if a.out % a.groups:
        raise ShapeError(f"groups ({a.groups}) must divide the output channels ({a.out})")
    oh, ow = _out_size(h, a), _out_size(w, a)
    if oh <= 0 or ow <= 0:
        raise ShapeError(f"a {a.k}x{a.k} kernel with stride {a.stride} leaves no output on a {h}x{w} input")
    return (a.out, oh, ow)


def cost(a: ConvAttrs, x: Shape, y: Shape) -> Cost:
    per_out = (x[0] // a.groups) * a.k * a.k
    params = a.out * per_out + (a.out if a.bias else 0)
    return Cost(params=params, macs=y[0] * y[1] * y[2] * per_out)


def lower(a: ConvAttrs, x: Shape, y: Shape, ctx: LowerContext) -> nn.Module:
    return nn.Conv2d(x[0], a.out, a.k, stride=a.stride, padding=padding(a),
                     dilation=a.dilation, groups=a.groups, bias=a.bias)


CONV = register(OpDef("conv", ConvAttrs, shape, cost, lower,
                      "conv(out, k, stride: 1, groups: 1, dilation: 1, bias: false, padding: auto)"))
