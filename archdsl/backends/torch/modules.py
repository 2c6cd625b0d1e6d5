"""The torch modules the structural IR forms lower to (ops lower themselves)."""
from __future__ import annotations

import torch
from torch import nn


class DropPath(nn.Module):
    """Stochastic depth: drop a residual branch per sample while training."""

    def __init__(self, rate: float):
        super().__init__()
        self.rate = rate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.rate == 0.0 or not self.training:
            return x
        keep = 1.0 - self.rate
        # one draw per sample: the mask is x's first element of each sample, shaped (N, 1, 1, 1)
        mask = torch.empty_like(x[:, :1, :1, :1]).bernoulli_(keep)
        return x * mask / keep

    def extra_repr(self) -> str:
        return f"rate={self.rate:.3f}"


class Residual(nn.Module):
    """shortcut(x) + [gain *] drop_path(body(x))."""

    def __init__(self, body: nn.Module, shortcut: nn.Module | None, drop_path: DropPath | None,
                 gain: float | None = None, shortcut_first: bool = False, gain_channels: int = 0,
                 body_fresh: bool = False):
        super().__init__()
        # The body returns a tensor nothing else holds: outside autograd the
        # shortcut may be added into it in place (as timm's blocks do).
        self.body_fresh = body_fresh
        # A module's own parameters come first in its state dict, as timm's
        # skipinit_gain (a scalar) and ConvNeXt's gamma (per channel) do.
        self.gain_init = gain
        shape = (gain_channels, 1, 1) if gain_channels else ()
        self.gain = nn.Parameter(torch.empty(shape)) if gain is not None else None
        if shortcut_first:  # registration order only: state-dict order for ports
            self.shortcut = shortcut
        self.body = body
        self.shortcut = shortcut
        self.drop_path = drop_path
        self.reset_parameters()

    def reset_parameters(self) -> None:
        if self.gain is not None:
            with torch.no_grad():
                self.gain.fill_(self.gain_init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(x)
        if self.drop_path is not None:
            y = self.drop_path(y)
        fresh = self.body_fresh
        if self.gain is not None:
            y, fresh = y * self.gain, True
        s = x if self.shortcut is None else self.shortcut(x)
        # A trace (jit's or FX's) records one branch: it takes the out-of-place
        # one, valid everywhere, before looking at any tensor.
        if fresh and not torch.jit.is_tracing() and not isinstance(y, torch.fx.Proxy) \
                and not (torch.is_grad_enabled() and y.requires_grad) and y.dtype == s.dtype \
                and y.shape == s.shape:
            return y.add_(s)
        return s + y


class Branches(nn.Module):
    """Branches registered in a given order (the state dict's), named and run
    in the order written."""

    def __init__(self, branches: list[nn.Module], registered: list[int]):
        super().__init__()
        for i in registered:
            self.add_module(str(i), branches[i])
        self.run = list(branches)  # a plain list: not registered twice

    def __iter__(self):
        return iter(self.run)


def branches(modules: list[nn.Module], registered: list[int] | None = None) -> nn.Module:
    """A ModuleList, or Branches when registration order differs from the written one."""
    if registered is None or registered == sorted(registered):
        return nn.ModuleList(modules)
    return Branches(modules, registered)


class ParallelSum(nn.Module):
    def __init__(self, branches: nn.Module):
        super().__init__()
        self.branches = branches

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = None
        for b in self.branches:
            y = b(x)
            out = y if out is None else out + y
        return out


class ParallelConcat(nn.Module):
    def __init__(self, branches: nn.Module):
        super().__init__()
        self.branches = branches

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([b(x) for b in self.branches], dim=1)


class SplitConcat(nn.Module):
    """Split channels into parts, run one branch on each, concatenate."""

    def __init__(self, sizes: list[int], branches: nn.Module):
        super().__init__()
        self.sizes = list(sizes)
        self.branches = branches

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        parts = torch.split(x, self.sizes, dim=1)  # indexed, not iterated: FX traces it
        return torch.cat([b(parts[i]) for i, b in enumerate(self.branches)], dim=1)

    def extra_repr(self) -> str:
        return f"sizes={self.sizes}"


class Gate(nn.Module):
    """x * body(x), the body's output broadcast over H and W (squeeze-excite)."""

    def __init__(self, body: nn.Module):
        super().__init__()
        self.body = body

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.body(x)


class Graph(nn.Module):
    """Children that take and give named values (ir.Wiring): value 0.. are the
    input's tensors, then each child's outputs in turn. Children are named
    0, 1, ... as nn.Sequential names them, so a chain and a DAG of the same
    layers have the same state dict."""

    def __init__(self, children: list[nn.Module], takes: list[tuple[int, ...]], gives: list[int],
                 n_inputs: int, outputs: tuple[int, ...], registered: list[int] | None = None):
        super().__init__()
        # Registered in `registered` order (the state dict's), run in the order written.
        for i in registered if registered is not None else range(len(children)):
            self.add_module(str(i), children[i])
        self.steps = list(children)  # a plain list: not registered twice
        self.takes = [list(t) for t in takes]  # per child: the value ids it reads
        self.gives = list(gives)  # per child: how many tensors it returns
        self.n_inputs = n_inputs
        self.outputs = list(outputs)
        # per child: the values it reads last, dropped once it has run (a value
        # no later child reads frees its memory: archdsl.backends.memory's liveness)
        last = {i: k for k, t in enumerate(self.takes) for i in t}
        self.drops = [[i for i in sorted(set(t)) if last[i] == k and i not in self.outputs]
                      for k, t in enumerate(self.takes)]

    def forward(self, x):
        values = list(x) if self.n_inputs > 1 else [x]
        for m, takes, gives, drops in zip(self.steps, self.takes, self.gives, self.drops):
            if gives == 1:
                values.append(m(values[takes[0]] if len(takes) == 1 else tuple(values[i] for i in takes)))
            else:  # indexed, not iterated: FX traces it
                y = m(values[takes[0]] if len(takes) == 1 else tuple(values[i] for i in takes))
                values.extend(y[i] for i in range(gives))
                del y  # the tuple would keep every part alive (memory.py's liveness drops them)
            for i in drops:
                values[i] = None
        if len(self.outputs) == 1:
            return values[self.outputs[0]]
        return tuple(values[i] for i in self.outputs)


class Stage(nn.Module):
    def __init__(self, blocks: nn.Module):
        super().__init__()
        self.blocks = blocks  # an nn.Sequential, or a Graph when the stage names values

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(x)
