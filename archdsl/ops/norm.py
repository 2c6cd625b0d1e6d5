"""Normalization: batch norm, group norm."""
from __future__ import annotations

import torch
from pydantic import Field
from torch import nn

from archdsl.ops.registry import Attrs, Cost, LowerContext, OpDef, Shape, ShapeError, numel, register


class BatchNormAttrs(Attrs):
    eps: float = Field(1e-5, gt=0)
    momentum: float = Field(0.1, ge=0, le=1)
    # Initialize gamma to zero (e.g. the last BN of a residual branch).
    zero_init: bool = False


def shape(a: BatchNormAttrs, x: Shape) -> Shape:
    return x


def cost(a: BatchNormAttrs, x: Shape, y: Shape) -> Cost:
    # gamma and beta (running stats are buffers); fvcore: 2 per element in eval mode
    return Cost(params=2 * x[0], fvcore=2 * numel(x))


def lower(a: BatchNormAttrs, x: Shape, y: Shape, ctx: LowerContext) -> nn.Module:
    m = nn.BatchNorm2d(x[0], eps=a.eps, momentum=a.momentum)
    if a.zero_init:  # the residual branch this BN ends starts at zero
        with torch.no_grad():
            m.weight.zero_()
    return m


BN = register(OpDef("bn", BatchNormAttrs, shape, cost, lower, "bn(eps: 1e-5, momentum: 0.1, zero_init: false)"))


class GroupNormAttrs(Attrs):
    groups: int = Field(gt=0, description="channel groups normalized together")
    eps: float = Field(1e-5, gt=0)
    affine: bool = True


def group_shape(a: GroupNormAttrs, x: Shape) -> Shape:
    if x[0] % a.groups:
        raise ShapeError(f"groups ({a.groups}) must divide the channels ({x[0]})")
    return x


def group_cost(a: GroupNormAttrs, x: Shape, y: Shape) -> Cost:
    # per-channel gamma and beta; fvcore: 5 per element with them, 4 without
    return Cost(params=2 * x[0] if a.affine else 0, fvcore=(5 if a.affine else 4) * numel(x))


def lower_group(a: GroupNormAttrs, x: Shape, y: Shape, ctx: LowerContext) -> nn.Module:
    return nn.GroupNorm(a.groups, x[0], eps=a.eps, affine=a.affine)


register(OpDef("group_norm", GroupNormAttrs, group_shape, group_cost, lower_group,
               "group_norm(groups, eps: 1e-5, affine: true)"))
