"""Token ops. There is no separate token rank: N tokens of width D are the map
(D, N, 1) — channels are the token width, rows the token index — so
layer_norm, 1x1 convs (per-token linears), add and the attention ops work on
tokens unchanged.

    conv(768, 16, stride: 16, padding: 0, bias: true)   # patches: (768, 14, 14)
    tokens class_token pos_embed                        # (768, 197, 1)
    ...
    layer_norm take_token linear(1000)                  # the class token classifies

`tokens` flattens a map row by row (torch's x.flatten(2) order) and
`unflatten(h, w)` undoes it. `class_token` prepends learned tokens,
`pos_embed` adds a learned table or a fixed 2-D sin-cos one, `take_token` and
`mean_tokens` pool the tokens to one (C, 1, 1). None has MACs
(FlopCounterMode counts no add, cat or mean).

Learned tensors are stored as timm stores them, so weights port by position:
the class tokens as (1, count, C) and a token table as (1, N, C) (ViT's
cls_token, pos_embed), a map's table as (1, C, H, W) (PiT's pos_embed).
"""
from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field, ValidationInfo, field_validator
from torch import nn

from archdsl.ops.registry import Attrs, Cost, LowerContext, OpDef, Shape, ShapeError, register


def _fmt(s: Shape) -> str:
    return "x".join(map(str, s))


def no_cost(a, x, y) -> Cost:
    return Cost()


def _tokens_of(x: Shape) -> tuple[int, int]:
    """(C, N) of a token input; a map is an error that says how to make tokens."""
    c, n, w = x
    if w != 1:
        raise ShapeError(f"takes tokens (C, N, 1), not a {_fmt(x)} map: flatten it first with `tokens`")
    return c, n


class NoAttrs(Attrs):
    pass


# --- tokens, unflatten --------------------------------------------------------------

class Tokens(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(2).unsqueeze(-1)


register(OpDef("tokens", NoAttrs, lambda a, x: (x[0], x[1] * x[2], 1), no_cost,
               lambda a, x, y, ctx: Tokens(),
               "tokens — (C, H, W) -> (C, H*W, 1), the map's positions row by row",
               keeps_output=True, layout="contiguous"))  # often a view of its input: the next op must not overwrite it


class UnflattenAttrs(Attrs):
    h: int = Field(gt=0, description="rows of the map")
    w: int = Field(gt=0, description="columns of the map")


def unflatten_shape(a: UnflattenAttrs, x: Shape) -> Shape:
    c, n = _tokens_of(x)
    if a.h * a.w != n:
        raise ShapeError(f"cannot lay {n} tokens out as a {a.h}x{a.w} map ({a.h * a.w} positions)")
    return (c, a.h, a.w)


class Unflatten(nn.Module):
    def __init__(self, h: int, w: int):
        super().__init__()
        self.h, self.w = h, w

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], x.shape[1], self.h, self.w)

    def extra_repr(self) -> str:
        return f"h={self.h}, w={self.w}"


register(OpDef("unflatten", UnflattenAttrs, unflatten_shape, no_cost,
               lambda a, x, y, ctx: Unflatten(a.h, a.w),
               "unflatten(h, w) — tokens (C, h*w, 1) -> the map (C, h, w)", keeps_output=True, layout="keep"))


# --- class_token ---------------------------------------------------------------------

class ClassTokenAttrs(Attrs):
    count: int = Field(1, gt=0, description="learned tokens to prepend")


def class_token_shape(a: ClassTokenAttrs, x: Shape) -> Shape:
    c, n = _tokens_of(x)
    return (c, n + a.count, 1)


class ClassToken(nn.Module):
    def __init__(self, dim: int, count: int):
        super().__init__()
        self.cls_token = nn.Parameter(torch.empty(1, count, dim))  # timm's layout
        nn.init.trunc_normal_(self.cls_token, std=0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tok = self.cls_token.transpose(1, 2).unsqueeze(-1).expand(x.shape[0], -1, -1, -1)
        return torch.cat([tok.to(x.dtype), x], dim=2)


register(OpDef("class_token", ClassTokenAttrs, class_token_shape,
               lambda a, x, y: Cost(params=a.count * x[0]),
               lambda a, x, y, ctx: ClassToken(x[0], a.count),
               "class_token(count: 1) — prepend learned tokens: (C, N, 1) -> (C, N+count, 1)", layout="contiguous"))


# --- pos_embed -----------------------------------------------------------------------

class PosEmbedAttrs(Attrs):
    kind: Literal["learned", "sincos"] = Field("learned", description="a learned table, or fixed 2-D sin-cos")
    grid: tuple[int, int] | None = Field(None, description="sincos on tokens: their (h, w) grid")
    temperature: float = Field(10000.0, gt=0, description="sincos: the longest wavelength's scale")

    @field_validator("grid")
    @classmethod
    def _grid(cls, v, info: ValidationInfo):
        if v is not None:
            if info.data.get("kind") != "sincos":
                raise ValueError('applies only to kind "sincos" (a learned table has the input\'s shape)')
            if min(v) < 1:
                raise ValueError("must be two positive sizes (h, w)")
        return v


def _sincos_grid(a: PosEmbedAttrs, x: Shape) -> tuple[int, int]:
    """(h, w) of the positions a sin-cos table encodes."""
    c, h, w = x
    if c % 4:
        raise ShapeError(f"a 2-D sin-cos table needs channels divisible by 4, got {c}")
    if w != 1:
        if a.grid is not None and tuple(a.grid) != (h, w):
            raise ShapeError(f"grid {a.grid} differs from the map's {h}x{w}; grid is for tokens")
        return h, w
    if a.grid is None:
        raise ShapeError(f"sin-cos positions of {h} tokens need their 2-D layout: give grid: (h, w), "
                         "or add the table to the map before `tokens`")
    gh, gw = a.grid
    if gh * gw > h:
        raise ShapeError(f"a {gh}x{gw} grid has more positions ({gh * gw}) than there are tokens ({h})")
    return gh, gw


def pos_embed_shape(a: PosEmbedAttrs, x: Shape) -> Shape:
    if a.kind == "sincos":
        _sincos_grid(a, x)
    return x


def pos_embed_cost(a: PosEmbedAttrs, x: Shape, y: Shape) -> Cost:
    return Cost(params=x[0] * x[1] * x[2] if a.kind == "learned" else 0)


def sincos_table(dim: int, h: int, w: int, temperature: float = 10000.0) -> torch.Tensor:
    """The fixed table, (dim, h, w): channels [sin(y·f), sin(x·f), cos(y·f), cos(x·f)]
    over dim // 4 frequencies f_i = temperature ** (-i / (dim // 4)) — timm's
    build_sincos2d_pos_embed at its defaults."""
    q = dim // 4
    f = temperature ** -(torch.arange(q, dtype=torch.float32) / q)
    y, x = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32),
                          indexing="ij")
    ay = y.reshape(1, h, w) * f.reshape(q, 1, 1)
    ax = x.reshape(1, h, w) * f.reshape(q, 1, 1)
    return torch.cat([ay.sin(), ax.sin(), ay.cos(), ax.cos()])


