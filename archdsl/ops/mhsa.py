"""Multi-head self-attention over the H*W positions of a map — or of tokens,
which are the map (C, N, 1):

    q, k, v = split(W_qkv x + b_qkv)          one per-token linear (a 1x1 conv)
    o_h = softmax(q_h k_hᵀ / sqrt(head_dim) [+ B_h]) v_h     for each head h
    y = W_proj [o_1 … o_heads] + b_proj       (out, H', W')

The qkv projection is one layer, as timm's Attention has `qkv` then `proj`,
so a ViT's weights port by position (state dict: qkv.weight, qkv.bias,
proj.weight, proj.bias). `qkv_order` says how its channels split: "qkv" all
queries, then all keys, then all values (timm's Attention); "head" per head
a query, a key and a value (EfficientFormer, LeViT).

Strides. `q_stride` > 1 takes fewer queries (the output is ceil(H/s) x
ceil(W/s)); `kv_stride` > 1 fewer keys and values. The positions are
averaged over stride x stride windows (`pool: "avg"`) or subsampled, one per
window (`pool: "subsample"`, LeViT's); since the projection is per
position and linear, pooling the input before projecting it is the same
and cheaper, so that is what is computed and counted. An int stride applies
to each axis longer than 1, so `q_stride: 2` on tokens strides the tokens.

`attn_bias: "relative"` adds a learned bias per head and relative offset:
EfficientFormer's `attention_biases`, a (heads, H*W) table indexed by
|dy|*W + |dx| through the buffer `attention_bias_idxs` (kept in the state
dict, as EfficientFormer keeps it). A strided query or key sits at its
window's first pixel (LeViT's subsampled queries). Offsets are in the input's
grid, so on tokens they are 1-D: apply the op to the map for 2-D ones.

Lowering: F.scaled_dot_product_attention without a bias table; explicit
q·kᵀ, softmax, attn·v with one.

Cost. params: the two projections (+ the bias table). MACs: the projections
(of the pooled inputs), q·kᵀ (heads * Nq * Nk * head_dim) and attn·v
(heads * Nq * Nk * value_dim) — FlopCounterMode's count / 2 on the CPU (see
_count_cpu_sdpa) and the meta device; torch has formulas for the CUDA fused
kernels too (not checked here: no GPU in the tests). Softmax, scaling, pooling
and the bias add are not MACs. Bytes: weights + input + output, as one
fused kernel (the scores stay on chip), as for `mqa`.
"""
from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from archdsl.ops.registry import Attrs, Cost, LowerContext, OpDef, PosPair, Shape, ShapeError, hw, register


def _count_cpu_sdpa() -> None:
    """Let FlopCounterMode count SDPA's fused CPU kernel.

    On the CPU, F.scaled_dot_product_attention runs
    aten._scaled_dot_product_flash_attention_for_cpu, for which FlopCounterMode
    has no formula, so it counted no attention MACs there (pytorch/pytorch#195460)
    while counting them on CUDA and the meta device. Register the formula torch
    uses for its other fused SDPA kernels — what the upstream fix
    (pytorch/pytorch#195801) does — if this torch lacks it. The operator's
    leading arguments (query, key, value; grad_out first for the backward)
    are those the formula reads.
    """
    from torch.utils import flop_counter as fc

    aten = torch.ops.aten
    for name, like in (("_scaled_dot_product_flash_attention_for_cpu", "_scaled_dot_product_flash_attention"),
                       ("_scaled_dot_product_flash_attention_for_cpu_backward",
                        "_scaled_dot_product_flash_attention_backward")):
        try:
            op, known = getattr(aten, name), getattr(aten, like)
        except (AttributeError, RuntimeError):  # a torch without the kernel
            continue
        formula = fc.flop_registry.get(known)
        if op not in fc.flop_registry and formula is not None:
            # The registered formula takes tensors and converts them to shapes itself.
            fc.register_flop_formula(op, get_raw=True)(formula)


_count_cpu_sdpa()


class MHSAAttrs(Attrs):
    heads: int = Field(gt=0, description="attention heads")
    head_dim: int | None = Field(None, gt=0, description="channels of each query and key head; "
                                                         "default in.c // heads")
    value_dim: int | None = Field(None, gt=0, description="channels of each value head; default head_dim")
    qkv_bias: bool = False
    out: int | None = Field(None, gt=0, description="output channels; default the input's")
    proj_bias: bool = True
    q_stride: PosPair = Field(1, description="stride of the queries (and of the output)")
    kv_stride: PosPair = Field(1, description="stride of the keys and values")
    pool: Literal["avg", "subsample"] = Field("avg", description="how a stride picks positions")
    attn_bias: Literal["none", "relative"] = Field("none", description="a learned bias per head and offset")
    qkv_order: Literal["qkv", "head"] = Field("qkv", description="the qkv projection's channel order")


