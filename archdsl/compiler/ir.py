"""The IR: a tree of primitive ops with static shapes, whose sequences may
wire their children as a DAG of named values.

Nothing here is PyTorch. Shapes are (C, H, W) for one sample; a value of
several tensors (a block's several inputs or outputs) has a tuple of shapes.
Most sequences are chains (each child takes the previous one's output); a
sequence whose body names values (`-> x`, `from x { }`, joins of named
values) carries a `Wiring` saying which values each child takes.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from archdsl.language.ast import Loc
from archdsl.ops.registry import REGISTRY, Shape, numel


@dataclass(slots=True)
class Node:
    in_shape: Shape
    out_shape: Shape
    loc: Loc | None
    path: tuple[str, ...]


@dataclass(slots=True)
class Op(Node):
    kind: str
    attrs: Any  # the op's pydantic attribute model
    # The cost report's row for this node, kept on it: an equal op on an equal
    # input is one node, met once per block body and per config of a sweep.
    # Not copied by dataclasses.replace (a pass that changes a node re-costs it).
    costed: Any = field(default=None, init=False, compare=False, repr=False)


class Body(list):
    """The children of a block call's Seq, or of a section's. Equal calls
    (equal sections) share one Body; the cost report keeps their cost on it
    (per dtype and memory format), computed once."""

    __slots__ = ("costed",)


def is_multi(shape) -> bool:
    """Is `shape` the shapes of several tensors (a tuple of (C, H, W))?"""
    return type(shape[0]) is tuple


def shapes(shape) -> tuple[Shape, ...]:
    """The single shapes of a value: one, or each of several tensors'."""
    return shape if type(shape[0]) is tuple else (shape,)


def fmt_shape(shape) -> str:
    """CxHxW, or CxHxW+CxHxW+... for several tensors."""
    return "+".join("x".join(map(str, s)) for s in shapes(shape))


@dataclass(slots=True)
class Wiring:
    """Which values each child of a sequence takes. Values are numbered: the
    sequence's inputs first (0, or 0..k-1 for k tensors), then every child's
    outputs in order (one id per tensor it gives)."""

    inputs: list[tuple[int, ...]]  # per child: the value ids it takes (several: as a tuple)
    n_inputs: int
    outputs: tuple[int, ...]  # the sequence's result (several: a tuple)

    def consumers(self) -> dict[int, int]:
        """How many children read each value (the result counts as a reader)."""
        count: dict[int, int] = {}
        for ids in [*self.inputs, self.outputs]:
            for i in ids:
                count[i] = count.get(i, 0) + 1
        return count


def chain_wiring(seq: "Seq") -> Wiring:
    """The wiring of a chain: each child takes what the one before it gave."""
    cur = tuple(range(len(shapes(seq.in_shape))))
    n, inputs = len(cur), []
    for c in seq.children:
        inputs.append(cur)
        k = len(shapes(c.out_shape))
        cur, n = tuple(range(n, n + k)), n + k
    return Wiring(inputs, len(shapes(seq.in_shape)), cur)


@dataclass(slots=True)
class Seq(Node):
    children: list[Node] = field(default_factory=list)
    # Structural role, used for module naming: "network" | "stem" | "stages"
    # | "stage" | "block" | "head" | None for a plain sequence.
    role: str | None = None
    name: str | None = None  # block or network name, for display
    wiring: Wiring | None = None  # None: a chain
    # Registration rank per child (`@n` in the spec): the module registers its
    # children by rank, then by position; None: in order.
    ranks: list[int] | None = None

    def registered(self) -> list[int]:
        """The children's indices in the order the module registers them."""
        return _by_rank(self.ranks, len(self.children))

    @property
    def is_block(self) -> bool:
        """A block call's body. Equal calls (same block, arguments and input
        shape) share one `children` list: elaboration and costing do each once."""
        return self.name is not None and self.role in ("block", None)


def _by_rank(ranks: list[int] | None, n: int) -> list[int]:
    """Indices 0..n-1 by registration rank, then position."""
    return list(range(n)) if ranks is None else sorted(range(n), key=lambda i: (ranks[i], i))


@dataclass(slots=True)
class Residual(Node):
    body: Seq
    shortcut: Seq | None  # None: identity
    drop_path: bool = False
    # A learnable scalar on the body, shortcut(x) + g * body(x), starting at
    # this value (SkipInit, ReZero); None: no scalar.
    gain: float | None = None
    # One gain per channel instead of one scalar (a layer scale held by the
    # block, as timm's ConvNeXt holds its gamma: first in the state dict).
    gain_per_channel: bool = False
    # Register the shortcut's layers before the body's (timm's pre-activation
    # blocks do), so weights port by position; the computation is unchanged.
    shortcut_first: bool = False

    def parts(self) -> list[tuple[str, Seq]]:
        """(name, seq) for body and shortcut, in the module's registration order."""
        out = [("body", self.body)] + ([("shortcut", self.shortcut)] if self.shortcut is not None else [])
        return out[::-1] if self.shortcut_first else out


