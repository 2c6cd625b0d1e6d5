"""The package's rooms: imports flow one way (cli -> explore -> build -> api ->
configs -> backends -> compiler -> ops -> language) and no module imports
itself back through others."""
from __future__ import annotations

import ast
from pathlib import Path

import archdsl

PKG = Path(archdsl.__file__).parent
# Lower rank = lower in the pipeline; a module may import its own rank or below.
RANK = {"language": 0, "ops": 1, "compiler": 2, "backends": 3, "configs": 4, "api": 5, "port": 5,
        "build": 6, "explore": 7, "cli": 8}


def _modules() -> dict[str, Path]:
    out = {}
    for f in PKG.rglob("*.py"):
        parts = f.relative_to(PKG).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(("archdsl",) + parts)] = f
    return out


def _imports(name: str, file: Path, known: set[str]) -> set[str]:
    """The archdsl modules `name` imports, anywhere in the file (functions too)."""
    pkg = name if file.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(file.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = pkg.split(".")[: len(pkg.split(".")) - node.level + 1]
                base = ".".join(up + ([base] if base else []))
            for a in node.names:  # `from archdsl.compiler import ir` imports a module
                found.add(f"{base}.{a.name}" if f"{base}.{a.name}" in known else base)
    return {m for m in found if m in known and m != name}


def _room(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def test_every_module_sits_in_a_known_room():
    rooms = {_room(m) for m in _modules()} - {None, "__main__"}
    assert rooms <= set(RANK), rooms - set(RANK)


def test_imports_flow_down_the_pipeline():
    mods = _modules()
    upward = []
    for name, file in mods.items():
        room = _room(name)
        if room in (None, "__main__"):  # the package's face re-exports the API
            continue
        for imp in _imports(name, file, set(mods)):
            other = _room(imp)
            if other is None or RANK[other] > RANK[room]:
                upward.append(f"{name} imports {imp}")
    assert not upward, "\n".join(upward)


def test_no_import_cycles():
    mods = _modules()
    graph = {n: _imports(n, f, set(mods)) for n, f in mods.items()}
    # A package imports its own submodules (ops/__init__ fills the registry):
    # that is loading, not a cycle, so edges to a module's own package are dropped.
    graph = {n: {m for m in deps if not n.startswith(m + ".")} for n, deps in graph.items()}
    state: dict[str, int] = {}
    cycles = []

    def visit(n: str, stack: list[str]) -> None:
        state[n] = 1
        for m in sorted(graph[n]):
            if state.get(m) == 1:
                cycles.append(" -> ".join(stack[stack.index(m):] + [n, m]) if m in stack else f"{n} -> {m}")
            elif m not in state:
                visit(m, stack + [n])
        state[n] = 2

    for n in sorted(graph):
        if n not in state:
            visit(n, [])
    assert not cycles, "\n".join(cycles)


def test_each_room_says_what_it_owns():
    for room in RANK:
        init = PKG / room / "__init__.py"
        if init.exists():
            doc = ast.get_docstring(ast.parse(init.read_text()))
            assert doc and "Imports:" in doc, f"{init} has no docstring saying what it owns and may import"
