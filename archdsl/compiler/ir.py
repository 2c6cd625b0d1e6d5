"""The IR: a series-parallel tree of primitive ops with static shapes.

Nothing here is PyTorch. Shapes are (C, H, W) for one sample.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from archdsl.language.ast import Loc
from archdsl.ops.registry import Shape, numel


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


class Body(list):
    """The children of a block call's Seq. Equal calls share one Body; the
    cost report keeps the body's cost on it (per dtype), computed once."""

    __slots__ = ("costed",)


@dataclass(slots=True)
class Seq(Node):
    children: list[Node] = field(default_factory=list)
    # Structural role, used for module naming: "network" | "stem" | "stages"
    # | "stage" | "block" | "head" | None for a plain sequence.
    role: str | None = None
    name: str | None = None  # block or network name, for display

    @property
    def is_block(self) -> bool:
        """A block call's body. Equal calls (same block, arguments and input
        shape) share one `children` list: elaboration and costing do each once."""
        return self.name is not None and self.role in ("block", None)


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
    branches: list[Seq]


@dataclass(slots=True)
class Split(Node):
    sizes: list[int]
    branches: list[Seq]  # results are concatenated


@dataclass(slots=True)
class Gate(Node):
    body: Seq  # output = x * body(x), body(x) broadcast over H, W


def walk(node: Node) -> Iterator[Node]:
    """Pre-order traversal, in the order the module registers parameters."""
    yield node
    if isinstance(node, Seq):
        for c in node.children:
            yield from walk(c)
    elif isinstance(node, Residual):
        for _, part in node.parts():
            yield from walk(part)
    elif isinstance(node, (Parallel, Split)):
        for b in node.branches:
            yield from walk(b)
    elif isinstance(node, Gate):
        yield from walk(node.body)


def ops(node: Node) -> Iterator[Op]:
    return (n for n in walk(node) if isinstance(n, Op))


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
    if stop is not None and stop(node):
        return
    dot = prefix + "." if prefix else ""
    t = type(node)
    if t is Seq:
        if node.role == "network":
            for name, child in zip(("stem", "stages", "head"), node.children):
                _visit(out, child, dot + name, stop)
            return
        if node.role == "stage":
            dot += "blocks."
        for i, c in enumerate(node.children):
            _visit(out, c, dot + str(i), stop)
    elif t is Residual:
        for part_name, part in node.parts():
            _visit(out, part, dot + part_name, stop)
    elif t is Parallel or t is Split:
        dot += "branches."
        for i, b in enumerate(node.branches):
            _visit(out, b, dot + str(i), stop)
    elif t is Gate:
        _visit(out, node.body, dot + "body", stop)
