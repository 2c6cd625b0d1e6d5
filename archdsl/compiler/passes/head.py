"""The head's standard options, as timm's models take them: the number of
classes (0: no classifier), the global pool (avg, max, avgmax, or none) and
the classifier's dropout — on any network, without its recipe declaring them.

The head is read as timm reads a classifier head: the layers before its pool
belong to the features; the classifier is its last linear layer (or a 1x1
conv on the pooled map, or a sum of branches that each hold one: a
distillation head, all of whose linear layers it resets).
A rewritten head keeps every child's index (a removed layer becomes an
identity that keeps the removed op's path; only a dropout the head lacks is
inserted), so the layers the rewrite leaves alone keep their module names
and their weights.
"""
from __future__ import annotations

from dataclasses import replace

from archdsl.compiler import ir
from archdsl.ops import REGISTRY
from archdsl.ops.registry import ShapeError

POOLS = {"global_pool", "take_token", "mean_tokens"}  # where the head's features end
POOL_KINDS = ("avg", "max", "avgmax")  # global_pool's; "none" removes the pool


def _kind(node: ir.Node) -> str:
    return node.kind if isinstance(node, ir.Op) else ""


def _removed(node: ir.Node) -> str:
    """The op an identity made by this pass stands in for ("" for any other node)."""
    return node.path[-1] if _kind(node) == "identity" and node.path[-1] != "identity" else ""


def pool_index(head: ir.Seq) -> int:
    """Index of the head's pool (or of where global_pool=none removed it); len(children) when none."""
    return next((i for i, c in enumerate(head.children) if _kind(c) in POOLS or _removed(c) in POOLS),
                len(head.children))


def _is_linear(node: ir.Node, after_pool: bool) -> bool:
    k = _kind(node)
    return k == "linear" or (k == "conv" and after_pool and node.attrs.k == 1 and node.in_shape[1:] == (1, 1))


def _branch_classifier(branch: ir.Seq, after_pool: bool) -> int | None:
    """Index of a branch's classifier: its last linear layer (or 1x1 conv on the pooled map)."""
    found = [i for i, c in enumerate(branch.children) if _is_linear(c, after_pool) or _removed(c)]
    return found[-1] if found and branch.wiring is None else None


def _is_distilled(node: ir.Node, after_pool: bool = True) -> bool:
    """A sum of chains that each hold a classifier (timm's head + head_dist,
    averaged: each branch may scale, norm or drop around its linear layer)."""
    return isinstance(node, ir.Parallel) and node.join == "sum" and all(
        _branch_classifier(b, after_pool) is not None for b in node.branches)


def classifier_index(head: ir.Seq) -> int | None:
    """Index of the head's classifier; None when it has none."""
    pool = pool_index(head)
    found = [i for i, c in enumerate(head.children)
             if _is_linear(c, i > pool) or _is_distilled(c, i > pool) or (_removed(c) and _removed(c) not in POOLS)]
    return found[-1] if found else None


def _cleared(node: ir.Node) -> bool:
    """Is this classifier removed (an identity; a distillation head: in every branch)?"""
    if isinstance(node, ir.Parallel):
        return all(_kind(b.children[_branch_classifier(b, True)]) == "identity" for b in node.branches)
    return _kind(node) == "identity"


def num_classes(head: ir.Seq) -> int:
    """The classifier's outputs (0: none, or removed)."""
    i = classifier_index(head)
    return 0 if i is None or _cleared(head.children[i]) else head.out_shape[0]


def _reshaped(node: ir.Node, x) -> ir.Node:
    """`node` on input shape `x`, every shape inside recomputed."""
    if isinstance(node, ir.Op):
        return replace(node, in_shape=x, out_shape=REGISTRY[node.kind].shape(node.attrs, x))
    if isinstance(node, ir.Seq) and node.wiring is None:
        kids, cur = [], x
        for c in node.children:
            kids.append(_reshaped(c, cur))
            cur = kids[-1].out_shape
        return replace(node, in_shape=x, out_shape=cur, children=kids)
    if isinstance(node, ir.Parallel):
        branches = [_reshaped(b, x) for b in node.branches]
        outs = [b.out_shape for b in branches]
        if node.join == "sum":
            if any(o != outs[0] for o in outs):
                raise ShapeError(f"summed branches give {', '.join(map(ir.fmt_shape, outs))}")
            out = outs[0]
        else:
            out = (sum(o[0] for o in outs),) + outs[0][1:]
        return replace(node, in_shape=x, out_shape=out, branches=branches)
    if node.in_shape == x:
        return node
    raise ShapeError(f"a {type(node).__name__.lower()} in the head cannot take {ir.fmt_shape(x)}")


