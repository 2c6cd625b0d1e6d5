"""Spatial ops with no weights and no MACs: zero padding, shift, upsampling."""
from __future__ import annotations

import math
from typing import Annotated, Any, Literal

import torch
import torch.nn.functional as F
from pydantic import AfterValidator, BeforeValidator, Field, ValidationInfo, field_validator
from torch import nn

from archdsl.ops.registry import Attrs, Cost, LowerContext, OpDef, PosPair, Shape, ShapeError, hw, numel, register


def no_cost(a, x: Shape, y: Shape) -> Cost:
    return Cost()


# --- pad ------------------------------------------------------------------

def _four(v: Any) -> Any:
    if not isinstance(v, (tuple, list)):
        return (v, v, v, v)
    if len(v) != 4:
        raise ValueError(f"expected an int or (left, right, top, bottom), got {len(v)} values")
    return v


def _one_if_equal(v: tuple[int, ...]) -> int | tuple[int, ...]:
    return v[0] if len(set(v)) == 1 else v


_Side = Annotated[int, Field(ge=0)]


class PadAttrs(Attrs):
    # F.pad's order for the last two dims: (left, right, top, bottom).
    padding: Annotated[tuple[_Side, _Side, _Side, _Side], BeforeValidator(_four),
                       AfterValidator(_one_if_equal)] = Field(
        description="an int for all four sides, or (left, right, top, bottom)")


def _sides(a: PadAttrs) -> tuple[int, int, int, int]:
    return _four(a.padding)


def pad_shape(a: PadAttrs, x: Shape) -> Shape:
    left, right, top, bottom = _sides(a)
    return (x[0], x[1] + top + bottom, x[2] + left + right)


def lower_pad(a: PadAttrs, x: Shape, y: Shape, ctx: LowerContext) -> nn.Module:
    return nn.ZeroPad2d(a.padding)


# --- shift ----------------------------------------------------------------

class ShiftAttrs(Attrs):
    dy: int = Field(0, description="rows down (negative: up)")
    dx: int = Field(0, description="columns right (negative: left)")


def shift_shape(a: ShiftAttrs, x: Shape) -> Shape:
    if abs(a.dy) >= x[1] or abs(a.dx) >= x[2]:
        raise ShapeError(f"a shift by ({a.dy}, {a.dx}) moves every pixel out of a {x[1]}x{x[2]} input")
    return x


class Shift2d(nn.Module):
    """y[..., i, j] = x[..., i - dy, j - dx], zero where that falls outside."""

    def __init__(self, dy: int, dx: int):
        super().__init__()
        self.dy, self.dx = dy, dx

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Pad one side and crop the other (F.pad crops on negative widths).
        return F.pad(x, (self.dx, -self.dx, self.dy, -self.dy))

    def extra_repr(self) -> str:
        return f"dy={self.dy}, dx={self.dx}"


# --- upsample -------------------------------------------------------------

_INTERPOLATING = ("bilinear", "bicubic")


class UpsampleAttrs(Attrs):
    scale: float | None = Field(None, gt=0, description="default 2 unless size is given")
    mode: Literal["nearest", "nearest-exact", "bilinear", "bicubic"] = "nearest"
    align_corners: bool = False
    size: PosPair | None = Field(None, description="output (h, w), instead of a scale")

    @field_validator("align_corners")
    @classmethod
    def _interpolating(cls, v: bool, info: ValidationInfo) -> bool:
        if v and info.data.get("mode", "bilinear") not in _INTERPOLATING:
            raise ValueError(f"applies only to the {' and '.join(_INTERPOLATING)} modes")
        return v

    @field_validator("size")
    @classmethod
    def _scale_or_size(cls, v, info: ValidationInfo):
        if v is not None and info.data.get("scale") is not None:
            raise ValueError("give a scale or a size, not both")
        return v


def _scale(a: UpsampleAttrs) -> float | None:
    return None if a.size is not None else (a.scale or 2.0)


def upsample_shape(a: UpsampleAttrs, x: Shape) -> Shape:
    c, h, w = x
    if a.size is not None:
        return (c, *hw(a.size))
    s = _scale(a)
    oh, ow = math.floor(h * s), math.floor(w * s)  # as F.interpolate rounds
    if oh <= 0 or ow <= 0:
        raise ShapeError(f"a scale of {s:g} leaves no output on a {h}x{w} input")
    return (c, oh, ow)


def upsample_cost(a: UpsampleAttrs, x: Shape, y: Shape) -> Cost:
    # fvcore counts nearest (1) and bilinear (4) per output element; its other modes, 0
    return Cost(fvcore={"nearest": 1, "bilinear": 4}.get(a.mode, 0) * numel(y))


def lower_upsample(a: UpsampleAttrs, x: Shape, y: Shape, ctx: LowerContext) -> nn.Module:
    # torch accepts align_corners only for the interpolating modes.
    corners = a.align_corners if a.mode in _INTERPOLATING else None
    return nn.Upsample(size=hw(a.size) if a.size is not None else None, scale_factor=_scale(a),
                       mode=a.mode, align_corners=corners)


register(OpDef("pad", PadAttrs, pad_shape, no_cost, lower_pad,
               "pad(padding) — zeros; an int or (left, right, top, bottom)"))
register(OpDef("shift", ShiftAttrs, shift_shape, no_cost, lambda a, x, y, ctx: Shift2d(a.dy, a.dx),
               "shift(dy: 0, dx: 0) — move the map by (dy, dx), zero fill"))
register(OpDef("upsample", UpsampleAttrs, upsample_shape, upsample_cost, lower_upsample,
               'upsample(scale: 2, mode: "nearest" | "nearest-exact" | "bilinear" | "bicubic", '
               "align_corners: false, size: (h, w))"))
