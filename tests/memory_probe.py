"""Reference measurements of a built module's memory, from torch alone: the
peak of live tensor bytes during a forward pass (a dispatch mode that sees
every tensor made) and the bytes autograd saves (saved_tensors_hooks)."""
from __future__ import annotations

import weakref

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from archdsl.compiler import ir


class LiveBytes(TorchDispatchMode):
    """Peak bytes of the storages of live tensors, sampled after every op run
    outside a layer and after every layer (an op module of the IR) returns:
    temporaries inside one layer are not seen, as the convention says."""

    def __init__(self, net: torch.nn.Module, spec: ir.Node, x: torch.Tensor):
        super().__init__()
        self.refs = [weakref.ref(x)]
        self.inside = 0
        self.peak = 0
        self.handles = []
        for name, node in ir.named(spec):
            if isinstance(node, ir.Op):
                m = net.get_submodule(name)
                self.handles.append(m.register_forward_pre_hook(self._enter))
                self.handles.append(m.register_forward_hook(self._leave))

    def _enter(self, *_):
        self.inside += 1

    def _leave(self, *_):
        self.inside -= 1
        if not self.inside:
            self.sample()

    def sample(self):
        live = {}
        alive = []
        for r in self.refs:
            t = r()
            if t is not None:
                alive.append(r)
                st = t.untyped_storage()
                live[st.data_ptr()] = st.nbytes()
        self.refs = alive
        self.peak = max(self.peak, sum(live.values()))

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_leaves(out):
            if isinstance(t, torch.Tensor):
                self.refs.append(weakref.ref(t))
        if not self.inside:
            self.sample()
        return out


def inference_peak(net: torch.nn.Module, spec: ir.Node, batch: int) -> int:
    net.eval()
    x = torch.randn((batch,) + tuple(spec.in_shape))
    probe = LiveBytes(net, spec, x)
    with torch.no_grad(), probe:
        net(x)
    for h in probe.handles:
        h.remove()
    return probe.peak


def saved_bytes(net: torch.nn.Module, spec: ir.Node, batch: int) -> int:
    """Distinct storages autograd packs in a training forward, weights and buffers left out."""
    net.train()
    state = {t.untyped_storage().data_ptr() for t in [*net.parameters(), *net.buffers()]}
    saved: dict[int, int] = {}

    def pack(t):
        st = t.untyped_storage()
        if st.data_ptr() not in state:
            saved[st.data_ptr()] = st.nbytes()
        return t

    x = torch.randn((batch,) + tuple(spec.in_shape))
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        y = net(x)
    del y
    return sum(saved.values())


def _conv_backward_flops(grad_out_shape, x_shape, w_shape, bias, stride, padding, dilation, transposed,
                         output_padding, groups, output_mask, out_shape, **kw):
    """torch's conv backward formula, with the weight gradient of a grouped
    conv divided by its groups: torch (before pytorch/pytorch#183405) counts
    it as if the conv were dense, `groups` times too many."""
    from torch.utils.flop_counter import conv_backward_flop

    raw = conv_backward_flop.__wrapped__
    args = (grad_out_shape, x_shape, w_shape, bias, stride, padding, dilation, transposed, output_padding, groups)
    grad_input = raw(*args, [output_mask[0], False, False], out_shape=out_shape)
    grad_weight = raw(*args, [False, output_mask[1], False], out_shape=out_shape)
    return grad_input + grad_weight // groups


def training_macs(net: torch.nn.Module, spec: ir.Node, batch: int) -> int:
    """FlopCounterMode's MACs (FLOPs / 2) over a training forward and backward pass."""
    from torch.utils.flop_counter import FlopCounterMode

    net.train()
    x = torch.randn((batch,) + tuple(spec.in_shape), device=next(net.parameters()).device)
    fixed = {torch.ops.aten.convolution_backward: _conv_backward_flops}
    with FlopCounterMode(display=False, custom_mapping=fixed) as fc:
        net(x).sum().backward()
    return fc.get_total_flops() // 2
