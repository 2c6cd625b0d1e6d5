"""A text rendering of the IR: the network as a tree with shapes and costs."""
from __future__ import annotations

from archdsl.compiler import ir
from archdsl.ops import REGISTRY


def _attrs(op: ir.Op) -> str:
    fields = op.attrs.model_dump(exclude_defaults=True, warnings=False)  # per-axis ints are stored squashed
    return ", ".join(f"{k}={v}" for k, v in fields.items())


def _values(ids) -> str:
    return ", ".join(f"v{i}" for i in ids)


def _gives(seq: ir.Seq) -> list[tuple[int, ...]]:
    """The value ids each child of a wired sequence gives (numbered after its inputs)."""
    out, n = [], seq.wiring.n_inputs
    for c in seq.children:
        k = len(ir.shapes(c.out_shape))
        out.append(tuple(range(n, n + k)))
        n += k
    return out


def render(spec: ir.Seq) -> str:
    lines: list[str] = []

    def line(depth: int, text: str, node: ir.Node):
        shape = ir.fmt_shape(node.out_shape)
        lines.append(f"{'  ' * depth}{text:<{max(1, 56 - 2 * depth)}} -> {shape}")

    def visit(node: ir.Node, name: str, depth: int):
        if isinstance(node, ir.Op):
            c = REGISTRY[node.kind].cost(node.attrs, node.in_shape, node.out_shape)
            extra = f"  [{c.params:,} p, {c.macs / 1e6:.2f} MMACs]" if c.params or c.macs else ""
            line(depth, f"{name}: {node.kind}({_attrs(node)})", node)
            lines[-1] += extra
        elif isinstance(node, ir.Seq):
            label = {"network": node.name, "block": f"{name}: {node.name}"}.get(node.role or "", name)
            if node.role is None and node.name:
                label = f"{name}: {node.name}"
            line(depth, label, node)
            kids = node.children
            if node.role == "network":
                names = ["stem", "stages", "head"]
            elif node.role == "stage":
                names = [f"blocks.{i}" for i in range(len(kids))]
            else:
                names = [str(i) for i in range(len(kids))]
            if node.wiring is not None:  # a DAG: say which values each child takes and gives
                names = [f"{n} [{_values(takes)} -> {_values(gives)}]"
                         for n, takes, gives in zip(names, node.wiring.inputs, _gives(node))]
            for n, c in zip(names, kids):
                visit(c, n, depth + 1)
        elif isinstance(node, ir.Residual):
            line(depth, f"{name}: residual" + (" (drop path)" if node.drop_path else "")
                 + (f" ({'per-channel ' if node.gain_per_channel else ''}gain, init {node.gain:g})"
                    if node.gain is not None else ""), node)
            for part_name, part in node.parts():
                visit(part, part_name, depth + 1)
        elif isinstance(node, (ir.Parallel, ir.Split)):
            kind = f"parallel {node.join}" if isinstance(node, ir.Parallel) else f"split {node.sizes}"
            line(depth, f"{name}: {kind}", node)
            for i, b in enumerate(node.branches):
                visit(b, f"branches.{i}", depth + 1)
        elif isinstance(node, ir.Gate):
            line(depth, f"{name}: gate", node)
            visit(node.body, "body", depth + 1)

    lines.append(f"input {'x'.join(map(str, spec.in_shape))}")
    visit(spec, spec.name or "network", 0)
    return "\n".join(lines) + "\n"
