"""Primitive ops. Importing this package fills the registry: every module in
this folder registers its ops (a new op is a new module here, nothing else)."""
import importlib
import pkgutil

from .registry import REGISTRY, Cost, LowerContext, OpDef, ShapeError, get

for _module in pkgutil.iter_modules(__path__):
    if _module.name != "registry":
        importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["REGISTRY", "Cost", "LowerContext", "OpDef", "ShapeError", "get"]
