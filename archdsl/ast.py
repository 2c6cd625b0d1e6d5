"""Located syntax tree of an .arch file.

Every node carries a `Loc`, so any later stage (validation, elaboration,
shape checks) can point back at the text that produced it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Loc:
    file: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


# ---------------------------------------------------------------- expressions
@dataclass
class Expr:
    loc: Loc


@dataclass
class Const(Expr):
    value: Any


@dataclass
class Name(Expr):
    name: str


@dataclass
class InShape(Expr):
    pass


@dataclass
class Cond(Expr):
    then: Expr
    test: Expr
    other: Expr


@dataclass
class BoolOp(Expr):
    op: str  # "and" | "or"
    operands: list[Expr]


@dataclass
class Not(Expr):
    operand: Expr


@dataclass
class Neg(Expr):
    op: str  # "-" | "+"
    operand: Expr


@dataclass
class BinOp(Expr):
    op: str
    left: Expr
    right: Expr


@dataclass
class Compare(Expr):
    first: Expr
    rest: list[tuple[str, Expr]]


@dataclass
class Index(Expr):
    target: Expr
    index: Expr


@dataclass
class Slice(Expr):
    target: Expr
    start: Expr | None
    stop: Expr | None


@dataclass
class Attr(Expr):
    target: Expr
    name: str


@dataclass
class Arg:
    loc: Loc
    name: str | None
    value: Expr


@dataclass
class FCall(Expr):
    name: str
    args: list[Arg]


@dataclass
class TupleExpr(Expr):
    items: list[Expr]


@dataclass
class ListExpr(Expr):
    items: list[Expr]


@dataclass
class ListComp(Expr):
    element: Expr
    target: list[str]
    iterable: Expr
    condition: Expr | None


# ----------------------------------------------------------------- statements
@dataclass
class Stmt:
    loc: Loc


@dataclass
class Let(Stmt):
    target: list[str]  # one name, or several for tuple unpacking
    unpack: bool
    value: Expr


@dataclass
class If(Stmt):
    test: Expr
    then: list[Stmt]
    other: list[Stmt]


@dataclass
class For(Stmt):
    target: list[str]
    unpack: bool
    iterable: Expr
    body: list[Stmt]


@dataclass
class Repeat(Stmt):
    count: Expr
    var: str
    body: list[Stmt]


@dataclass
class Section(Stmt):
    kind: str  # "stem" | "stage" | "head"
    count: Expr | None
    var: str | None
    body: list[Stmt]


@dataclass
class Residual(Stmt):
    args: list[Arg]
    body: list[Stmt]
    shortcut: list[Stmt] | None


@dataclass
class Parallel(Stmt):
    join: str
    args: list[Arg]
    body: list[Stmt]


@dataclass
class Split(Stmt):
    args: list[Arg]
    body: list[Stmt]


@dataclass
class Gate(Stmt):
    args: list[Arg]
    body: list[Stmt]


@dataclass
class Branch(Stmt):
    body: list[Stmt]


@dataclass
class Call(Stmt):
    name: str
    args: list[Arg]


# ----------------------------------------------------------------- top level
@dataclass
class Param:
    loc: Loc
    name: str
    default: Expr | None


@dataclass
class Definition:
    loc: Loc
    kind: str  # "block" | "network"
    name: str
    params: list[Param]
    body: list[Stmt]
    source: "SourceFile"


@dataclass
class Use:
    loc: Loc
    path: str


@dataclass
class SourceFile:
    path: str
    text: str
    uses: list[Use] = field(default_factory=list)
    definitions: list[Definition] = field(default_factory=list)
