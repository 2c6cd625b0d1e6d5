"""Pass: a sum of linear branches of one input becomes one convolution.

A branch is linear when it is at most one convolution followed by per-channel
affine ops — BatchNorms, constant `scale`s and learnable `layer_scale`s —
(no convolution: the identity, then those ops); `identity` ops and nested
sequences are looked through. Parallel sums and residuals (shortcut + body;
drop path is the identity at inference) whose every branch is linear fuse
when the convs share stride, groups and dilation (1x1 kernels fit any) and
their kernels line up once zero-padded, centered, to the largest: each
kernel's center must sit at the same input offset. The identity becomes a
conv with a 1 at the center of the per-group identity kernel; the per-channel
ops scale (and shift) its output channels; biases add. Fusing bottom-up fuses
nested sums — RepMixer's `x + gamma * (dw(x) + bn(x) - bn'(x))` becomes one
depthwise convolution. Marks in a branch (empty sequences: `feature_map`
calls) are looked through too and follow the fused conv, in branch order (the
values they named are gone; the nearest left is the sum's); the conv and its
marks take the sum's place in its sequence, so a BatchNorm after it still folds.
"""
from __future__ import annotations

from dataclasses import replace

from archdsl.compiler import ir
from archdsl.compiler.passes.fold_bn import is_mark
from archdsl.compiler.passes.origins import Expr, Fold, Identity, Origins, Scaled, Sum
from archdsl.compiler.passes.rewrite import bottom_up
from archdsl.ops import REGISTRY
from archdsl.ops.conv import ConvAttrs, _same_is_symmetric, padding, square


_PER_CHANNEL = ("bn", "scale", "layer_scale")  # affine per output channel: they fold into a conv


def _linear_ops(seq: ir.Seq | None, marks: list[ir.Seq]) -> list[ir.Op] | None:
    """The ops of a linear branch — at most one conv, first, then per-channel
    ones ([] for the identity); None if the branch is not linear. Its marks
    are added to `marks`."""
    if seq is None:
        return []
    if seq.wiring is not None:  # a DAG of named values is no chain of linear ops
        return None
    ops: list[ir.Op] = []
    for c in seq.children:
        if is_mark(c):
            marks.append(c)
        elif isinstance(c, ir.Seq):
            inner = _linear_ops(c, marks)
            if inner is None:
                return None
            ops += inner
        elif isinstance(c, ir.Op) and (c.kind == "conv" or c.kind in _PER_CHANNEL):
            ops.append(c)
        elif not (isinstance(c, ir.Op) and c.kind == "identity"):
            return None
    return ops if all(op.kind in _PER_CHANNEL for op in ops[1:]) else None


def _term(ops: list[ir.Op], identity: Identity, origins: Origins) -> Expr:
    """A linear branch's convolution: its conv (or the identity), then each per-channel op folded in."""
    has_conv = bool(ops) and ops[0].kind == "conv"
    expr: Expr = origins[ops[0]] if has_conv else identity
    for op in ops[1:] if has_conv else ops:
        if op.kind == "bn":
            expr = Fold(expr, origins[op])
        else:
            expr = Scaled(expr, op.attrs.value if op.kind == "scale" else origins[op])
    return expr


def _offset2(a: ConvAttrs) -> int | None:
    """Twice the input offset of the kernel's center from output position * stride
    (twice, so that even kernels stay integral); None for uneven "same" padding."""
    if a.padding == "same":
        if not _same_is_symmetric(a):
            return None
        pad = a.dilation * (a.k - 1) // 2
    else:
        pad = padding(a)
    return a.dilation * (a.k - 1) - 2 * pad


