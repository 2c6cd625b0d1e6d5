"""`archc check`: parse, resolve `use`, and validate names and arguments statically."""
from __future__ import annotations

import difflib
from pathlib import Path

from archdsl.compiler import scaling
from archdsl.compiler.elaborate import check_names, elaborate
from archdsl.language import ast as A
from archdsl.language.errors import ArchError
from archdsl.language.program import Program, load_program
from archdsl.ops import REGISTRY, PluginError, load_plugins


def _calls(stmts: list[A.Stmt]):
    for s in stmts:
        if isinstance(s, A.Call):
            yield s
        for attr in ("body", "then", "other", "shortcut"):
            sub = getattr(s, attr, None)
            if isinstance(sub, list):
                yield from _calls(sub)


def _check_call(call: A.Call, program: Program) -> None:
    if call.name == "input":
        return
    if call.name not in REGISTRY and call.name not in program.definitions:
        try:
            load_plugins()  # an op of another package, perhaps
        except PluginError as e:
            raise ArchError(e.message, call.loc) from None
    if call.name in REGISTRY:
        opdef = REGISTRY[call.name]
        names = [f for f in opdef.attrs.model_fields if f not in dict(opdef.preset)]
    elif call.name in program.definitions:
        names = [p.name for p in program.definitions[call.name].params]
    else:
        close = difflib.get_close_matches(call.name, list(REGISTRY) + list(program.definitions), 1)
        raise ArchError(f"unknown op or block '{call.name}'", call.loc,
                        hint=f"did you mean '{close[0]}'?" if close else None)
    positional = [a for a in call.args if a.name is None]
    if call.name in REGISTRY and REGISTRY[call.name].joins:  # leading positional arguments are tensors
        positional = []
    if len(positional) > len(names):
        raise ArchError(f"{call.name} takes at most {len(names)} positional argument(s), got "
                        f"{len(positional)}", positional[len(names)].loc)
    for a in call.args:
        if a.name is not None and a.name not in names:
            raise ArchError(f"{call.name} has no argument '{a.name}'", a.loc,
                            hint=f"arguments: {', '.join(names) or 'none'}")


def check_file(path: str | Path) -> list[str]:
    """Raise ArchError on the first problem; return what was checked, for display."""
    program = load_program(path)
    check_names(program)
    scaling.check_program(program)
    notes = []
    for d in program.definitions.values():
        for call in _calls(d.body):
            _check_call(call, program)
    entry = str(Path(path).resolve())
    for d in program.definitions.values():
        if d.kind != "network" or d.loc.file != entry:
            continue
        needed = [p.name for p in d.params if p.default is None]
        if needed:
            notes.append(f"network {d.name}: checked statically (needs {', '.join(needed)} to elaborate)")
        else:
            spec = elaborate(program, {}, d.name)
            notes.append(f"network {d.name}: elaborated with its defaults -> "
                         f"{'x'.join(map(str, spec.out_shape))}")
    own = [d for d in program.definitions.values() if d.loc.file == entry]
    notes.insert(0, f"{path}: {sum(d.kind == 'block' for d in own)} block(s), "
                    f"{sum(d.kind == 'network' for d in own)} network(s), {len(program.files) - 1} used file(s)")
    return notes
