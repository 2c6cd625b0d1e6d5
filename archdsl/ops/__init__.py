"""Primitive ops: the one registry where each op's attribute schema, shape
rule, cost rule and torch lowering sit together (registry.py).

Importing this package fills the registry: every module in this folder
registers its ops (a new op is a new module here, nothing else).

Imports: archdsl.language only (and torch, for lowerings).
"""
import importlib
import pkgutil

from archdsl.ops.registry import REGISTRY, Cost, LowerContext, OpDef, ShapeError, get

for _module in pkgutil.iter_modules(__path__):
    if _module.name != "registry":
        importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["REGISTRY", "Cost", "LowerContext", "OpDef", "ShapeError", "get"]
