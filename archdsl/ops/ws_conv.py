"""Weight-standardized 2-D convolution (Qiao et al. 2019), with the learnable
per-channel gain and gamma / sqrt(fan-in) scale of the normalizer-free
networks (Brock et al. 2021). The weight is standardized on every forward
pass, so its cost is the conv's: the standardization touches the weights only.
"""
from __future__ import annotations

import torch
from pydantic import Field, model_validator
from torch import nn

from archdsl.ops import conv
from archdsl.ops.registry import Cost, LowerContext, OpDef, Shape, register


class WsConvAttrs(conv.ConvAttrs):
    bias: bool = True  # the NF nets keep a bias, as no norm layer follows
    # true: w' = gain * gamma / sqrt(fan_in) * standardize(w), the gain learnable
    # per output channel (ScaledStdConv); false: plain standardize(w) (StdConv, BiT).
    gain: bool = True
    gain_init: float = 1.0
    gamma: float = Field(1.0, description="the activation's gain, folded into the weight")
    eps: float = Field(1e-6, gt=0, description="added to the variance of each filter")

    @model_validator(mode="after")
    def _scale_needs_gain(self):
        if not self.gain and (self.gamma != 1.0 or self.gain_init != 1.0):
            raise ValueError("gamma and gain_init apply only with gain: true")
        return self


def cost(a: WsConvAttrs, x: Shape, y: Shape) -> Cost:
    c = conv.cost(a, x, y)
    # fvcore: the standardizing batch_norm (training mode) is 5 per weight element with
    # the gain as its affine weight, 4 without
    weights = c.params - (a.out if a.bias else 0)
    return Cost(params=c.params + (a.out if a.gain else 0), macs=c.macs,
                fvcore=c.macs + (5 if a.gain else 4) * weights)


class WsConv2d(nn.Conv2d):
    """nn.Conv2d whose weight is standardized per output channel before use.
    Parameters register as weight, bias, gain (timm's ScaledStdConv2d order)."""

    def __init__(self, *args, gain: bool, gain_init: float, gamma: float, eps: float, **kwargs):
        super().__init__(*args, **kwargs)
        self.eps = eps
        self.gain_init = gain_init
        fan_in = self.weight[0].numel()
        self.scale = gamma * fan_in ** -0.5 if gain else None
        # (out, 1, 1, 1) as in timm, so its state dict loads as is.
        self.gain = nn.Parameter(torch.empty(self.out_channels, 1, 1, 1)) if gain else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # nn.Conv2d calls this before the gain exists; run again once it does.
        if not hasattr(self, "gain"):
            return
        super().reset_parameters()
        if self.gain is not None:
            with torch.no_grad():
                self.gain.fill_(self.gain_init)

    def standardized_weight(self, weight: torch.Tensor) -> torch.Tensor:
        # batch_norm in training mode over (1, out, fan_in): each filter gets zero
        # mean and unit (biased) variance, then the affine weight gain * scale.
        affine = (self.gain * self.scale).view(-1) if self.gain is not None else None
        # (torch.batch_norm: F.batch_norm's batch-size check reads the shape, which
        # torch.jit.trace warns about; the weight's shape is fixed)
        w = torch.batch_norm(weight.reshape(1, self.out_channels, -1), affine, None, None, None,
                             True, 0.0, self.eps, torch.backends.cudnn.enabled)
        return w.reshape_as(weight)

    def _conv_forward(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        return super()._conv_forward(x, self.standardized_weight(weight), bias)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", gain={self.gain is not None}, eps={self.eps}"


class SamePadWsConv2d(conv.SamePadConv2d, WsConv2d):
    """Weight-standardized conv with TensorFlow "same" padding (computed per input)."""


def lower(a: WsConvAttrs, x: Shape, y: Shape, ctx: LowerContext) -> nn.Module:
    dynamic = a.padding == "same" and not conv._same_is_symmetric(a)
    cls = SamePadWsConv2d if dynamic else WsConv2d
    return cls(x[0], a.out, a.k, stride=a.stride, padding=0 if dynamic else conv.padding(a),
               dilation=a.dilation, groups=a.groups, bias=a.bias, gain=a.gain,
               gain_init=a.gain_init, gamma=a.gamma, eps=a.eps)


WS_CONV = register(OpDef(
    "ws_conv", WsConvAttrs, conv.shape, cost, lower,
    'ws_conv(out, k, stride: 1, groups: 1, dilation: 1, bias: true, padding: auto | int | "same", '
    "gain: true, gain_init: 1.0, gamma: 1.0, eps: 1e-6)"))
