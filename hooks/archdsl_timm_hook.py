"""Installed next to archdsl-timm.pth, which imports it when Python starts:
the first `import timm` then registers every archc config with timm
(archdsl.port.timm_registry), so `timm.create_model("archc_<name>")` works
in any program — timm's own train.py included — without importing archdsl.

Starting Python costs one small finder here; archdsl itself is imported
only when timm is. ARCHDSL_NO_TIMM_HOOK=1 turns it off.
"""
import importlib.util
import os
import sys


class _AfterTimm:
    """A meta-path finder that lets timm load as usual, then registers."""

    def find_spec(self, name, path=None, target=None):
        if name != "timm":
            return None
        sys.meta_path.remove(self)  # once, and not for the lookup below
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        run = spec.loader.exec_module

        def exec_module(module):
            run(module)
            _register()

        spec.loader.exec_module = exec_module
        return spec


def _register():
    try:
        from archdsl.port.timm_registry import register

        register()
    except Exception as e:  # a broken install must not break timm
        import warnings

        warnings.warn(f"archdsl could not register its models with timm: {e}", stacklevel=2)


def install():
    if os.environ.get("ARCHDSL_NO_TIMM_HOOK") or any(isinstance(f, _AfterTimm) for f in sys.meta_path):
        return
    if "timm" in sys.modules:
        _register()
    else:
        sys.meta_path.insert(0, _AfterTimm())


install()
