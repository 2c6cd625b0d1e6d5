"""Primitive ops: the one registry where each op's attribute schema, shape
rule, cost rule and torch lowering sit together (registry.py).

Importing this package fills the registry: every module in this folder
registers its ops (a new op is a new module here, nothing else). Ops of
other packages come in through the entry-point group `archdsl.ops` (each
entry names a module that registers its ops when imported), loaded the first
time a spec names an op archdsl does not know, so a process that needs none
pays nothing for looking.

Imports: archdsl.language only (and torch, for lowerings).
"""
import importlib
import pkgutil

from archdsl.language.errors import ArchError
from archdsl.ops.registry import REGISTRY, Cost, LowerContext, OpDef, ShapeError, get

for _module in pkgutil.iter_modules(__path__):
    if _module.name != "registry":
        importlib.import_module(f"{__name__}.{_module.name}")

PLUGIN_GROUP = "archdsl.ops"
_plugins: list[str] | None = None  # the entry points loaded, once looked for


def load_plugins() -> list[str]:
    """Import every module of the `archdsl.ops` entry-point group (once); the
    names of the entry points loaded."""
    global _plugins
    if _plugins is None:
        from importlib.metadata import entry_points

        _plugins = []
        for ep in entry_points(group=PLUGIN_GROUP):
            try:
                ep.load()
            except Exception as e:  # a broken plugin is the user's to fix: say which
                raise PluginError(f"the op plugin '{ep.name}' ({ep.value}, entry point group "
                                  f"{PLUGIN_GROUP}) failed to load: {type(e).__name__}: {e}") from None
            clash = [n for n in _BUNDLED if REGISTRY[n] is not _BUNDLED[n]]
            if clash:
                for n in clash:
                    REGISTRY[n] = _BUNDLED[n]
                raise PluginError(f"the op plugin '{ep.name}' ({ep.value}) redefines the bundled op(s) "
                                  f"{', '.join(sorted(clash))}; choose other names")
            _plugins.append(ep.name)
    return _plugins


class PluginError(ArchError):
    """An op plugin that cannot be loaded (reported like a spec error)."""


_BUNDLED = dict(REGISTRY)

__all__ = ["PLUGIN_GROUP", "REGISTRY", "Cost", "LowerContext", "OpDef", "PluginError", "ShapeError", "get",
           "load_plugins"]
