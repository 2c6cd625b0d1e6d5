"""Ops with no weights and no MACs: dropout, channel shuffle, identity."""
from __future__ import annotations

import torch
from pydantic import Field
from torch import nn

from archdsl.ops.registry import Attrs, Cost, LowerContext, OpDef, Shape, ShapeError, register


def same(a, x: Shape) -> Shape:
    return x


def no_cost(a, x: Shape, y: Shape) -> Cost:
    return Cost()


class DropoutAttrs(Attrs):
    p: float = Field(0.0, ge=0, lt=1)


def lower_dropout(a: DropoutAttrs, x: Shape, y: Shape, ctx: LowerContext) -> nn.Module:
    return nn.Dropout(a.p) if a.p > 0 else nn.Identity()


class ShuffleAttrs(Attrs):
    groups: int = Field(gt=0)


def shuffle_shape(a: ShuffleAttrs, x: Shape) -> Shape:
    if x[0] % a.groups:
        raise ShapeError(f"shuffle groups ({a.groups}) must divide the channels ({x[0]})")
    return x


class ChannelShuffle(nn.Module):
    def __init__(self, groups: int):
        super().__init__()
        self.groups = groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        return x.view(n, self.groups, c // self.groups, h, w).transpose(1, 2).reshape(n, c, h, w)


def lower_shuffle(a: ShuffleAttrs, x: Shape, y: Shape, ctx: LowerContext) -> nn.Module:
    return ChannelShuffle(a.groups)


class NoAttrs(Attrs):
    pass


register(OpDef("dropout", DropoutAttrs, same, no_cost, lower_dropout, "dropout(p)"))
register(OpDef("channel_shuffle", ShuffleAttrs, shuffle_shape, no_cost, lower_shuffle,
               "channel_shuffle(groups)", layout="contiguous"))
register(OpDef("identity", NoAttrs, same, no_cost, lambda a, x, y, ctx: nn.Identity(), "identity"))
