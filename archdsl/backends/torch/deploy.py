"""`deploy(module)`: a compiled network in its inference form, weights included.

The IR passes (archdsl.compiler.passes) rewrite the module's spec and say where each
op of the result gets its tensors; this lowers the rewritten spec and computes
those tensors from the module's own: convolution weights and biases, and the
BatchNorms' running statistics, eps, gamma and beta.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from archdsl.backends.torch.lower import Network, build_module
from archdsl.compiler import ir, passes
from archdsl.compiler.passes import Expr, Fold, Identity, Scaled, Sum, Tensors


def _conv(expr: Expr, src: nn.Module, to: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """(weight, bias) of the convolution `expr` describes; `to`: dtype and device."""
    if isinstance(expr, Tensors):
        m = src.get_submodule(expr.name)
        w = m.weight.to(**to)
        return w, (m.bias.to(**to) if m.bias is not None else w.new_zeros(w.shape[0]))
    if isinstance(expr, Identity):
        per_group = expr.channels // expr.groups
        w = torch.zeros(expr.channels, per_group, 1, 1, **to)
        c = torch.arange(expr.channels, device=w.device)
        w[c, c % per_group] = 1.0
        return w, w.new_zeros(expr.channels)
    if isinstance(expr, Fold):
        w, b = _conv(expr.conv, src, to)
        bn = src.get_submodule(expr.bn.name)
        scale = bn.running_var.to(**to).add(bn.eps).rsqrt()
        if bn.weight is not None:
            scale = scale * bn.weight.to(**to)
        shift = bn.bias.to(**to) if bn.bias is not None else 0.0
        return w * scale.reshape(-1, 1, 1, 1), (b - bn.running_mean.to(**to)) * scale + shift
    if isinstance(expr, Scaled):
        w, b = _conv(expr.conv, src, to)
        if isinstance(expr.by, Tensors):  # a layer_scale's gamma, one per output channel
            g = src.get_submodule(expr.by.name).gamma.to(**to)
            return w * g.reshape(-1, 1, 1, 1), b * g
        return w * expr.by, b * expr.by
    if isinstance(expr, Sum):
        w_sum, b_sum = 0.0, 0.0
        for t in expr.terms:
            w, b = _conv(t, src, to)
            p = (expr.k - w.shape[-1]) // 2
            w_sum, b_sum = w_sum + F.pad(w, [p, p, p, p]), b_sum + b
        return w_sum, b_sum
    raise TypeError(f"unknown provenance {type(expr).__name__}")


def _kept(state: dict[str, torch.Tensor], nodes: set[str], renames: dict[str, str]) -> dict[str, torch.Tensor]:
    """State entries of the nodes kept as they are, under their new module names.
    `nodes`: the original's node names (each entry belongs to the nearest)."""
    out = {}
    for key, value in state.items():
        owner = key.rpartition(".")[0]
        while owner not in nodes:  # an op's module may have submodules
            owner = owner.rpartition(".")[0]
        if owner in renames:
            out[renames[owner] + key[len(owner):]] = value
    return out


def deploy(module: Network, channels_last: bool = True, prepack: bool = True) -> Network:
    """The deployed form of a compiled network (BatchNorms folded into the
    convolutions before them, sums of linear branches fused into one
    convolution), with weights computed from `module`'s. Returned in eval mode:
    the fold uses the BatchNorms' running statistics. channels_last: run in
    channels-last memory (faster convolutions on CPUs); prepack: convolutions
    keep a oneDNN-packed copy of their weight for inference on the CPU
    (archdsl.backends.torch.prepack). Neither changes the outputs beyond rounding."""
    if not isinstance(module, Network):
        raise TypeError("deploy() takes a module built by archdsl (archdsl.load or Compiled.module)")
    d = passes.deploy(module.spec)
    p = next(module.parameters(), torch.empty(0))
    # Half-precision weights are folded in float32, as precisely as an fp32 model.
    to = dict(dtype=torch.promote_types(p.dtype, torch.float32), device=p.device)
    renames = {e.name: name for name, e in d.origins.items() if isinstance(e, Tensors)}
    state = _kept(module.state_dict(), {name for name, _ in ir.named(module.spec)}, renames)
    with torch.no_grad():
        for name, expr in d.origins.items():
            if not isinstance(expr, Tensors):
                state[f"{name}.weight"], state[f"{name}.bias"] = _conv(expr, module, to)
    out = build_module(d.spec, module.drop_path_rate, p.device, channels_last, prepack, data=module._data,
                       features_only=module.features_only,
                       out_indices=module.feature_info.out_indices if module.features_only else None)
    out.load_state_dict(state)
    return out.eval()
