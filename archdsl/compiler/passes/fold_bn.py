"""Pass: fold every BatchNorm that directly follows a convolution into it.

In eval mode bn(conv(x)) = s * (W x + b - mean) + beta with s = gamma /
sqrt(var + eps): one convolution, weight s * W, bias s * (b - mean) + beta.
A BatchNorm after anything else is left as it is.
"""
from __future__ import annotations

from dataclasses import replace

from archdsl.compiler import ir
from archdsl.compiler.passes.origins import Fold, Origins
from archdsl.compiler.passes.rewrite import bottom_up


def _is(node: ir.Node | None, kind: str) -> bool:
    return isinstance(node, ir.Op) and node.kind == kind


def fold_bn(spec: ir.Seq, origins: Origins) -> ir.Seq:
    def fold(node: ir.Node) -> ir.Node:
        if not isinstance(node, ir.Seq):
            return node
        kids: list[ir.Node] = []
        for c in node.children:
            prev = kids[-1] if kids else None
            if _is(c, "bn") and _is(prev, "conv"):
                conv = replace(prev, attrs=prev.attrs.model_copy(update={"bias": True}))
                kids[-1] = origins.derive(conv, Fold(origins[prev], origins[c]))
            else:
                kids.append(c)
        return node if len(kids) == len(node.children) else origins.copied(replace(node, children=kids), node)

    return bottom_up(spec, fold, origins)
