"""Bottom-up rewriting of the IR tree. Nodes are never mutated: a node whose
children change is copied (and keeps its own tensors' provenance), an
unchanged subtree is returned as the same object (so `new is old` tells
whether a pass changed anything)."""
from __future__ import annotations

from dataclasses import replace
from typing import Callable

from archdsl.compiler import ir
from archdsl.compiler.passes.origins import Origins


def _same(a: list, b: list) -> bool:
    return len(a) == len(b) and all(x is y for x, y in zip(a, b))


def bottom_up(node: ir.Node, fn: Callable[[ir.Node], ir.Node], origins: Origins) -> ir.Node:
    """Rewrite every node's children first, then the node itself by `fn`."""
    new = node
    if isinstance(node, ir.Seq):
        kids = [bottom_up(c, fn, origins) for c in node.children]
        if not _same(kids, node.children):
            new = replace(node, children=kids)
    elif isinstance(node, ir.Residual):
        body = bottom_up(node.body, fn, origins)
        short = bottom_up(node.shortcut, fn, origins) if node.shortcut is not None else None
        if body is not node.body or short is not node.shortcut:
            new = replace(node, body=body, shortcut=short)
    elif isinstance(node, (ir.Parallel, ir.Split)):
        branches = [bottom_up(b, fn, origins) for b in node.branches]
        if not _same(branches, node.branches):
            new = replace(node, branches=branches)
    elif isinstance(node, ir.Gate):
        body = bottom_up(node.body, fn, origins)
        if body is not node.body:
            new = replace(node, body=body)
    return fn(origins.copied(new, node) if new is not node else node)


def unshared(node: ir.Node) -> ir.Node:
    """A copy of the tree in which no node appears twice. Elaboration shares
    the body of equal block calls; provenance (origins.py) needs one node per
    module, since it keys nodes by identity."""
    if isinstance(node, ir.Seq):
        return replace(node, children=[unshared(c) for c in node.children])
    if isinstance(node, ir.Residual):
        return replace(node, body=unshared(node.body),
                       shortcut=unshared(node.shortcut) if node.shortcut is not None else None)
    if isinstance(node, (ir.Parallel, ir.Split)):
        return replace(node, branches=[unshared(b) for b in node.branches])
    if isinstance(node, ir.Gate):
        return replace(node, body=unshared(node.body))
    return replace(node)
