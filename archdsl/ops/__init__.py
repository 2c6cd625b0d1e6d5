"""Primitive ops. Importing this package fills the registry."""
from . import activation, channel, conv, linear, misc, norm, pool  # noqa: F401
from .registry import REGISTRY, Cost, LowerContext, OpDef, ShapeError, get

__all__ = ["REGISTRY", "Cost", "LowerContext", "OpDef", "ShapeError", "get"]
