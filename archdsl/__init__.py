"""archdsl: a declarative architecture compiler for convolutional networks.

The pipeline, one room per stage; imports flow down this list, never up:

    cli.py          `archc`: the commands (Hydra runs `archc build`)
    explore/        sweeps, grids, search, scaling, summaries, plots
    build.py        one build job: compile a config, write its output folder
    api.py, port.py the Python API (load, cost, parse, compile) and weight porting
    configs/        Hydra composing and pydantic validation
    backends/       cost report, rendering, the PyTorch module
    compiler/       elaboration to the IR, the IR, passes
    ops/            the op registry: attributes, shape, cost, lowering per op
    language/       grammar, parser, syntax tree, expressions, programs, errors, caches
"""
from archdsl.language.errors import ArchError, ConfigError

__all__ = ["ArchError", "ConfigError", "compile", "cost", "deploy", "load", "parse"]
# Imported on first use: `archc -h`, --version and tab completion need no torch.
_LAZY = {"compile": "archdsl.api", "cost": "archdsl.api", "load": "archdsl.api", "parse": "archdsl.api",
         "deploy": "archdsl.backends.torch.deploy"}


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'archdsl' has no attribute '{name}'")
    import importlib
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
__version__ = "0.1.0"
