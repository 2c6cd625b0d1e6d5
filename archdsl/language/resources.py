"""Where the bundled grammar, blocks, recipes and configs live.

In a source checkout (or an editable install) they sit at the repository
root; a wheel carries them under archdsl/_bundled (see pyproject.toml).
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

_PKG = Path(__file__).resolve().parent.parent  # archdsl/


@lru_cache(maxsize=1)
def root() -> Path:
    bundled = _PKG / "_bundled"
    if (bundled / "grammar").is_dir():
        return bundled
    return _PKG.parent


def grammar_path() -> Path:
    return root() / "grammar" / "archdsl.lark"


def conf_dir() -> Path:
    return root() / "conf"  # resolved already (so are the other folders): _PKG is


def recipes_dir() -> Path:
    return root() / "recipes"


def blocks_dir() -> Path:
    return root() / "blocks"
