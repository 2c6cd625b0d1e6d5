"""archdsl: a declarative architecture compiler for convolutional networks."""
from .api import compile, cost, load, parse
from .deployed import deploy
from .errors import ArchError, ConfigError

__all__ = ["ArchError", "ConfigError", "compile", "cost", "deploy", "load", "parse"]
__version__ = "0.1.0"
