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


def user_conf_dir() -> Path:
    """The user's own config folder, searched after the bundled one (so it adds
    presets and never shadows one): $ARCHDSL_CONFIG_DIR, else
    $XDG_CONFIG_HOME/archdsl, else ~/.config/archdsl. `archc calibrate` writes
    the hardware presets it measures to its hardware/ folder: measurements of
    one machine belong to its user, not to the installed package (which may be
    read-only, and is replaced on upgrade)."""
    import os

    env = os.environ.get("ARCHDSL_CONFIG_DIR")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "archdsl"
