"""Attention ops on (C, H, W) feature maps.

`mqa`: MobileNetV4's multi-query attention core (Qin et al. 2024, "Mobile
MQA"): `heads` query heads of `key_dim` channels share one key head and one
value head. Keys and values may first be reduced spatially by `kv_stride`
(a strided depthwise kxk conv + BN in front of each of the K and V
projections), which shrinks the attention matrix by kv_stride**2. All
projections are bias-free 1x1 convs:

    q = Wq x                                  (heads*key_dim, H, W)
    k = Wk [bn(dw(x))], v = Wv [bn(dw(x))]    (key_dim | value_dim, H', W')
    o = softmax(q k^T / sqrt(key_dim)) v      per head, over the H'W' keys
    y = Wo o                                  (out, H, W)

The block around it (pre-norm, layer scale, residual) is written in the DSL
(blocks/uib.arch). The lowered module registers its tensors in the order of
timm's MultiQueryAttention2d (query, key, value, output), so weights port by
position.

Cost. params: the four projections, plus per reduced path a depthwise kernel
and a BN's affine pair. MACs: the projections and depthwise convs, plus the
two attention matmuls, q k^T and attn v: heads * HW * H'W' * (key_dim +
value_dim) — what FlopCounterMode counts for timm's module (on the CPU too
once archdsl is imported: ops/mhsa.py gives torch's counter the formula its
CPU flash kernel lacks). Softmax and scaling are not MACs.

Bytes: the report charges this op its weights + input + output, as for any
op — i.e. it is treated as one fused kernel (projections feeding a
flash-style attention), so q, k, v and the (heads, HW, H'W') score matrix
stay on chip. With one shared K/V head and kv reduction, k and v are small
(key_dim * H'W' elements each), which is what Mobile MQA is designed for;
an unfused implementation would also move q, k, v and the scores.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from archdsl.ops.registry import Attrs, Cost, LowerContext, OpDef, Shape, ShapeError, register


class MQAAttrs(Attrs):
    heads: int = Field(gt=0, description="query heads")
    key_dim: int = Field(gt=0, description="channels per query head and of the shared key")
    value_dim: int | None = Field(None, gt=0, description="channels of the shared value; default key_dim")
    out: int | None = Field(None, gt=0, description="output channels; default the input's")
    kv_stride: int = Field(1, gt=0, description="spatial reduction of keys and values")
    k: int = Field(3, gt=0, description="kernel of the depthwise key/value reduction")
    eps: float = Field(1e-5, gt=0, description="eps of the reduction's BN")


def _vd(a: MQAAttrs) -> int:
    return a.value_dim or a.key_dim


def _kv_pad(a: MQAAttrs) -> int:
    return ((a.kv_stride - 1) + (a.k - 1)) // 2  # timm's symmetric padding


def kv_size(a: MQAAttrs, h: int, w: int) -> tuple[int, int]:
    """Spatial size of the keys and values."""
    if a.kv_stride == 1:
        return h, w
    p = _kv_pad(a)
    return (h + 2 * p - a.k) // a.kv_stride + 1, (w + 2 * p - a.k) // a.kv_stride + 1


def shape(a: MQAAttrs, x: Shape) -> Shape:
    c, h, w = x
    kh, kw = kv_size(a, h, w)
    if kh <= 0 or kw <= 0:
        raise ShapeError(f"a kv_stride of {a.kv_stride} with a {a.k}x{a.k} kernel leaves no keys "
                         f"on a {h}x{w} input")
    return (a.out or c, h, w)


def cost(a: MQAAttrs, x: Shape, y: Shape) -> Cost:
    c, h, w = x
    n = h * w
    kh, kw = kv_size(a, h, w)
    m = kh * kw
    qk, vd, out = a.heads * a.key_dim, _vd(a), y[0]
    params = c * qk + c * a.key_dim + c * vd + a.heads * vd * out
    macs = n * c * qk + m * c * (a.key_dim + vd) + n * a.heads * vd * out
    if a.kv_stride > 1:
        params += 2 * (c * a.k * a.k + 2 * c)  # depthwise kernel + BN affine, for K and V
        macs += 2 * m * c * a.k * a.k
    macs += a.heads * n * m * (a.key_dim + vd)  # q k^T and attn v
    # the outputs of its convs: query, key and value projections (after their
    # strided depthwise convs), output projection
    acts = n * qk + m * (a.key_dim + vd) + n * out + (2 * m * c if a.kv_stride > 1 else 0)
    # fvcore: not the fused attention (F.scaled_dot_product_attention); 2 per element of each BN
    fv = macs - a.heads * n * m * (a.key_dim + vd) + (2 * 2 * m * c if a.kv_stride > 1 else 0)
    return Cost(params=params, macs=macs, activations=acts, fvcore=fv)


class MultiQueryAttention(nn.Module):
    """Multi-query attention on a feature map; see the module docstring."""

    def __init__(self, dim: int, out: int, heads: int, key_dim: int, value_dim: int,
                 kv_stride: int, k: int, pad: int, eps: float):
        super().__init__()
        self.heads, self.key_dim, self.value_dim = heads, key_dim, value_dim
        self.query = nn.Sequential()
        self.query.add_module("proj", nn.Conv2d(dim, heads * key_dim, 1, bias=False))
        self.key = self._kv(dim, key_dim, kv_stride, k, pad, eps)
        self.value = self._kv(dim, value_dim, kv_stride, k, pad, eps)
        self.output = nn.Sequential()
        self.output.add_module("proj", nn.Conv2d(heads * value_dim, out, 1, bias=False))
        self.reset_parameters()

    @staticmethod
    def _kv(dim: int, width: int, stride: int, k: int, pad: int, eps: float) -> nn.Sequential:
        path = nn.Sequential()
        if stride > 1:
            path.add_module("down_conv", nn.Conv2d(dim, dim, k, stride, pad, groups=dim, bias=False))
            path.add_module("norm", nn.BatchNorm2d(dim, eps=eps))
        path.add_module("proj", nn.Conv2d(dim, width, 1, bias=False))
        return path

    def reset_parameters(self) -> None:
        # Xavier-uniform projections: timm found it steadier for training the
        # MobileNetV4 hybrids than PyTorch's conv default.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.xavier_uniform_(m.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        # q: (B, heads, HW, key_dim); k, v: (B, 1, H'W', dim), one head broadcast to all.
        q = self.query(x).reshape(b, self.heads, self.key_dim, h * w).transpose(-1, -2)
        k = self.key(x).flatten(2).transpose(1, 2).unsqueeze(1)
        v = self.value(x).flatten(2).transpose(1, 2).unsqueeze(1)
        o = F.scaled_dot_product_attention(q, k, v)
        # Channels head-major, as timm's output projection expects them.
        o = o.transpose(-1, -2).reshape(b, self.heads * self.value_dim, h, w)
        return self.output(o)

    def extra_repr(self) -> str:
        return f"heads={self.heads}, key_dim={self.key_dim}, value_dim={self.value_dim}"


def lower(a: MQAAttrs, x: Shape, y: Shape, ctx: LowerContext) -> nn.Module:
    return MultiQueryAttention(x[0], y[0], a.heads, a.key_dim, _vd(a), a.kv_stride, a.k,
                               _kv_pad(a), a.eps)


MQA = register(OpDef("mqa", MQAAttrs, shape, cost, lower,
                     "mqa(heads, key_dim, value_dim: key_dim, out: in.c, kv_stride: 1, k: 3, eps: 1e-5)"))
