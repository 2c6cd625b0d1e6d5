"""The op registry: each primitive op declares, in one place, its attribute
schema (pydantic), its shape rule, its cost rule and its torch lowering.

The elaborator uses `attrs` and `shape`, the cost backend `cost`, the torch
backend `lower`, so report and module are derived from the same definition.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Callable

from pydantic import BaseModel, ConfigDict, Field, WrapValidator

# A tensor's shape for one sample, (C, H, W): what shape rules take and give.
Shape = tuple[int, int, int]


def numel(shape: Shape) -> int:
    """Elements of a tensor of `shape` (of every tensor, for a tuple of shapes)."""
    if type(shape[0]) is tuple:
        return sum(c * h * w for c, h, w in shape)
    c, h, w = shape
    return c * h * w


def _per_axis(least: int):
    """The validator of a per-axis attribute whose values are >= `least`."""
    def validate(v: Any, handler):
        # One int, the common case, is checked here; anything else goes through
        # the pair schema: an int (or anything not a sequence) stands for both
        # axes, so the element check reports a bad value as int fields always have.
        if type(v) is int and v >= least:
            return v
        if not isinstance(v, (tuple, list)):
            v = (v, v)
        elif len(v) != 2:
            raise ValueError(f"expected an int or a pair (h, w), got {len(v)} values")
        pair = handler(v)
        # Equal axes are stored as one int, so (3, 3) and 3 are one attribute value.
        return pair[0] if pair[0] == pair[1] else pair
    return WrapValidator(validate)


# A per-axis attribute (kernel, stride, dilation, padding): an int for both
# axes or a pair (h, w); stored as an int when both axes agree.
PosPair = Annotated[tuple[Annotated[int, Field(gt=0)], Annotated[int, Field(gt=0)]], _per_axis(1)]
NonNegPair = Annotated[tuple[Annotated[int, Field(ge=0)], Annotated[int, Field(ge=0)]], _per_axis(0)]


def hw(v: int | tuple[int, int]) -> tuple[int, int]:
    """A per-axis attribute's (h, w)."""
    return (v, v) if isinstance(v, int) else v


def fmt(v: int | tuple[int, int]) -> str:
    """A per-axis attribute as the spec writes it: 3 or (1, 7)."""
    return str(v) if isinstance(v, int) else f"({v[0]}, {v[1]})"


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
    # What fvcore's FlopCountAnalysis counts for the built op in eval mode
    # (timm's model cards quote it: one "flop" per MAC of conv, linear and
    # matmul, plus its rules for norms, adaptive average pooling, upsampling;
    # elementwise ops, activations and fused attention count 0); None: the MACs.
    fvcore: int | None = None


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
    # Takes several tensors at once (a tuple value: add, mul, cat); the shape
    # rule then gets a tuple of shapes. Every other op takes one tensor.
    joins: bool = False
    # Autograd may keep the op's output for its backward (sigmoid, tanh, ELU, …):
    # the next op must not overwrite it in place.
    keeps_output: bool = False
    # The memory format of the lowered module's output (LAYOUTS), which decides
    # which kernels the layers after it run (the calibrated roofline's classes).
    layout: str = "keep"


# How an op's output memory format follows from its input's (torch's rules;
# tests/test_memory_format.py checks every op's lowering against its own):
LAYOUTS = {
    "keep": "the input's (elementwise ops, pools, norms over a batch; a join: its first input's)",
    "channels_last": "channels-last whatever the input (a norm over channels computed on a permuted view)",
    "contiguous": "contiguous (plain NCHW, or not a 4-D map: tokens, vectors)",
    "all_inputs": "channels-last when every input is (concatenation)",
    "weights": "channels-last when the input or the layer's weights are (convolutions)",
}


REGISTRY: dict[str, OpDef] = {}


def register(opdef: OpDef, aliases: dict[str, dict[str, Any]] | None = None) -> OpDef:
    REGISTRY[opdef.name] = opdef
    for alias, preset in (aliases or {}).items():
        REGISTRY[alias] = OpDef(alias, opdef.attrs, opdef.shape, opdef.cost, opdef.lower,
                                opdef.doc, tuple(preset.items()), opdef.name, opdef.joins, opdef.keeps_output,
                                opdef.layout)
    return opdef


def get(name: str) -> OpDef | None:
    return REGISTRY.get(name)
