"""One error type for everything a user can get wrong, rendered like a compiler.

    blocks/regnet.arch:12:5: groups (3) must divide input channels (32)
        conv(mid, 3, groups: 3)
        ^
      spec traceback (innermost last):
        recipes/regnet.arch:25:7: regnet_block(w, stride: 2 if j == 0 else 1, ...)
        blocks/regnet.arch:12:5: conv(mid, 3, groups: 3) bn relu
      in regnet › stages.1 › blocks.0 (regnet_block) › conv

An error inside a block lists every block call that led to it, from the
outermost spec down, so the file the user edited is always named.
"""
from __future__ import annotations

from archdsl.language.ast import Loc

# file path -> source text, filled by the parser so errors can quote lines.
SOURCES: dict[str, str] = {}


class ArchError(Exception):
    def __init__(self, message: str, loc: Loc | None = None, path: list[str] | None = None,
                 hint: str | None = None, calls: list[Loc] | None = None):
        super().__init__(message)
        self.message = message
        self.loc = loc
        self.path = list(path) if path else []
        self.hint = hint
        self.calls = list(calls) if calls else []  # block call sites, outermost first

    def render(self) -> str:
        head = f"{self.loc}: {self.message}" if self.loc else f"error: {self.message}"
        lines = [head]
        if self.loc is not None:
            text = SOURCES.get(self.loc.file)
            if text is not None:
                src = text.splitlines()
                if 1 <= self.loc.line <= len(src):
                    line, column = _window(src[self.loc.line - 1].expandtabs(1), self.loc.column)
                    lines.append("    " + line)
                    lines.append("    " + " " * (column - 1) + "^")
        if self.calls:
            lines.append("  spec traceback (innermost last):")
            lines += [f"    {where}: {_line(where)}" for where in self.calls + ([self.loc] if self.loc else [])]
        if self.path:
            lines.append("  in " + " › ".join(self.path))
        if self.hint:
            lines.append("  hint: " + self.hint)
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.render()


_WIDTH = 100  # of a quoted line; a longer one is cut around the column


def _window(line: str, column: int) -> tuple[str, int]:
    """`line` cut to about _WIDTH characters around `column`, and the column in the cut."""
    if len(line) <= _WIDTH:
        return line, column
    start = max(0, min(column - 1 - _WIDTH // 2, len(line) - _WIDTH))
    cut = line[start:start + _WIDTH]
    head = "…" if start else ""
    return head + cut + ("…" if start + _WIDTH < len(line) else ""), column - start + len(head)


def _line(loc: Loc) -> str:
    """The source line at `loc`, stripped."""
    text = SOURCES.get(loc.file)
    src = text.splitlines() if text is not None else []
    return _window(src[loc.line - 1].strip(), 1)[0] if 1 <= loc.line <= len(src) else ""


class ConfigError(ArchError):
    """A problem in the Hydra config: names the key and, when known, the override."""

    def __init__(self, message: str, key: str | None = None, override: str | None = None,
                 hint: str | None = None):
        where = []
        if key:
            where.append(f"config key '{key}'")
        if override:
            where.append(f"override '{override}'")
        full = f"{', '.join(where)}: {message}" if where else message
        super().__init__(full, hint=hint)
        self.key = key
        self.override = override