def _fused(node: ir.Node, branches: list[ir.Seq | None], origins: Origins, with_marks: set[int]) -> ir.Node:
    """The fused conv, or a chain of it and the branches' marks (its id added
    to `with_marks`); `node` itself when its branches do not fuse."""
    marks: list[ir.Seq] = []
    terms = [_linear_ops(b, marks) for b in branches]
    if any(t is None for t in terms):
        return node
    convs = [t[0] for t in terms if t and t[0].kind == "conv"]
    if not all(square(c.attrs) for c in convs):  # kernels are aligned on square grids only
        return node
    geometry = {(c.attrs.stride, c.attrs.groups) for c in convs}
    dilations = {c.attrs.dilation for c in convs if c.attrs.k > 1}  # a 1x1 has none to speak of
    if len(geometry) > 1 or len(dilations) > 1:
        return node
    c_in, c_out = node.in_shape[0], node.out_shape[0]
    stride, groups = geometry.pop() if geometry else (1, c_in)
    dilation = dilations.pop() if dilations else 1
    ks = [c.attrs.k for c in convs] + ([1] if len(convs) < len(terms) else [])
    offsets = {_offset2(c.attrs) for c in convs} | ({0} if len(convs) < len(terms) else set())
    k = max(ks)
    if len(offsets) != 1 or None in offsets or any((k - x) % 2 for x in ks):
        return node
    pad = (dilation * (k - 1) - offsets.pop()) // 2
    auto = ConvAttrs(out=c_out, k=k, stride=stride, groups=groups, dilation=dilation, bias=True)
    attrs = auto if padding(auto) == pad else auto.model_copy(update={"padding": pad})
    if REGISTRY["conv"].shape(attrs, node.in_shape) != node.out_shape:
        return node
    identity = Identity(c_in, groups)
    exprs = [_term(t, identity, origins) for t in terms]
    op = origins.derive(ir.Op(node.in_shape, node.out_shape, node.loc, node.path, "conv", attrs),
                        Sum(tuple(exprs), k))
    if not marks:
        return op
    chain = origins.copied(ir.Seq(node.in_shape, node.out_shape, node.loc, node.path, [op, *marks]), node)
    with_marks.add(id(chain))
    return chain


def _spliced(seq: ir.Seq, with_marks: set[int], origins: Origins) -> ir.Seq:
    """A sequence with each fused conv-and-marks chain among its children
    spelled out in its place, each piece taking the one before it (in a
    graph, values renumbered) and keeping the rank of the sum it replaces."""
    w = seq.wiring
    kids, ranks, inputs = [], [], []
    remap = {v: v for v in range(w.n_inputs)} if w is not None else {}  # old value id -> new
    old = new = w.n_inputs if w is not None else 0
    for i, c in enumerate(seq.children):
        takes = tuple(remap[v] for v in w.inputs[i]) if w is not None else ()
        for piece in c.children if id(c) in with_marks else [c]:
            kids.append(piece)
            ranks.append(None if seq.ranks is None else seq.ranks[i])
            inputs.append(takes)
            n = len(ir.shapes(piece.out_shape))
            takes, new = tuple(range(new, new + n)), new + n
        for j, v in enumerate(takes):  # the child's values are its last piece's
            remap[old + j] = v
        old += len(takes)
    wiring = None if w is None else ir.Wiring(inputs, w.n_inputs, tuple(remap[v] for v in w.outputs))
    return origins.copied(replace(seq, children=kids, wiring=wiring,
                                  ranks=None if seq.ranks is None else ranks), seq)


def fuse_branches(spec: ir.Seq, origins: Origins) -> ir.Seq:
    with_marks: set[int] = set()  # ids of the conv-and-marks chains made here (origins keeps them alive)

    def fuse(node: ir.Node) -> ir.Node:
        if isinstance(node, ir.Parallel) and node.join == "sum":
            return _fused(node, node.branches, origins, with_marks)
        # A residual with a learnable gain on its body is not a fixed linear sum.
        if isinstance(node, ir.Residual) and getattr(node, "gain", None) is None:
            return _fused(node, [node.shortcut, node.body], origins, with_marks)
        if isinstance(node, ir.Seq) and any(id(c) in with_marks for c in node.children):
            return _spliced(node, with_marks, origins)
        return node

    return bottom_up(spec, fuse, origins)