def _identity(node: ir.Node) -> ir.Op:
    return ir.Op(node.in_shape, node.in_shape, node.loc, node.path, "identity", REGISTRY["identity"].attrs())


def _with_classes(node: ir.Node, n: int) -> ir.Node:
    """The classifier with n outputs (its shapes recomputed by the caller).
    A distillation head keeps its branches (0: each without its linear layer,
    as timm's, whose heads become identities still averaged)."""
    if isinstance(node, ir.Op) and n == 0:
        return node if _kind(node) == "identity" else _identity(node)
    if _kind(node) == "identity":  # a removed classifier comes back as a linear layer
        return replace(node, kind="linear", attrs=REGISTRY["linear"].attrs(out=n))
    if isinstance(node, ir.Op):
        return replace(node, attrs=node.attrs.model_copy(update={"out": n}))
    branches = []
    for b in node.branches:
        kids, i = list(b.children), _branch_classifier(b, True)
        kids[i] = _with_classes(kids[i], n)
        branches.append(replace(b, children=kids))
    return replace(node, branches=branches)


def _dropout(p: float, at: ir.Node) -> ir.Op:
    return ir.Op(at.in_shape, at.in_shape, at.loc, at.path, "dropout", REGISTRY["dropout"].attrs(p=p))


def with_head_options(spec: ir.Seq, num_classes: int | None = None, global_pool: str | None = None,
                      drop_rate: float | None = None) -> ir.Seq:
    """`spec` with its head rewritten; None leaves an option as the spec has it.
    Raises ShapeError (or ValueError) when the head cannot take an option."""
    if num_classes is None and global_pool is None and drop_rate is None:
        return spec
    stem, stages, head = spec.children
    kids = list(head.children)
    pool, cls = pool_index(head), classifier_index(head)
    if global_pool is not None:
        if pool == len(kids):
            raise ValueError("the network's head has no pool to set")
        if global_pool == "none":
            kids[pool] = _identity(kids[pool])
        elif _kind(kids[pool]) != "global_pool":
            raise ValueError(f"the network pools with {kids[pool].kind}, which has no kind to set")
        else:
            kids[pool] = replace(kids[pool], attrs=kids[pool].attrs.model_copy(update={"kind": global_pool}))
    if drop_rate is not None and cls is not None:
        drops = [i for i in range(pool, cls) if _kind(kids[i]) == "dropout"]
        if drops:
            kids[drops[-1]] = replace(kids[drops[-1]], attrs=REGISTRY["dropout"].attrs(p=drop_rate))
        elif drop_rate > 0:  # a dropout right before the classifier (no weights: ports are unchanged)
            kids.insert(cls, _dropout(drop_rate, kids[cls]))
            cls += 1
    if num_classes is not None:
        if cls is None:
            if num_classes:
                raise ValueError("the network's head has no classifier to set the number of classes of")
        else:
            kids[cls] = _with_classes(kids[cls], num_classes)
    if global_pool == "none" and cls is not None and _kind(kids[cls]) == "linear":
        raise ValueError("without a pool the classifier (a linear layer) has no vector to take: "
                         "set num_classes=0 too")
    # Everything from the pool on takes its input anew (the pool may now keep the map).
    start = min(pool, cls if cls is not None else pool)
    cur = kids[start - 1].out_shape if start else head.in_shape
    for i in range(start, len(kids)):
        kids[i] = _reshaped(kids[i], cur)
        cur = kids[i].out_shape
    new_head = replace(head, children=kids, out_shape=cur)
    return replace(spec, children=[stem, stages, new_head], out_shape=cur)
