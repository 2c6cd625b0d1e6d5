"""Ops over several live tensors: joins of named values (add, mul, cat) and
the channel chunks that make several values of one (chunk).

    conv(c, 1) bn relu -> x
    chunk(4) -> (a, b, c, d)
    add(a, b) -> s
    cat(s, c, d)

A join takes the value before it when it is a tuple of tensors, or the
tensors named as its arguments. Element-wise joins broadcast as torch does
(a (C, 1, 1) gate times a (C, H, W) map).
"""
from __future__ import annotations

import torch
from pydantic import Field
from torch import nn

from archdsl.ops.registry import Attrs, Cost, LowerContext, OpDef, Shape, ShapeError, register


class NoAttrs(Attrs):
    pass


def _several(x, what: str) -> tuple[Shape, ...]:
    if type(x[0]) is not tuple or len(x) < 2:
        raise ShapeError(f"{what} joins two or more tensors: name them (-> a) and write {what}(a, b), "
                         "or give it a value of several tensors")
    return x


def broadcast_shape(x) -> Shape:
    shapes = _several(x, "add/mul")
    out = []
    for dims in zip(*shapes):
        sizes = {d for d in dims if d != 1}
        if len(sizes) > 1:
            raise ShapeError("cannot broadcast " + ", ".join("x".join(map(str, s)) for s in shapes)
                             + ": each dimension must be equal or 1")
        out.append(sizes.pop() if sizes else 1)
    return tuple(out)


def cat_shape(a: NoAttrs, x) -> Shape:
    shapes = _several(x, "cat")
    if any(s[1:] != shapes[0][1:] for s in shapes):
        raise ShapeError("cat of unequal spatial sizes: " + ", ".join("x".join(map(str, s)) for s in shapes))
    return (sum(s[0] for s in shapes), shapes[0][1], shapes[0][2])


class Add(nn.Module):
    def forward(self, xs: tuple[torch.Tensor, ...]) -> torch.Tensor:
        out = xs[0]
        for x in xs[1:]:
            out = out + x
        return out


class Mul(nn.Module):
    def forward(self, xs: tuple[torch.Tensor, ...]) -> torch.Tensor:
        out = xs[0]
        for x in xs[1:]:
            out = out * x
        return out


class Cat(nn.Module):
    def forward(self, xs: tuple[torch.Tensor, ...]) -> torch.Tensor:
        return torch.cat(xs, dim=1)


def no_cost(a, x, y) -> Cost:
    return Cost()


register(OpDef("add", NoAttrs, lambda a, x: broadcast_shape(x), no_cost,
               lambda a, x, y, ctx: Add(), "add(a, b, ...) — element-wise sum of named tensors", joins=True))
register(OpDef("mul", NoAttrs, lambda a, x: broadcast_shape(x), no_cost,
               lambda a, x, y, ctx: Mul(), "mul(a, b, ...) — element-wise product of named tensors", joins=True))
register(OpDef("cat", NoAttrs, cat_shape, no_cost,
               lambda a, x, y, ctx: Cat(), "cat(a, b, ...) — named tensors concatenated on channels", joins=True, layout="all_inputs"))


class ChunkAttrs(Attrs):
    # An int: that many equal parts; a list: the parts' channel counts.
    parts: int | list[int] = Field(description="number of equal parts, or their channel counts")


def _sizes(a: ChunkAttrs, c: int) -> list[int]:
    if isinstance(a.parts, int):
        if a.parts < 1 or c % a.parts:
            raise ShapeError(f"cannot chunk {c} channels into {a.parts} equal parts")
        return [c // a.parts] * a.parts
    if not a.parts or any(p < 1 for p in a.parts) or sum(a.parts) != c:
        raise ShapeError(f"chunk sizes {a.parts} must be positive and sum to the input channels ({c})")
    return list(a.parts)


def chunk_shape(a: ChunkAttrs, x: Shape):
    if type(x[0]) is tuple:
        raise ShapeError("chunk takes one tensor")
    c, h, w = x
    sizes = _sizes(a, c)
    return tuple((s, h, w) for s in sizes) if len(sizes) > 1 else (sizes[0], h, w)


class Chunk(nn.Module):
    def __init__(self, sizes: list[int]):
        super().__init__()
        self.sizes = sizes

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return torch.split(x, self.sizes, dim=1)  # a tuple (FX records one call, not an iteration)

    def extra_repr(self) -> str:
        return f"sizes={self.sizes}"


def lower_chunk(a: ChunkAttrs, x: Shape, y, ctx: LowerContext) -> nn.Module:
    return Chunk(_sizes(a, x[0]))


register(OpDef("chunk", ChunkAttrs, chunk_shape, no_cost, lower_chunk,
               "chunk(parts) — split channels into several tensors (name them: -> (a, b))", layout="keep"))
