"""Per-channel ops: layer norm over channels, layer scale, global response norm, channel slicing."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from archdsl.ops.registry import Attrs, Cost, OpDef, Shape, ShapeError, numel, register


def same(a, x: Shape) -> Shape:
    return x


def per_channel(n: int):
    def cost(a, x: Shape, y: Shape) -> Cost:
        return Cost(params=n * x[0])
    return cost


class EpsAttrs(Attrs):
    eps: float = Field(1e-6, gt=0)


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of each pixel of an (N, C, H, W) tensor."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 2, 3, 1)
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


class ScaleAttrs(Attrs):
    init: float = Field(1e-6, description="initial value of every per-channel scale")


class LayerScale(nn.Module):
    """x * gamma, one learnable scale per channel (CaiT, ConvNeXt, MobileNetV4)."""

    def __init__(self, channels: int, init: float):
        super().__init__()
        self.init = float(init)
        self.gamma = nn.Parameter(torch.empty(channels))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        with torch.no_grad():
            self.gamma.fill_(self.init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma.view(1, -1, 1, 1)


class GlobalResponseNorm(nn.Module):
    """ConvNeXt V2's GRN: x + gamma * (x * n) + beta, n the L2 norm over H, W
    divided by its mean over channels."""

    def __init__(self, channels: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.empty(channels))
        self.bias = nn.Parameter(torch.empty(channels))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.zeros_(self.weight)
        nn.init.zeros_(self.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gx = x.norm(p=2, dim=(2, 3), keepdim=True)
        nx = gx / (gx.mean(dim=1, keepdim=True) + self.eps)
        return x + self.bias.view(1, -1, 1, 1) + self.weight.view(1, -1, 1, 1) * (x * nx)


class SliceAttrs(Attrs):
    c: int = Field(gt=0, description="channels kept")
    start: int = Field(0, ge=0)


def slice_shape(a: SliceAttrs, x: Shape) -> Shape:
    if a.start + a.c > x[0]:
        raise ShapeError(f"cannot take channels {a.start}..{a.start + a.c} of {x[0]}")
    return (a.c, x[1], x[2])


class SliceChannels(nn.Module):
    def __init__(self, start: int, c: int):
        super().__init__()
        self.start, self.c = start, c

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, self.start:self.start + self.c]


def layer_norm_cost(a, x: Shape, y: Shape) -> Cost:
    return Cost(params=2 * x[0], fvcore=5 * numel(x))  # fvcore: 5 per element (affine)


register(OpDef("layer_norm", EpsAttrs, same, layer_norm_cost,
               lambda a, x, y, ctx: LayerNorm2d(x[0], eps=a.eps), "layer_norm(eps: 1e-6) — over channels", layout="channels_last"))
register(OpDef("layer_scale", ScaleAttrs, same, per_channel(1),
               lambda a, x, y, ctx: LayerScale(x[0], a.init), "layer_scale(init: 1e-6)"))
register(OpDef("grn", EpsAttrs, same, per_channel(2),
               lambda a, x, y, ctx: GlobalResponseNorm(x[0], a.eps), "grn(eps: 1e-6)"))
register(OpDef("slice_channels", SliceAttrs, slice_shape, lambda a, x, y: Cost(),
               lambda a, x, y, ctx: SliceChannels(a.start, a.c), "slice_channels(c, start: 0)", layout="keep"))
