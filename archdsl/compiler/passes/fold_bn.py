"""Pass: fold every BatchNorm that directly follows a convolution into it.

In eval mode bn(conv(x)) = s * (W x + b - mean) + beta with s = gamma /
sqrt(var + eps): one convolution, weight s * W, bias s * (b - mean) + beta.
A BatchNorm after anything else is left as it is. Marks between the two
(empty sequences: `feature_map` calls, blocks that add no layer) are looked
through: conv, mark, bn becomes the folded conv, then the mark, which then
names the folded conv's output (the BatchNorm's, as the original's next layer
saw it).
"""
from __future__ import annotations

from dataclasses import replace

from archdsl.compiler import ir
from archdsl.compiler.passes.origins import Fold, Origins
from archdsl.compiler.passes.rewrite import bottom_up


def _is(node: ir.Node | None, kind: str) -> bool:
    return isinstance(node, ir.Op) and node.kind == kind


def is_mark(node: ir.Node) -> bool:
    """A chain with no layer in it (a `feature_map` call, an empty block): it
    gives its input; passes that pair adjacent layers look through it."""
    return type(node) is ir.Seq and node.wiring is None and all(is_mark(c) for c in node.children)


def _before_marks(kids: list[ir.Node]) -> int | None:
    """The index of the last of `kids` that is no mark; None if there is none."""
    j = len(kids) - 1
    while j >= 0 and is_mark(kids[j]):
        j -= 1
    return j if j >= 0 else None


def _folded(conv: ir.Op, bn: ir.Op, origins: Origins) -> ir.Op:
    new = replace(conv, attrs=conv.attrs.model_copy(update={"bias": True}))
    return origins.derive(new, Fold(origins[conv], origins[bn]))


def fold_bn(spec: ir.Seq, origins: Origins) -> ir.Seq:
    def fold(node: ir.Node) -> ir.Node:
        if not isinstance(node, ir.Seq):
            return node
        if node.wiring is not None:
            return _fold_wired(node, origins)
        kids: list[ir.Node] = []
        kept: list[int] = []  # the index each kept child had (its registration rank goes with it)
        for i, c in enumerate(node.children):
            j = _before_marks(kids) if _is(c, "bn") else None
            if j is not None and _is(kids[j], "conv"):  # the marks after it stay, now after the folded conv
                kids[j] = _folded(kids[j], c, origins)
            else:
                kids.append(c)
                kept.append(i)
        if len(kids) == len(node.children):
            return node
        ranks = None if node.ranks is None else [node.ranks[i] for i in kept]
        return origins.copied(replace(node, children=kids, ranks=ranks), node)

    return bottom_up(spec, fold, origins)


def _fold_wired(node: ir.Seq, origins: Origins) -> ir.Seq:
    """In a DAG, a BN folds into the conv whose output it alone reads, maybe
    through marks that alone read it in turn; the values are then renumbered
    without the BN's."""
    w = node.wiring
    gives, n = [], w.n_inputs
    for c in node.children:
        k = len(ir.shapes(c.out_shape))
        gives.append(tuple(range(n, n + k)))
        n += k
    producer = {g[0]: i for i, g in enumerate(gives) if len(g) == 1}
    readers = w.consumers()
    into: dict[int, int] = {}  # conv child -> the bn child folded into it
    for i, c in enumerate(node.children):
        if _is(c, "bn") and len(w.inputs[i]) == 1:
            v = w.inputs[i][0]
            j = producer.get(v)
            while j is not None and readers[v] == 1 and is_mark(node.children[j]) and len(w.inputs[j]) == 1:
                v = w.inputs[j][0]
                j = producer.get(v)
            if j is not None and _is(node.children[j], "conv") and readers[v] == 1:
                into[j] = i
    if not into:
        return node
    dropped = set(into.values())
    remap = {v: v for v in range(w.n_inputs)}
    kids, inputs, kept, next_id = [], [], [], w.n_inputs
    for i, c in enumerate(node.children):
        if i in dropped:  # the BN's output is the folded conv's
            remap[gives[i][0]] = remap[w.inputs[i][0]]
            continue
        kept.append(i)
        kids.append(_folded(c, node.children[into[i]], origins) if i in into else c)
        inputs.append(tuple(remap[v] for v in w.inputs[i]))
        for v in gives[i]:
            remap[v] = next_id
            next_id += 1
    wiring = ir.Wiring(inputs, w.n_inputs, tuple(remap[v] for v in w.outputs))
    ranks = None if node.ranks is None else [node.ranks[i] for i in kept]
    return origins.copied(replace(node, children=kids, wiring=wiring, ranks=ranks), node)
