"""The op registry: each primitive op declares, in one place, its attribute
schema (pydantic), its shape rule, its cost rule and its torch lowering.

The elaborator uses `attrs` and `shape`, the cost backend `cost`, the torch
backend `lower`, so report and module are derived from the same definition.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from pydantic import BaseModel, ConfigDict

# A tensor's shape for one sample, (C, H, W): what shape rules take and give.
Shape = tuple[int, int, int]


def numel(shape: Shape) -> int:
    c, h, w = shape
    return c * h * w


class Attrs(BaseModel):
    """Base of every op's attribute model: unknown attributes are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class Cost:
    params: int = 0
    macs: int = 0
    # Elements of the conv and linear outputs the op makes (the RegNet paper's
    # activations); None: its own output if it is a conv or linear, else 0.
    activations: int | None = None


class ShapeError(ValueError):
    """Raised by a shape rule; the elaborator adds the source location."""


@dataclass(frozen=True)
class LowerContext:
    # True when the op's input is a tensor no other consumer reads, so an
    # activation may run in place.
    inplace_ok: bool = False


@dataclass(frozen=True)
class OpDef:
    name: str
    attrs: type[Attrs]
    shape: Callable[[Any, Shape], Shape]
    cost: Callable[[Any, Shape, Shape], Cost]
    lower: Callable[[Any, Shape, Shape, LowerContext], Any]
    doc: str = ""
    # Attributes fixed by an alias, e.g. `relu` is `act` with fn="relu".
    preset: tuple[tuple[str, Any], ...] = ()
    canonical: str | None = None  # the op an alias stands for


REGISTRY: dict[str, OpDef] = {}


def register(opdef: OpDef, aliases: dict[str, dict[str, Any]] | None = None) -> OpDef:
    REGISTRY[opdef.name] = opdef
    for alias, preset in (aliases or {}).items():
        REGISTRY[alias] = OpDef(alias, opdef.attrs, opdef.shape, opdef.cost, opdef.lower,
                                opdef.doc, tuple(preset.items()), opdef.name)
    return opdef


def get(name: str) -> OpDef | None:
    return REGISTRY.get(name)
