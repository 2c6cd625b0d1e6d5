"""IR -> torch.nn.Module. The module mirrors the spec: stem, stages.i.blocks.j, head."""
from __future__ import annotations

import contextlib

import torch
from torch import nn

from archdsl.backends.torch.modules import (DropPath, Gate, Graph, ParallelConcat, ParallelSum, Residual,
                                            SplitConcat, Stage)
from archdsl.backends.torch.modules import branches as make_branches
from archdsl.compiler import ir
from archdsl.ops import REGISTRY, LowerContext

_PASS_THROUGH = {"identity", "dropout"}
_POOLS = {"global_pool", "take_token", "mean_tokens"}  # where the head's features end


def _passes_input(node: ir.Node) -> bool:
    """Does this node return its input itself (identity, dropout, an empty sequence)?"""
    if isinstance(node, ir.Op):
        return node.kind in _PASS_THROUGH
    if isinstance(node, ir.Seq) and node.wiring is not None:  # a DAG: assume it may
        return True
    if isinstance(node, ir.Seq):
        return all(_passes_input(c) for c in node.children)
    return False


def _fresh(node: ir.Node) -> bool:
    """Does this node return a tensor that nothing else holds, nor autograd
    keeps for a backward pass? (in-place safety)"""
    if isinstance(node, ir.Op):
        return node.kind not in _PASS_THROUGH and not REGISTRY[node.kind].keeps_output
    if isinstance(node, ir.Seq) and node.wiring is not None:  # a DAG may return a value it read
        return False
    if isinstance(node, ir.Seq):  # what its last child that computes returns
        last = next((c for c in reversed(node.children) if not _passes_input(c)), None)
        return last is not None and _fresh(last)
    return True


class _Lowering:
    def __init__(self, drop_path_rate: float, residual_count: int):
        self.rate = drop_path_rate
        self.count = residual_count
        self.index = 0
        self.contexts = {ok: LowerContext(ok) for ok in (False, True)}

    def node(self, n: ir.Node, inplace_ok: bool = False) -> nn.Module:
        if isinstance(n, ir.Op):
            opdef = REGISTRY[n.kind]
            return opdef.lower(n.attrs, n.in_shape, n.out_shape, self.contexts[inplace_ok])
        if isinstance(n, ir.Seq):
            return self.seq(n)
        if isinstance(n, ir.Residual):
            dp = None
            if n.drop_path:
                rate = self.rate * self.index / max(self.count - 1, 1)
                self.index += 1
                dp = DropPath(rate) if rate > 0 else None
            short = self.seq(n.shortcut) if n.shortcut is not None else None
            return Residual(self.seq(n.body), short, dp, n.gain, n.shortcut_first,
                            n.out_shape[0] if n.gain_per_channel else 0, _fresh(n.body))
        if isinstance(n, ir.Parallel):
            branches = [self.seq(b) for b in n.branches]
            held = make_branches(branches, n.registered())
            return ParallelSum(held) if n.join == "sum" else ParallelConcat(held)
        if isinstance(n, ir.Split):
            return SplitConcat(n.sizes, make_branches([self.seq(b) for b in n.branches], n.registered()))
        if isinstance(n, ir.Gate):
            return Gate(self.seq(n.body))
        raise TypeError(f"unknown IR node {type(n).__name__}")

    def children(self, seq: ir.Seq) -> list[nn.Module]:
        if seq.wiring is not None:  # a value may have several readers: nothing runs in place
            return [self.node(c) for c in seq.children]
        out = []
        fresh = False  # the sequence's input is not its own to overwrite
        for c in seq.children:
            out.append(self.node(c, inplace_ok=fresh))
            if not _passes_input(c):
                fresh = _fresh(c)
        return out

    def seq(self, seq: ir.Seq) -> nn.Module:
        """A chain as nn.Sequential; a sequence that names values as a Graph."""
        modules = self.children(seq)
        if seq.wiring is None and seq.ranks is None:
            return nn.Sequential(*modules)
        w = seq.wiring or ir.chain_wiring(seq)
        gives = [len(ir.shapes(c.out_shape)) for c in seq.children]
        return Graph(modules, w.inputs, gives, w.n_inputs, w.outputs, seq.registered())


