"""A program: the definitions of an .arch file and everything it `use`s.

`use "mbconv"` looks for `mbconv.arch` next to the using file, then under
each search root and its blocks/ and recipes/ folders. Only `.arch` files
under those folders can be reached; cycles are reported.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from archdsl.language import ast as A
from archdsl.language.caches import process_cache
from archdsl.language.errors import ArchError, ConfigError
from archdsl.language.parsecache import parse_file
from archdsl.language.resources import root as bundled_root

# Statements the language itself defines; the compiler adds the op names.
RESERVED = {"input"}

# Parsed files, keyed by path and modification time: parsing happens once a
# process (and, through archdsl.language.parsecache, once per file content on this machine).
_CACHE: dict[str, tuple[float, A.SourceFile]] = process_cache("read")


def parse_cached(path: str | Path) -> A.SourceFile:
    key = str(path)
    mtime = os.stat(key).st_mtime
    hit = _CACHE.get(key)
    if hit and hit[0] == mtime:
        return hit[1]
    src = parse_file(key)
    _CACHE[key] = (mtime, src)
    return src


def search_roots(extra: list[Path] | None = None) -> list[Path]:
    # Absolute, not resolved: the files found under them are resolved (realpath
    # is ~15 us a call, and this runs on every load).
    roots = [Path(os.path.abspath(p)) for p in (extra or [])]
    for env in os.environ.get("ARCHDSL_PATH", "").split(os.pathsep):
        if env:
            roots.append(Path(os.path.abspath(env)))
    roots.append(bundled_root())
    return roots


@dataclass
class Program:
    definitions: dict[str, A.Definition] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)

    def network(self, name: str | None = None) -> A.Definition:
        nets = [d for d in self.definitions.values() if d.kind == "network"]
        if name is None:
            if len(nets) != 1:
                where = nets[1].loc if nets else (A.Loc(self.files[-1], 1, 1) if self.files else None)
                raise ArchError(f"expected one network definition, found {len(nets)}"
                                + (f": {', '.join(d.name for d in nets)}" if nets else ""), where,
                                hint="name the one to build with the config key `network`" if nets else None)
            return nets[0]
        d = self.definitions.get(name)
        if d is None or d.kind != "network":
            raise ConfigError(f"no network named '{name}' in {', '.join(self.files)}", key="network")
        return d


def _resolve_use(use: A.Use, using: str, roots: list[Path]) -> str:
    """The real path of the file `use` names, seen from the file `using` (a real path)."""
    rel = use.path if use.path.endswith(".arch") else use.path + ".arch"
    if os.path.isabs(rel) or ".." in Path(rel).parts:
        raise ArchError(f"use path must be relative and stay inside the search path: '{use.path}'", use.loc)
    bases = [os.path.dirname(using)]
    for r in map(str, roots):
        bases += [r, os.path.join(r, "blocks"), os.path.join(r, "recipes")]
    for base in bases:
        cand = os.path.join(base, rel)
        if os.path.isfile(cand):
            real = os.path.realpath(cand)
            # A link may point anywhere: what it reaches must still be under a
            # search root (or beside the using file), and be an .arch file.
            if not real.endswith(".arch") or not any(_inside(real, b) for b in bases[:1] + list(map(str, roots))):
                raise ArchError(f"'{rel}' ({cand}) is a link to {real}, outside the search path", use.loc,
                                "`use` reaches only .arch files under the search roots: "
                                + ", ".join(str(r) for r in roots))
            return real
    raise ArchError(f"cannot find '{rel}' (looked next to {os.path.basename(using)} and under "
                    f"{', '.join(str(r) for r in roots)})", use.loc)


@lru_cache(maxsize=64)
def _real(folder: str) -> str:
    return os.path.realpath(folder)


def _inside(real: str, folder: str) -> bool:
    """Is the real path `real` in `folder` (or a folder under it)?"""
    root = _real(folder)
    return real.startswith(root if root.endswith(os.sep) else root + os.sep)


def load_program(entry: str | Path, extra_roots: list[Path] | None = None) -> Program:
    """Parse `entry` and, transitively, the files it uses."""
    prog = Program()
    _visit(prog, os.path.realpath(entry), [], None, search_roots(extra_roots), set())
    return prog


def _visit(prog: Program, path: str, stack: list[str], via: A.Use | None, roots: list[Path],
           done: set[str]) -> None:
    if path in stack:
        cycle = " -> ".join(os.path.basename(p) for p in stack[stack.index(path):] + [path])
        raise ArchError(f"use cycle: {cycle}", via.loc if via else None)
    if path in done:
        return
    src = parse_cached(path)
    for u in src.uses:
        _visit(prog, _resolve_use(u, path, roots), stack + [path], u, roots, done)
    for d in src.definitions:
        prev = prog.definitions.get(d.name)
        if prev is not None and prev is not d:
            raise ArchError(f"'{d.name}' is already defined at {prev.loc}", d.loc)
        prog.definitions[d.name] = d
    done.add(path)
    prog.files.append(path)


def find_recipe(name_or_path: str, extra_roots: list[Path] | None = None) -> Path:
    """A recipe given as a path to an .arch file, or as a name under recipes/.

    A relative .arch path is first looked up next to the config (the last of
    `extra_roots`): an `archc build` folder's config names its own spec.arch.
    """
    if name_or_path.endswith(".arch") and extra_roots and not os.path.isabs(name_or_path):
        beside = os.path.join(extra_roots[-1], name_or_path)
        if os.path.isfile(beside):
            return Path(os.path.realpath(beside))
    if name_or_path.endswith(".arch") and os.path.isfile(name_or_path):
        return Path(os.path.realpath(name_or_path))
    file = name_or_path if name_or_path.endswith(".arch") else name_or_path + ".arch"
    for r in search_roots(extra_roots):
        cand = os.path.join(r, "recipes", file)
        if os.path.isfile(cand):
            return Path(os.path.realpath(cand))
    raise ConfigError(f"no recipe named '{name_or_path}' (looked in "
                      + ", ".join(str(r / "recipes") for r in search_roots(extra_roots)) + ")", key="recipe")
