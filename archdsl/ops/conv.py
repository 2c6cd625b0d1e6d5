"""2-D convolution (grouped, dilated, strided; symmetric or TensorFlow "same" padding)."""
from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from archdsl.ops.registry import Attrs, Cost, LowerContext, OpDef, Shape, ShapeError, register


class ConvAttrs(Attrs):
    out: int = Field(gt=0, description="output channels")
    k: int = Field(gt=0, description="kernel size")
    stride: int = Field(1, gt=0)
    groups: int = Field(1, gt=0)
    dilation: int = Field(1, gt=0)
    bias: bool = False
    # None: symmetric ((stride-1) + dilation*(k-1)) // 2; an int; or "same":
    # TensorFlow's rule, out = ceil(in / stride), the extra pixel at the end.
    padding: int | Literal["same"] | None = Field(None, description="default: symmetric")


def padding(a: ConvAttrs) -> int:
    if isinstance(a.padding, int):
        return a.padding
    return ((a.stride - 1) + a.dilation * (a.k - 1)) // 2


def _same_is_symmetric(a: ConvAttrs) -> bool:
    return a.stride == 1 and (a.dilation * (a.k - 1)) % 2 == 0


def _out_size(size: int, a: ConvAttrs) -> int:
    if a.padding == "same":
        return math.ceil(size / a.stride)
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


class SamePadConv2d(nn.Conv2d):
    """Conv2d with TensorFlow "same" padding, computed from the input size."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = []
        for size, k, s, d in zip(x.shape[-1:-3:-1], self.kernel_size[::-1], self.stride[::-1],
                                 self.dilation[::-1]):
            total = max((-(-size // s) - 1) * s + (k - 1) * d + 1 - size, 0)
            pads += [total // 2, total - total // 2]
        return super().forward(F.pad(x, pads))


def lower(a: ConvAttrs, x: Shape, y: Shape, ctx: LowerContext) -> nn.Module:
    if a.padding == "same" and not _same_is_symmetric(a):
        return SamePadConv2d(x[0], a.out, a.k, stride=a.stride, padding=0, dilation=a.dilation,
                        groups=a.groups, bias=a.bias)
    return nn.Conv2d(x[0], a.out, a.k, stride=a.stride, padding=padding(a),
                    dilation=a.dilation, groups=a.groups, bias=a.bias)


CONV = register(OpDef("conv", ConvAttrs, shape, cost, lower,
                      'conv(out, k, stride: 1, groups: 1, dilation: 1, bias: false, padding: auto | int | "same")'))