@dataclass(slots=True)
class Parallel(Node):
    join: str  # "sum" | "concat"
    branches: list[Seq]  # joined in this order
    ranks: list[int] | None = None  # registration rank per branch (`branch { } @n`); None: in order

    def registered(self) -> list[int]:
        return _by_rank(self.ranks, len(self.branches))


@dataclass(slots=True)
class Split(Node):
    sizes: list[int]
    branches: list[Seq]  # results are concatenated
    ranks: list[int] | None = None  # as Parallel's

    def registered(self) -> list[int]:
        return _by_rank(self.ranks, len(self.branches))


@dataclass(slots=True)
class Gate(Node):
    body: Seq  # output = x * body(x), body(x) broadcast over H, W


def walk(node: Node) -> Iterator[Node]:
    """Pre-order traversal, in the order the module registers parameters."""
    yield node
    if isinstance(node, Seq):
        if node.ranks is not None:
            for i in node.registered():
                yield from walk(node.children[i])
            return
        for c in node.children:
            yield from walk(c)
    elif isinstance(node, Residual):
        for _, part in node.parts():
            yield from walk(part)
    elif isinstance(node, (Parallel, Split)):
        for i in node.registered():
            yield from walk(node.branches[i])
    elif isinstance(node, Gate):
        yield from walk(node.body)


def ops(node: Node) -> Iterator[Op]:
    return (n for n in walk(node) if isinstance(n, Op))


def section_of(name: str) -> str:
    """The section (stem, stages.i, head) a module name given by `named` lies in."""
    parts = name.split(".")
    return ".".join(parts[:2]) if parts[0] == "stages" else parts[0]


def named(node: Node, prefix: str = "", stop: Callable[[Node], bool] | None = None) -> list[tuple[str, Node]]:
    """(module name, node) pairs, named as the torch backend names its modules.
    Nodes for which `stop` is true are listed but not entered."""
    out: list[tuple[str, Node]] = []
    _visit(out, node, prefix, stop)
    return out


def named_children(children: list[Node], stop: Callable[[Node], bool] | None = None) -> list[tuple[str, Node]]:
    """`named` over a sequence's children, named from their index."""
    out: list[tuple[str, Node]] = []
    for i, c in enumerate(children):
        _visit(out, c, str(i), stop)
    return out


def _visit(out: list, node: Node, prefix: str, stop) -> None:
    out.append((prefix, node))
    t = type(node)
    if t is Op or (stop is not None and stop(node)):  # an op has nothing to enter
        return
    for name, child in children_named(node, prefix):
        _visit(out, child, name, stop)


def children_named(node: Node, prefix: str = "") -> list[tuple[str, Node]]:
    """(module name, child) of each part of `node`, in the order they run,
    named as the torch backend names its submodules."""
    dot = prefix + "." if prefix else ""
    t = type(node)
    if t is Seq:
        if node.role == "network":
            return [(dot + name, child) for name, child in zip(("stem", "stages", "head"), node.children)]
        if node.role == "stage":
            dot += "blocks."
        return [(dot + str(i), c) for i, c in enumerate(node.children)]
    if t is Residual:
        return [(dot + part_name, part) for part_name, part in node.parts()]
    if t is Parallel or t is Split:
        return [(f"{dot}branches.{i}", b) for i, b in enumerate(node.branches)]
    if t is Gate:
        return [(dot + "body", node.body)]
    return []


_PASS_THROUGH = {"identity", "dropout"}


def passes_input(node: Node) -> bool:
    """Does this node return its input itself (identity, dropout, an empty sequence)?"""
    if isinstance(node, Op):
        return node.kind in _PASS_THROUGH
    if isinstance(node, Seq) and node.wiring is not None:  # a DAG: assume it may
        return True
    if isinstance(node, Seq):
        return all(passes_input(c) for c in node.children)
    return False


def fresh(node: Node) -> bool:
    """Does this node return a tensor that nothing else holds, nor autograd
    keeps for a backward pass? (in-place safety: the lowering adds a
    residual's shortcut into such a body's output)"""
    if isinstance(node, Op):
        return node.kind not in _PASS_THROUGH and not REGISTRY[node.kind].keeps_output
    if isinstance(node, Seq) and node.wiring is not None:  # a DAG may return a value it read
        return False
    if isinstance(node, Seq):  # what its last child that computes returns
        last = next((c for c in reversed(node.children) if not passes_input(c)), None)
        return last is not None and fresh(last)
    return True
