"""Weight prepacking for deployed convolutions on the CPU.

oneDNN, PyTorch's CPU convolution library, computes in a blocked weight
layout of its own. Eager `F.conv2d` hands it the plain weight, which it
reorders on every call; a deployed network's weights no longer change, so
`PackedConv2d` reorders each weight once (when it is first used, and again
only if the weight changes) and calls oneDNN with the packed copy. This is
the weight "freezing" that inference compilers do (PyTorch's inductor uses
the same two operators). On a 2-core CPU it halves ResNet-50's batch-1
forward (bench/deploy_latency.py).

The packed path is taken only where it computes what the plain one does:
float32, channels-last inputs (deployed modules run channels-last) on the
CPU, no autograd (torch.no_grad or torch.inference_mode), not while tracing,
scripting or compiling (those record the plain path, which runs anywhere),
nor under a dispatch mode such as FlopCounterMode (which counts the plain
convolution). Anywhere else, and if the operators are missing or refuse a
layer, the layer is an ordinary nn.Conv2d. State dicts are unchanged.
"""
from __future__ import annotations

import torch
from torch import nn

_OPS = getattr(torch.ops, "mkldnn", None)


def available() -> bool:
    """Are the oneDNN prepacking operators in this PyTorch build?"""
    try:
        return (torch.backends.mkldnn.is_available() and hasattr(_OPS, "_reorder_convolution_weight")
                and hasattr(_OPS, "_convolution_pointwise"))
    except (AttributeError, RuntimeError):
        return False


def _dispatch_mode_active() -> bool:
    """Is a tensor-dispatch mode watching (FlopCounterMode, fake tensors...)? It
    would not know the packed operator: such callers get the plain path."""
    try:
        from torch.utils._python_dispatch import _get_current_dispatch_mode
    except ImportError:
        return True
    return _get_current_dispatch_mode() is not None


class PackedConv2d(nn.Conv2d):
    """An nn.Conv2d whose inference forward uses a prepacked weight (see the module docstring)."""

    _packed: tuple | None = None  # (weight's identity, version, packed weight)
    _refused: bool = False  # oneDNN declined this layer: always the plain path

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._refused or not self._packable(x):
            return super().forward(x)
        w = self.weight
        key = (w.data_ptr(), w._version)
        if self._packed is None or self._packed[0] != key:
            try:
                packed = _OPS._reorder_convolution_weight(w, list(self.padding), list(self.stride),
                                                          list(self.dilation), self.groups, list(x.shape))
            except RuntimeError:
                self._refused = True
                return super().forward(x)
            self._packed = (key, packed)
        return _OPS._convolution_pointwise(x, self._packed[1], self.bias, list(self.padding),
                                           list(self.stride), list(self.dilation), self.groups,
                                           "none", [], "")

    def _packable(self, x: torch.Tensor) -> bool:
        return (not isinstance(x, torch.fx.Proxy)  # a symbolic trace records the plain convolution
                and not torch.is_grad_enabled() and x.dim() == 4 and x.device.type == "cpu"
                and x.dtype == torch.float32 and self.weight.dtype == torch.float32
                and x.is_contiguous(memory_format=torch.channels_last)  # the output is channels-last
                and not torch.jit.is_tracing() and not torch.jit.is_scripting()
                and not torch.compiler.is_compiling() and not _dispatch_mode_active())

    def __getstate__(self):  # copies and pickles start unpacked (oneDNN tensors do not copy)
        state = super().__getstate__()
        state.pop("_packed", None)
        return state


def prepack(net: nn.Module) -> int:
    """Turn the plain nn.Conv2d layers of `net` into PackedConv2d, in place;
    returns how many. Subclasses (e.g. TensorFlow-padded convs) are left alone."""
    if not available():
        return 0
    n = 0
    for m in net.modules():
        if type(m) is nn.Conv2d and m.padding_mode == "zeros" and isinstance(m.padding, tuple):
            m.__class__ = PackedConv2d  # same parameters and state dict: only forward differs
            n += 1
    return n