class PosEmbed(nn.Module):
    """x + a table of x's shape: learned, or a fixed buffer (not in the state dict)."""

    def __init__(self, shape: Shape, learned: bool, table: torch.Tensor | None = None):
        super().__init__()
        c, n, w = shape
        self.tokens = w == 1
        if learned:
            # timm's layouts: ViT's (1, N, C) for tokens, PiT's (1, C, H, W) for a map.
            self.pos_embed = nn.Parameter(torch.empty((1, n, c) if self.tokens else (1, c, n, w)))
            nn.init.trunc_normal_(self.pos_embed, std=0.02)
        else:
            self.register_buffer("pos_embed", table.reshape(1, c, n, w), persistent=False)
            self.tokens = False  # the buffer is kept as (1, C, H, W) already

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = self.pos_embed.transpose(1, 2).unsqueeze(-1) if self.tokens else self.pos_embed
        return x + t.to(x.dtype)


def lower_pos_embed(a: PosEmbedAttrs, x: Shape, y: Shape, ctx: LowerContext) -> nn.Module:
    if a.kind == "learned":
        return PosEmbed(x, True)
    c, n, w = x
    gh, gw = _sincos_grid(a, x)
    grid = sincos_table(c, gh, gw, a.temperature).reshape(c, gh * gw, 1)
    table = torch.zeros(c, n * w, 1)
    # Tokens before the grid's (class tokens) get no position, as in MAE.
    table[:, n * w - gh * gw:] = grid
    return PosEmbed(x, False, table)


register(OpDef("pos_embed", PosEmbedAttrs, pos_embed_shape, pos_embed_cost, lower_pos_embed,
               'pos_embed(kind: "learned" | "sincos", grid, temperature: 10000) — add a position table'))


# --- take_token, mean_tokens ----------------------------------------------------------

class TakeTokenAttrs(Attrs):
    index: int = Field(0, description="the token to keep; negative from the end")


def take_token_shape(a: TakeTokenAttrs, x: Shape) -> Shape:
    c, n = _tokens_of(x)
    if not -n <= a.index < n:
        raise ShapeError(f"token {a.index} is out of range for {n} tokens")
    return (c, 1, 1)


class TakeToken(nn.Module):
    def __init__(self, index: int):
        super().__init__()
        self.index = index

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :, self.index:self.index + 1]

    def extra_repr(self) -> str:
        return f"index={self.index}"


register(OpDef("take_token", TakeTokenAttrs, take_token_shape, no_cost,
               lambda a, x, y, ctx: TakeToken(a.index % x[1]),
               "take_token(index: 0) — keep one token: (C, N, 1) -> (C, 1, 1)",
               keeps_output=True, layout="keep"))  # a view of its input


class MeanTokensAttrs(Attrs):
    start: int = Field(0, ge=0, description="tokens before it (class tokens) are left out")


def mean_tokens_shape(a: MeanTokensAttrs, x: Shape) -> Shape:
    c, n = _tokens_of(x)
    if a.start >= n:
        raise ShapeError(f"start {a.start} leaves none of the {n} tokens to average")
    return (c, 1, 1)


class MeanTokens(nn.Module):
    def __init__(self, start: int):
        super().__init__()
        self.start = start

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :, self.start:].mean(2, keepdim=True)

    def extra_repr(self) -> str:
        return f"start={self.start}"


register(OpDef("mean_tokens", MeanTokensAttrs, mean_tokens_shape, no_cost,
               lambda a, x, y, ctx: MeanTokens(a.start),
               "mean_tokens(start: 0) — the mean of tokens start…N-1: (C, N, 1) -> (C, 1, 1)", layout="contiguous"))
