"""IR -> torch.nn.Module. The module mirrors the spec: stem, stages.i.blocks.j, head."""
from __future__ import annotations

import contextlib

import torch
from torch import nn

from archdsl.backends.torch.contract import FeatureInfo, TimmContract
from archdsl.backends.torch.modules import (DropPath, Gate, Graph, ParallelConcat, ParallelSum, Residual,
                                            SplitConcat, Stage)
from archdsl.backends.torch.modules import branches as make_branches
from archdsl.compiler import ir
from archdsl.compiler.passes import head as head_pass
from archdsl.ops import REGISTRY, LowerContext

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
                            n.out_shape[0] if n.gain_per_channel else 0, ir.fresh(n.body))
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
            if not ir.passes_input(c):
                fresh = ir.fresh(c)
            elif isinstance(c, ir.Seq) and not c.children:  # a mark (feature_map): a hook may hold its value
                fresh = False
        return out

    def seq(self, seq: ir.Seq) -> nn.Module:
        """A chain as nn.Sequential; a sequence that names values as a Graph."""
        modules = self.children(seq)
        if seq.wiring is None and seq.ranks is None:
            return nn.Sequential(*modules)
        w = seq.wiring or ir.chain_wiring(seq)
        gives = [len(ir.shapes(c.out_shape)) for c in seq.children]
        return Graph(modules, w.inputs, gives, w.n_inputs, w.outputs, seq.registered())


class Network(TimmContract, nn.Module):
    """A compiled network with the interface timm users expect (contract.py)."""

    def __init__(self, spec: ir.Seq, drop_path_rate: float = 0.0, channels_last: bool = False,
                 data: dict | None = None, features_only: bool = False, out_indices: list[int] | None = None):
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
        self._data = dict(data or {})  # the data config (pretrained_cfg's mean, std, crop, ...)
        self.grad_checkpointing = False
        self.stem = low.seq(stem_ir)
        self.stages = nn.Sequential(*[Stage(low.seq(s)) for s in stages_ir.children])
        self.head = low.seq(head_ir)
        self.input_shape = spec.in_shape
        self._read_head()
        self._read_units()
        self.feature_info = FeatureInfo([e for _, e, _ in self._points])
        self.features_only = False
        if features_only:
            self.make_features_only(out_indices)

    def _read_head(self) -> None:
        """Where the head's features end and its classifier is (passes/head.py)."""
        head_ir = self.spec.children[2]
        # Layers of the head before its pool belong to forward_features.
        self._pool_at = head_pass.pool_index(head_ir)
        self._classifier_at = head_pass.classifier_index(head_ir)
        pre = head_ir.children[self._pool_at - 1].out_shape if self._pool_at else head_ir.in_shape
        self.num_features = ir.shapes(pre)[0][0]
        self.num_classes = head_pass.num_classes(head_ir)
        out = head_ir.out_shape
        self._flatten = not ir.is_multi(out) and len(out) == 3 and out[1:] == (1, 1)  # logits as (N, C)

    def _head_features(self, x: torch.Tensor) -> torch.Tensor:
        for i, m in enumerate(self.head):
            if i >= self._pool_at:
                break
            x = m(x)
        return x

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        x = self.stem(x)
        x = self._run_stages(x)
        return self._head_features(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        for i, m in enumerate(self.head):
            if i < self._pool_at:
                continue
            if pre_logits and i == self._classifier_at:
                return x.flatten(1) if self._pool_at < len(self.head) and self._pooled else x
            x = m(x)
        return x.flatten(1) if self._flatten else x

    @property
    def _pooled(self) -> bool:
        """Does the head's pool keep one position (so pre-logits are (N, C))?"""
        c = self.spec.children[2].children[self._pool_at]
        return not ir.is_multi(c.out_shape) and c.out_shape[1:] == (1, 1)

    def forward(self, x: torch.Tensor):
        if self.features_only:
            return self.forward_intermediates(x, self.feature_info.out_indices, intermediates_only=True)
        return self.forward_head(self.forward_features(x))

    def get_classifier(self) -> nn.Module:
        return self.head[self._classifier_at] if self._classifier_at is not None else nn.Identity()

    def _classifier_name(self) -> str | None:
        return f"head.{self._classifier_at}" if self._classifier_at is not None else None

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        """A new classifier with num_classes outputs (0: none), and the
        pool avg, max, avgmax or none ('' as timm says it; None: unchanged).
        The head is rebuilt from its rewritten spec: its other layers keep
        their weights, and archdsl.deploy sees the new head."""
        if self._classifier_at is None and num_classes:
            raise ValueError("this network has no classifier in its head")
        pool = "none" if global_pool == "" else global_pool
        spec = head_pass.with_head_options(self.spec, num_classes=num_classes, global_pool=pool)
        old = self.head
        ref = next(old.parameters(), None)
        new = _Lowering(0.0, 0).seq(spec.children[2])
        if ref is not None:
            new.to(device=ref.device, dtype=ref.dtype)
        new.train(old.training)
        keep = self._classifier_at
        state = {k: v for k, v in old.state_dict().items() if keep is None or k.split(".")[0] != str(keep)}
        mine = new.state_dict()
        new.load_state_dict({k: v for k, v in state.items() if k in mine and mine[k].shape == v.shape},
                            strict=False)
        self.head = new
        self.spec = spec
        self._read_head()


def build_module(spec: ir.Seq, drop_path_rate: float = 0.0, device: str | torch.device | None = None,
                 channels_last: bool = False, prepack: bool = False, **options) -> Network:
    """Weights start from PyTorch's default initialization (one pass, as
    torchvision does); a BN with zero_init starts its residual branch at zero.
    channels_last: 4-D weights and inputs in channels-last memory.
    prepack: convolutions keep a oneDNN-packed weight for inference (archdsl.backends.torch.prepack).
    options: Network's data, features_only and out_indices."""
    with torch.device(device) if device is not None else contextlib.nullcontext():
        net = Network(spec, drop_path_rate, channels_last, **options)
    if channels_last:
        net.to(memory_format=torch.channels_last)
    if prepack:
        from archdsl.backends.torch.prepack import prepack as pack

        pack(net)
    return net
