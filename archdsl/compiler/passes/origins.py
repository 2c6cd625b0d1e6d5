"""Provenance: how each node of a rewritten IR gets its tensors from the module
the original IR was lowered to.

A node the passes keep (or copy with new children) keeps its own tensors
(`Tensors`: an op's, or a structural node's own, e.g. a residual's gain); an
op they create is a convolution whose (weight, bias) is an expression over
the original module's convolutions and BatchNorms. archdsl.deploy evaluates
the expressions; nothing here touches torch.
"""
from __future__ import annotations

from dataclasses import dataclass

from archdsl.compiler import ir


@dataclass(frozen=True)
class Tensors:
    """The own tensors of one node of the original module, by its module name."""
    name: str


@dataclass(frozen=True)
class Identity:
    """x itself, as a 1x1 convolution of `channels` channels in `groups` groups."""
    channels: int
    groups: int


@dataclass(frozen=True)
class Fold:
    """A convolution followed by an eval-mode BatchNorm, as one convolution."""
    conv: "Expr"
    bn: Tensors


@dataclass(frozen=True)
class Scaled:
    """A convolution whose outputs are multiplied by a constant (`scale`) or by
    the per-channel `gamma` of a named module (`layer_scale`)."""
    conv: "Expr"
    by: float | Tensors


@dataclass(frozen=True)
class Sum:
    """Convolutions of one input, summed: kernels zero-padded (centered) to k x k, biases added."""
    terms: tuple["Expr", ...]
    k: int


Expr = Tensors | Identity | Fold | Scaled | Sum


class Origins:
    """The provenance of every node the passes have seen, original or created."""

    def __init__(self, spec: ir.Seq):
        # Keyed by identity (IR nodes compare by value); each entry holds its
        # node, so an id is never reused while the table lives.
        self._table: dict[int, tuple[ir.Node, Expr]] = {
            id(node): (node, Tensors(name)) for name, node in ir.named(spec)}

    def __getitem__(self, node: ir.Node) -> Expr:
        return self._table[id(node)][1]

    def derive(self, node: ir.Node, expr: Expr) -> ir.Node:
        """Record that `node` gets its tensors by `expr` (for a new conv: its weight and bias)."""
        self._table[id(node)] = (node, expr)
        return node

    def copied(self, new: ir.Node, old: ir.Node) -> ir.Node:
        """Record that `new` is `old` with other children: it keeps `old`'s own tensors."""
        return self.derive(new, self[old])

    def by_name(self, spec: ir.Seq) -> dict[str, Expr]:
        """Module name in `spec`'s lowering -> provenance, for every node of `spec`."""
        return {name: self[node] for name, node in ir.named(spec)}
