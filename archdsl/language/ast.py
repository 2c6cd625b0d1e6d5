"""Located syntax tree of an .arch file.

Every node carries a `Loc`, so any later stage (validation, elaboration,
shape checks) can point back at the text that produced it.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any


@dataclass(frozen=True, slots=True)
class Loc:
    file: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


# ---------------------------------------------------------------- expressions
@dataclass(slots=True)
class Expr:
    loc: Loc


@dataclass(slots=True)
class Const(Expr):
    value: Any


@dataclass(slots=True)
class Name(Expr):
    name: str


@dataclass(slots=True)
class InShape(Expr):
    pass


@dataclass(slots=True)
class Cond(Expr):
    then: Expr
    test: Expr
    other: Expr


@dataclass(slots=True)
class BoolOp(Expr):
    op: str  # "and" | "or"
    operands: list[Expr]


@dataclass(slots=True)
class Not(Expr):
    operand: Expr


@dataclass(slots=True)
class Neg(Expr):
    op: str  # "-" | "+"
    operand: Expr


@dataclass(slots=True)
class BinOp(Expr):
    op: str
    left: Expr
    right: Expr


@dataclass(slots=True)
class Compare(Expr):
    first: Expr
    rest: list[tuple[str, Expr]]


@dataclass(slots=True)
class Index(Expr):
    target: Expr
    index: Expr


@dataclass(slots=True)
class Slice(Expr):
    target: Expr
    start: Expr | None
    stop: Expr | None


@dataclass(slots=True)
class Attr(Expr):
    target: Expr
    name: str


@dataclass(slots=True)
class Arg:
    loc: Loc
    name: str | None
    value: Expr


@dataclass(slots=True)
class FCall(Expr):
    name: str
    args: list[Arg]


@dataclass(slots=True)
class TupleExpr(Expr):
    items: list[Expr]


@dataclass(slots=True)
class ListExpr(Expr):
    items: list[Expr]


@dataclass(slots=True)
class ListComp(Expr):
    element: Expr
    target: Any  # as Let's
    iterable: Expr
    condition: Expr | None


# ----------------------------------------------------------------- statements
@dataclass(slots=True)
class Stmt:
    loc: Loc


@dataclass(slots=True)
class Let(Stmt):
    target: Any  # a name (str), or a list of targets to unpack into (nested: (i, (a, b)))
    value: Expr


@dataclass(slots=True)
class If(Stmt):
    test: Expr
    then: list[Stmt]
    other: list[Stmt]


@dataclass(slots=True)
class For(Stmt):
    target: Any  # as Let's
    iterable: Expr
    body: list[Stmt]


@dataclass(slots=True)
class Repeat(Stmt):
    count: Expr
    var: str | None  # `repeat n { }` names no counter
    body: list[Stmt]


@dataclass(slots=True)
class Section(Stmt):
    kind: str  # "stem" | "stage" | "head"
    count: Expr | None
    var: str | None
    body: list[Stmt]


@dataclass(slots=True)
class Residual(Stmt):
    args: list[Arg]
    body: list[Stmt]
    shortcut: list[Stmt] | None


@dataclass(slots=True)
class Parallel(Stmt):
    join: str
    args: list[Arg]
    body: list[Stmt]


@dataclass(slots=True)
class Split(Stmt):
    args: list[Arg]
    body: list[Stmt]


@dataclass(slots=True)
class Gate(Stmt):
    args: list[Arg]
    body: list[Stmt]


@dataclass(slots=True)
class Branch(Stmt):
    body: list[Stmt]


@dataclass(slots=True)
class NameValue(Stmt):
    target: Any  # as Let's: the value so far, named (unpacked when it is several tensors)


@dataclass(slots=True)
class From(Stmt):
    value: Expr  # a named tensor, or a tuple or list of them
    body: list[Stmt] | None  # None: only switch to that value


@dataclass(slots=True)
class Order(Stmt):
    rank: Any  # the registration rank of the layer before it (a whole number)


@dataclass(slots=True)
class Call(Stmt):
    name: str
    args: list[Arg]


def names_read(node: Any) -> frozenset[str]:
    """Every name an expression or statement (a list of them, nested bodies
    included) reads: what its value can depend on besides `in`. Names it binds
    itself are among them when it reads them too (an over-estimate is safe)."""
    out: set[str] = set()
    todo = [node]
    while todo:
        n = todo.pop()
        if isinstance(n, Name):
            out.add(n.name)
        elif isinstance(n, (list, tuple)):
            todo.extend(n)
        elif isinstance(n, (Expr, Stmt, Arg)):
            todo.extend(getattr(n, f.name) for f in fields(n) if f.name != "loc")
    return frozenset(out)


# ----------------------------------------------------------------- top level
@dataclass(slots=True)
class TypeAlt:
    """One alternative of a parameter type: a named type with bounds
    (`int >= 1`, `list[float > 0]`), or a literal value (name None)."""

    loc: Loc
    name: str | None  # int, float, bool, str, list, any; None: `literal`
    literal: Expr | None
    bounds: list[tuple[str, Expr]]  # (comparison, bound): value <op> bound must hold
    item: TypeSpec | None  # list[item]


@dataclass(slots=True)
class TypeSpec:
    loc: Loc
    alternatives: list[TypeAlt]


@dataclass(slots=True)
class Param:
    loc: Loc
    name: str
    default: Expr | None
    type: TypeSpec | None = None


@dataclass(slots=True)
class Scalable:
    """`scalable(role: parameter, ..., when: c)`, or `scalable as net(param: value, ...)`
    with `target` the network a point is scaled as: how `archc scale` scales a
    network (archdsl.compiler.scaling). Kept apart from the body, which elaborates without it."""

    loc: Loc
    target: str | None  # None: scaling roles
    args: list[Arg]


@dataclass(slots=True)
class Definition:
    loc: Loc
    kind: str  # "block" | "network"
    name: str
    params: list[Param]
    body: list[Stmt]
    scaling: list[Scalable] = field(default_factory=list)  # a network's `scalable` declarations
    # The elaborator's compiled closures for this definition's nodes, by node
    # id (archdsl.language.expr, archdsl.compiler.elaborate): they live and die with the tree.
    # Not stored by archdsl.language.astdata; the file is loc.file (no back reference,
    # so a tree has no cycles and is freed as soon as it is dropped).
    compiled: dict = field(default_factory=dict, compare=False, repr=False)

    def __getstate__(self) -> dict:  # closures do not pickle; they are rebuilt
        return {f.name: {} if f.name == "compiled" else getattr(self, f.name) for f in fields(self)}

    def __setstate__(self, state: dict) -> None:
        for k, v in state.items():
            object.__setattr__(self, k, v)


@dataclass(slots=True)
class Use:
    loc: Loc
    path: str


@dataclass
class SourceFile:
    path: str
    text: str
    uses: list[Use] = field(default_factory=list)
    definitions: list[Definition] = field(default_factory=list)
    nesting: int = 0  # how deep its syntax tree nests (archdsl.language.budget's `nesting`)
