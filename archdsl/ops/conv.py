"""2-D convolution (grouped, dilated, strided; symmetric or TensorFlow "same"
padding). Kernel, stride, dilation and padding are an int or a pair (h, w)."""
from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from archdsl.ops.registry import (Attrs, Cost, LowerContext, NonNegPair, OpDef, PosPair, Shape, ShapeError,
                                  fmt, hw, register)


class ConvAttrs(Attrs):
    out: int = Field(gt=0, description="output channels")
    k: PosPair = Field(description="kernel size: an int or (h, w)")
    stride: PosPair = 1
    groups: int = Field(1, gt=0)
    dilation: PosPair = 1
    bias: bool = False
    # None: symmetric ((stride-1) + dilation*(k-1)) // 2 per axis; an int or
    # (h, w); or "same": TensorFlow's rule, out = ceil(in / stride), the extra
    # pixel at the end.
    padding: NonNegPair | Literal["same"] | None = Field(None, description="default: symmetric")


def pads(a: ConvAttrs) -> tuple[int, int]:
    """The (h, w) padding on each side (the symmetric one for "same")."""
    if a.padding is not None and a.padding != "same":
        return hw(a.padding)
    return tuple(((s - 1) + d * (k - 1)) // 2
                 for k, s, d in zip(hw(a.k), hw(a.stride), hw(a.dilation)))


def padding(a: ConvAttrs) -> int | tuple[int, int]:
    """The padding nn.Conv2d takes: an int when both axes agree, else (h, w)."""
    ph, pw = pads(a)
    return ph if ph == pw else (ph, pw)


def square(a: ConvAttrs) -> bool:
    """Are kernel, stride, dilation and padding the same on both axes?"""
    return not any(isinstance(v, tuple) for v in (a.k, a.stride, a.dilation, a.padding))


def _same_is_symmetric(a: ConvAttrs) -> bool:
    return all(s == 1 and (d * (k - 1)) % 2 == 0
               for k, s, d in zip(hw(a.k), hw(a.stride), hw(a.dilation)))


def _out_size(size: int, k: int, s: int, d: int, p: int | None) -> int:
    """One axis's output size; p None: "same"."""
    if p is None:
        return math.ceil(size / s)
    return (size + 2 * p - d * (k - 1) - 1) // s + 1


def _kernel(a: ConvAttrs) -> str:
    kh, kw = hw(a.k)
    return f"{kh}x{kw}"


def shape(a: ConvAttrs, x: Shape) -> Shape:
    c, h, w = x
    if c % a.groups:
        raise ShapeError(f"groups ({a.groups}) must divide the input channels ({c})")
    if a.out % a.groups:
        raise ShapeError(f"groups ({a.groups}) must divide the output channels ({a.out})")
    k, st, d = a.k, a.stride, a.dilation
    if type(k) is int and type(st) is int and type(d) is int and type(a.padding) is not tuple:
        # the common square case, once: shape rules run for every layer elaborated
        p = None if a.padding == "same" else a.padding if a.padding is not None else ((st - 1) + d * (k - 1)) // 2
        oh, ow = _out_size(h, k, st, d, p), _out_size(w, k, st, d, p)
    else:
        same = a.padding == "same"
        (kh, kw), (sh, sw), (dh, dw), (ph, pw) = hw(k), hw(st), hw(d), pads(a)
        oh = _out_size(h, kh, sh, dh, None if same else ph)
        ow = _out_size(w, kw, sw, dw, None if same else pw)
    if oh <= 0 or ow <= 0:
        raise ShapeError(f"a {_kernel(a)} kernel with stride {fmt(a.stride)} leaves no output on a {h}x{w} input")
    return (a.out, oh, ow)


def cost(a: ConvAttrs, x: Shape, y: Shape) -> Cost:
    kh, kw = hw(a.k)
    per_out = (x[0] // a.groups) * kh * kw
    params = a.out * per_out + (a.out if a.bias else 0)
    return Cost(params=params, macs=y[0] * y[1] * y[2] * per_out)


def pad_same(x: torch.Tensor, kernel: tuple[int, int], stride: tuple[int, int],
             dilation: tuple[int, int]) -> torch.Tensor:
    """x padded as TensorFlow's "same" convolution pads it (from its size)."""
    pads = []
    for size, k, s, d in zip(x.shape[-1:-3:-1], kernel[::-1], stride[::-1], dilation[::-1]):
        total = (-(-size // s) - 1) * s + (k - 1) * d + 1 - size
        # under torch.jit.trace sizes are tensors: clamp keeps the padding traced, for any size
        total = total.clamp(min=0) if isinstance(total, torch.Tensor) else max(total, 0)
        pads += [total // 2, total - total // 2]
    return F.pad(x, pads)


# A symbolic trace records pad_same as one call: the padding depends on the size.
torch.fx.wrap("pad_same")


class SamePadConv2d(nn.Conv2d):
    """Conv2d with TensorFlow "same" padding, computed from the input size."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(pad_same(x, self.kernel_size, self.stride, self.dilation))


def lower(a: ConvAttrs, x: Shape, y: Shape, ctx: LowerContext) -> nn.Module:
    if a.padding == "same" and not _same_is_symmetric(a):
        return SamePadConv2d(x[0], a.out, a.k, stride=a.stride, padding=0, dilation=a.dilation,
                        groups=a.groups, bias=a.bias)
    return nn.Conv2d(x[0], a.out, a.k, stride=a.stride, padding=padding(a),
                    dilation=a.dilation, groups=a.groups, bias=a.bias)


CONV = register(OpDef("conv", ConvAttrs, shape, cost, lower,
                      'conv(out, k, stride: 1, groups: 1, dilation: 1, bias: false, padding: auto | int | "same"); '
                      "k, stride, dilation, padding: an int or (h, w)", layout="weights"))
