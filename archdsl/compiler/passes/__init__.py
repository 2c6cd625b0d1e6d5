"""IR passes. `deploy` rewrites a network into its inference form — BatchNorms
folded into convolutions, sums of linear branches (a conv, then
BatchNorms and constant or per-channel scales) fused into one convolution —
and says where each op of the result gets its tensors (see origins.py).
head.py applies timm's standard head options (num_classes, global_pool, drop_rate)."""
from __future__ import annotations

from dataclasses import dataclass

from archdsl.compiler import ir
from archdsl.compiler.passes.fold_bn import fold_bn
from archdsl.compiler.passes.fuse_branches import fuse_branches
from archdsl.compiler.passes.origins import Expr, Fold, Identity, Origins, Scaled, Sum, Tensors
from archdsl.compiler.passes.rewrite import unshared

# Run in turn until nothing changes: a fused sum may be followed by a BN to
# fold, and a folded conv may make a branch linear.
DEPLOY_PASSES = (fold_bn, fuse_branches)


@dataclass
class Deployed:
    spec: ir.Seq
    origins: dict[str, Expr]  # module name in spec's lowering -> its tensors' provenance


def deploy(spec: ir.Seq) -> Deployed:
    spec = unshared(spec)
    origins = Origins(spec)
    while True:
        before = spec
        for p in DEPLOY_PASSES:
            spec = p(spec, origins)
        if spec is before:
            return Deployed(spec, origins.by_name(spec))


__all__ = ["DEPLOY_PASSES", "Deployed", "Expr", "Fold", "Identity", "Origins", "Scaled", "Sum", "Tensors", "deploy",
           "fold_bn", "fuse_branches"]
