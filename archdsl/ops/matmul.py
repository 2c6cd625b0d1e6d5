"""Tensor primitives from which a spec writes attention of its own: `reshape`,
`transpose` and `matmul`, a join of two named tensors batched over channels.

With `softmax(dim: 3)`, 1x1 convs and named values they give q·kᵀ, softmax
attention, linear attention, cross-covariance attention. Plain multi-head
attention over the H*W positions of a (C, H, W) map, d = C // heads:

    conv(3 * c, 1) chunk(3) -> (q, k, v)
    from q { reshape(heads, d, n) transpose(2, 3) scale(d ** -0.5) } -> qh   # (heads, n, d)
    from k { reshape(heads, d, n) } -> kh                                    # (heads, d, n)
    from v { reshape(heads, d, n) transpose(2, 3) } -> vh                   # (heads, n, d)
    matmul(qh, kh) softmax(3) -> a                                           # (heads, n, n)
    matmul(a, vh) transpose(2, 3) reshape(c, h, w) conv(c, 1)

Dimensions are numbered as torch numbers them with the batch: 1 channels,
2 rows, 3 columns (negatives from the end). reshape, transpose and matmul
move no weights; matmul's MACs are C*H*K*W, what FlopCounterMode counts for
the bmm torch.matmul runs.
"""
from __future__ import annotations

import math
from typing import Annotated, Literal

import torch
from pydantic import Field, ValidationInfo, field_validator
from torch import nn

from archdsl.ops.registry import Attrs, Cost, OpDef, Shape, ShapeError, numel, register


def _fmt(s: Shape) -> str:
    return "x".join(map(str, s))


def no_cost(a, x, y) -> Cost:
    return Cost()


# --- reshape ----------------------------------------------------------------

# A size, or -1: the one size inferred from the element count.
_Size = Annotated[int, Field(ge=-1)]


class ReshapeAttrs(Attrs):
    c: _Size = Field(description="channels (-1: inferred)")
    h: _Size = Field(description="rows (-1: inferred)")
    w: _Size = Field(description="columns (-1: inferred)")

    @field_validator("c", "h", "w")
    @classmethod
    def _not_zero(cls, v: int) -> int:
        if v == 0:
            raise ValueError("must be a positive size, or -1 for the size the element count gives")
        return v


def reshape_shape(a: ReshapeAttrs, x: Shape) -> Shape:
    want = [a.c, a.h, a.w]
    n = numel(x)
    if want.count(-1) > 1:
        raise ShapeError(f"at most one size may be -1, got ({a.c}, {a.h}, {a.w})")
    if -1 in want:
        known = -math.prod(want)
        if n % known:
            raise ShapeError(f"cannot reshape {_fmt(x)} ({n} elements) to ({a.c}, {a.h}, {a.w}): "
                             f"{n} is not a multiple of {known}")
        want[want.index(-1)] = n // known
    if math.prod(want) != n:
        raise ShapeError(f"cannot reshape {_fmt(x)} ({n} elements) to {_fmt(want)} "
                         f"({math.prod(want)} elements)")
    return tuple(want)


class Reshape(nn.Module):
    def __init__(self, shape: Shape):
        super().__init__()
        self.shape = tuple(shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Row-major over (C, H, W) whatever the memory layout (channels-last too).
        return x.reshape(x.shape[0], *self.shape)

    def extra_repr(self) -> str:
        return f"shape={self.shape}"


# The result may be a view of the input, so `keeps_output` stops the next op
# from overwriting it in place (which would change the input too).
register(OpDef("reshape", ReshapeAttrs, reshape_shape, no_cost,
               lambda a, x, y, ctx: Reshape(y),
               "reshape(c, h, w) — same elements, row-major over (C, H, W); one size may be -1",
               keeps_output=True, layout="contiguous"))


# --- transpose ----------------------------------------------------------------

_Dim = Literal[1, 2, 3, -1, -2, -3]


def _axis(d: int) -> int:
    return d if d > 0 else d + 4


class TransposeAttrs(Attrs):
    a: _Dim = Field(description="a dimension: 1 channels, 2 rows, 3 columns")
    b: _Dim = Field(description="the dimension to swap it with")

    @field_validator("b")
    @classmethod
    def _other(cls, v: int, info: ValidationInfo) -> int:
        if "a" in info.data and _axis(v) == _axis(info.data["a"]):
            raise ValueError(f"must name a dimension other than a ({info.data['a']})")
        return v


def transpose_shape(a: TransposeAttrs, x: Shape) -> Shape:
    s = list(x)
    i, j = _axis(a.a) - 1, _axis(a.b) - 1
    s[i], s[j] = s[j], s[i]
    return tuple(s)


class Transpose(nn.Module):
    def __init__(self, a: int, b: int):
        super().__init__()
        self.a, self.b = a, b

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.transpose(self.a, self.b)

    def extra_repr(self) -> str:
        return f"{self.a}, {self.b}"


register(OpDef("transpose", TransposeAttrs, transpose_shape, no_cost,
               lambda a, x, y, ctx: Transpose(_axis(a.a), _axis(a.b)),
               "transpose(a, b) — swap two dimensions: 1 channels, 2 rows, 3 columns",
               keeps_output=True, layout="contiguous"))  # a view of its input, as reshape's


# --- matmul ---------------------------------------------------------------------

class NoAttrs(Attrs):
    pass


def matmul_shape(a: NoAttrs, x) -> Shape:
    if type(x[0]) is not tuple or len(x) != 2:
        n = len(x) if type(x[0]) is tuple else 1
        raise ShapeError(f"matmul joins exactly two tensors, got {n}: name them (-> a) and write matmul(a, b)")
    (c1, h, k1), (c2, k2, w) = x
    if k1 != k2:
        raise ShapeError(f"matmul of {_fmt(x[0])} and {_fmt(x[1])}: the first's columns ({k1}) must equal "
                         f"the second's rows ({k2}), as in (C, H, K) @ (C, K, W)")
    if c1 != c2 and 1 not in (c1, c2):
        raise ShapeError(f"matmul of {_fmt(x[0])} and {_fmt(x[1])}: the channels (the batch of matrices) "
                         "must be equal, or 1 in one of them")
    return (max(c1, c2), h, w)


def matmul_cost(a: NoAttrs, x, y: Shape) -> Cost:
    k = x[0][2]
    return Cost(macs=y[0] * y[1] * k * y[2])  # one product of K terms per output element


class MatMul(nn.Module):
    def forward(self, xs: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        return torch.matmul(xs[0], xs[1])


register(OpDef("matmul", NoAttrs, matmul_shape, matmul_cost, lambda a, x, y, ctx: MatMul(),
               "matmul(a, b) — (C, H, K) @ (C, K, W) -> (C, H, W), batched over channels", joins=True, layout="contiguous"))