def _head_dim(a: MHSAAttrs, c: int) -> int:
    if a.head_dim is not None:
        return a.head_dim
    if c % a.heads:
        raise ShapeError(f"heads ({a.heads}) must divide the channels ({c}), or give head_dim")
    return c // a.heads


def _stride(s, h: int, w: int) -> tuple[int, int]:
    """A stride per axis, no longer than the axis: stride s on an axis of n
    positions leaves ceil(n / s), and one window covers an axis s reaches past."""
    sh, sw = hw(s)
    return min(sh, h), min(sw, w)


def _grid(s: tuple[int, int], h: int, w: int) -> tuple[int, int]:
    return -(-h // s[0]), -(-w // s[1])


def shape(a: MHSAAttrs, x: Shape) -> Shape:
    c, h, w = x
    _head_dim(a, c)
    return (a.out or c,) + _grid(_stride(a.q_stride, h, w), h, w)


def cost(a: MHSAAttrs, x: Shape, y: Shape) -> Cost:
    c, h, w = x
    hd = _head_dim(a, c)
    vd = a.value_dim or hd
    nq = y[1] * y[2]
    kh, kw = _grid(_stride(a.kv_stride, h, w), h, w)
    nk = kh * kw
    qk, v, out = a.heads * hd, a.heads * vd, y[0]
    width = 2 * qk + v  # the qkv projection's output channels
    params = c * width + (width if a.qkv_bias else 0) + v * out + (out if a.proj_bias else 0)
    if a.attn_bias == "relative":
        params += a.heads * h * w
    macs = nq * c * qk + nk * c * (qk + v) + nq * v * out
    macs += a.heads * nq * nk * (hd + vd)  # q·kᵀ and attn·v
    acts = nq * qk + nk * (qk + v) + nq * out  # the projections' outputs
    # fvcore counts the explicit matmuls (with a bias table), not F.scaled_dot_product_attention
    fv = macs if a.attn_bias == "relative" else macs - a.heads * nq * nk * (hd + vd)
    return Cost(params=params, macs=macs, activations=acts, fvcore=fv)


def relative_index(h: int, w: int, q_stride: tuple[int, int], kv_stride: tuple[int, int]) -> torch.Tensor:
    """(Nq, Nk) indices into a (heads, h*w) table: |dy| * w + |dx| between each
    query's and each key's position (a window's first pixel)."""
    def positions(s):
        y, x = torch.meshgrid(torch.arange(0, h, s[0]), torch.arange(0, w, s[1]), indexing="ij")
        return y.reshape(-1), x.reshape(-1)

    qy, qx = positions(q_stride)
    ky, kx = positions(kv_stride)
    return (qy[:, None] - ky[None, :]).abs() * w + (qx[:, None] - kx[None, :]).abs()


class MultiHeadSelfAttention(nn.Module):
    """Multi-head self-attention on a (B, C, H, W) map; see the module docstring.

    The projections are nn.Linear layers applied token-major, (B, N, C) as
    timm's: the per-head q, k, v then have unit stride in their last
    dimension, which SDPA's fused kernels need (else it falls back to the
    unfused math), and a channels-last map is already token-major."""

    def __init__(self, dim: int, out: int, heads: int, head_dim: int, value_dim: int, qkv_bias: bool,
                 proj_bias: bool, q_stride: tuple[int, int], kv_stride: tuple[int, int], pool: str,
                 qkv_order: str, bias_grid: tuple[int, int] | None):
        super().__init__()
        self.heads, self.head_dim, self.value_dim = heads, head_dim, value_dim
        self.q_stride, self.kv_stride, self.pool, self.qkv_order = q_stride, kv_stride, pool, qkv_order
        self.scale = head_dim ** -0.5
        if bias_grid is not None:
            # Own tensors first in the state dict, then qkv and proj: EfficientFormer's order.
            h, w = bias_grid
            self.attention_biases = nn.Parameter(torch.zeros(heads, h * w))
            self.register_buffer("attention_bias_idxs", relative_index(h, w, q_stride, kv_stride))
        else:
            self.attention_biases = None
        self.qkv = nn.Linear(dim, heads * (2 * head_dim + value_dim), bias=qkv_bias)
        self.proj = nn.Linear(heads * value_dim, out, bias=proj_bias)

    def _rows(self, t: torch.Tensor | None, start: int, size: int) -> torch.Tensor | None:
        """The qkv projection's rows (weights or bias) for the per-head channels
        start…start+size (0…head_dim: the queries; head_dim…: keys and values)."""
        if t is None:
            return None
        if self.qkv_order == "qkv":  # part-major: the heads of each part together
            return t[self.heads * start:self.heads * (start + size)]
        per = 2 * self.head_dim + self.value_dim
        return t.reshape(self.heads, per, *t.shape[1:])[:, start:start + size].reshape(-1, *t.shape[1:])

    def _heads(self, t: torch.Tensor, parts: list[int]) -> list[torch.Tensor]:
        """Split a projection's output (B, N, heads * sum(parts)) into one
        (B, heads, N, d) tensor per part, by qkv_order."""
        b, n = t.shape[0], t.shape[1]  # (a symbolic trace cannot unpack a slice)
        # the parts are indexed, not iterated: FX traces it
        if self.qkv_order == "head":
            split = t.reshape(b, n, self.heads, sum(parts)).split(parts, dim=-1)
        else:
            whole = t.split([self.heads * d for d in parts], dim=-1)
            split = [whole[i].reshape(b, n, self.heads, -1) for i in range(len(parts))]
        return [split[i].transpose(1, 2) for i in range(len(parts))]

    def _tokens(self, x: torch.Tensor, s: tuple[int, int]) -> torch.Tensor:
        """The positions a stride s keeps, as (B, N, C) tokens."""
        if s != (1, 1):
            if self.pool == "subsample":
                x = x[:, :, ::s[0], ::s[1]]
            else:  # a last window past the edge averages the positions it covers
                x = F.avg_pool2d(x, s, s, ceil_mode=True)
        return x.flatten(2).transpose(1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hd, vd = self.head_dim, self.value_dim
        if self.q_stride == self.kv_stride:
            q, k, v = self._heads(self.qkv(self._tokens(x, self.q_stride)), [hd, hd, vd])
        else:
            w, b = self.qkv.weight, self.qkv.bias
            (q,) = self._heads(F.linear(self._tokens(x, self.q_stride), self._rows(w, 0, hd),
                                        self._rows(b, 0, hd)), [hd])
            kv = F.linear(self._tokens(x, self.kv_stride), self._rows(w, hd, hd + vd), self._rows(b, hd, hd + vd))
            k, v = self._heads(kv, [hd, vd])
        if self.attention_biases is None:
            o = F.scaled_dot_product_attention(q, k, v)
        else:
            attn = (q @ k.transpose(-2, -1)) * self.scale + self.attention_biases[:, self.attention_bias_idxs]
            o = attn.softmax(dim=-1) @ v
        # Channels head-major (head h's value channel j at h * value_dim + j), as timm's proj expects.
        b, nq = o.shape[0], o.shape[2]
        y = self.proj(o.transpose(1, 2).reshape(b, nq, self.heads * vd))
        hq, wq = -(-x.shape[2] // self.q_stride[0]), -(-x.shape[3] // self.q_stride[1])
        return y.transpose(1, 2).reshape(b, -1, hq, wq)

    def extra_repr(self) -> str:
        return (f"heads={self.heads}, head_dim={self.head_dim}, value_dim={self.value_dim}, "
                f"q_stride={self.q_stride}, kv_stride={self.kv_stride}, pool={self.pool!r}, "
                f"qkv_order={self.qkv_order!r}")


def lower(a: MHSAAttrs, x: Shape, y: Shape, ctx: LowerContext) -> nn.Module:
    c, h, w = x
    hd = _head_dim(a, c)
    return MultiHeadSelfAttention(c, y[0], a.heads, hd, a.value_dim or hd, a.qkv_bias, a.proj_bias,
                                  _stride(a.q_stride, h, w), _stride(a.kv_stride, h, w), a.pool, a.qkv_order,
                                  (h, w) if a.attn_bias == "relative" else None)


MHSA = register(OpDef("mhsa", MHSAAttrs, shape, cost, lower,
                      'mhsa(heads, head_dim: in.c // heads, value_dim: head_dim, qkv_bias: false, out: in.c, '
                      'proj_bias: true, q_stride: 1, kv_stride: 1, pool: "avg", attn_bias: "none", '
                      'qkv_order: "qkv")', layout="channels_last"))