class Network(nn.Module):
    """A compiled network with the interface timm users expect."""

    def __init__(self, spec: ir.Seq, drop_path_rate: float = 0.0, channels_last: bool = False):
        super().__init__()
        # Inputs are converted to channels-last (NHWC) memory: on CPUs oneDNN's
        # convolutions run faster in it (deployed builds use it by default).
        self.channels_last = channels_last
        stem_ir, stages_ir, head_ir = spec.children
        residuals = 0 if drop_path_rate == 0 else sum(  # the rate schedule needs the count
            1 for n in ir.walk(spec) if isinstance(n, ir.Residual) and n.drop_path)
        low = _Lowering(drop_path_rate, residuals)
        self.spec = spec  # the IR it was built from: archdsl.deploy rewrites it
        self.drop_path_rate = drop_path_rate
        self.stem = low.seq(stem_ir)
        self.stages = nn.Sequential(*[Stage(low.seq(s)) for s in stages_ir.children])
        self.head = low.seq(head_ir)
        # Layers of the head before global pooling belong to forward_features.
        kinds = [c.kind if isinstance(c, ir.Op) else "" for c in head_ir.children]
        # ... up to the pool: of the map, or of the tokens (a class token, or their mean).
        self._pool_at = next((i for i, k in enumerate(kinds) if k in _POOLS), len(kinds))
        # The classifier: the head's last linear, or a 1x1 conv after the pool
        # (timm's DLA classifies with one).
        linears = [i for i, (k, c) in enumerate(zip(kinds, head_ir.children)) if k == "linear" or (
            k == "conv" and i > self._pool_at and c.attrs.k == 1 and c.in_shape[1:] == (1, 1))]
        self._classifier_at = linears[-1] if linears else None
        pre = head_ir.children[self._pool_at - 1].out_shape if self._pool_at else stages_ir.out_shape
        self.num_features = pre[0]
        self.num_classes = head_ir.out_shape[0] if self._classifier_at is not None else 0
        self.input_shape = spec.in_shape
        self.feature_info = self._feature_info(spec)

    def _feature_info(self, spec: ir.Seq) -> list[dict]:
        stem_ir, stages_ir, _ = spec.children
        h = spec.in_shape[1]
        info = []
        if stem_ir.children:
            info.append(dict(num_chs=stem_ir.out_shape[0], reduction=h // stem_ir.out_shape[1], module="stem"))
        for i, s in enumerate(stages_ir.children):
            out = ir.shapes(s.out_shape)[0]  # a stage of several streams: its first
            info.append(dict(num_chs=out[0], reduction=h // out[1], module=f"stages.{i}"))
        return info

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels_last and x.ndim == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        x = self.stem(x)
        x = self.stages(x)
        for i, m in enumerate(self.head):
            if i >= self._pool_at:
                break
            x = m(x)
        return x

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        for i, m in enumerate(self.head):
            if i < self._pool_at:
                continue
            if pre_logits and i == self._classifier_at:
                return x.flatten(1)
            x = m(x)
        return x.flatten(1) if x.ndim == 4 and x.shape[2:] == (1, 1) else x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def get_classifier(self) -> nn.Module:
        return self.head[self._classifier_at] if self._classifier_at is not None else nn.Identity()

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the final linear layer (num_classes=0 removes it)."""
        if self._classifier_at is None:
            raise ValueError("this network has no linear classifier in its head")
        old = self.head[self._classifier_at]
        if not num_classes:
            new = nn.Identity()
        elif isinstance(old, nn.Conv2d):
            new = nn.Conv2d(old.in_channels, num_classes, 1, bias=old.bias is not None)
        else:
            new = type(old)(old.in_features, num_classes, bias=old.bias is not None)
        if num_classes:
            nn.init.normal_(new.weight, std=0.01)
            if new.bias is not None:
                nn.init.zeros_(new.bias)
        self.head[self._classifier_at] = new
        self.num_classes = num_classes


def build_module(spec: ir.Seq, drop_path_rate: float = 0.0, device: str | torch.device | None = None,
                 channels_last: bool = False, prepack: bool = False) -> Network:
    """Weights start from PyTorch's default initialization (one pass, as
    torchvision does); a BN with zero_init starts its residual branch at zero.
    channels_last: 4-D weights and inputs in channels-last memory.
    prepack: convolutions keep a oneDNN-packed weight for inference (archdsl.backends.torch.prepack)."""
    with torch.device(device) if device is not None else contextlib.nullcontext():
        net = Network(spec, drop_path_rate, channels_last)
    if channels_last:
        net.to(memory_format=torch.channels_last)
    if prepack:
        from archdsl.backends.torch.prepack import prepack as pack

        pack(net)
    return net
