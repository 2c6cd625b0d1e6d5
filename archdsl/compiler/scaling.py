"""A network's scaling declarations, checked, and read for one point of it.

    scalable(depth: depth_mult, width: width_mult, res: res)
    scalable(groups: groups, group_width: base_width, when: block == "bottleneck")
    scalable as anynet(depths: stage_depths, widths: stage_widths, ...)

The first form gives parameters scaling roles (ROLES); `when:` makes a
declaration hold only for the points where it is true. The second says that a
point is scaled as a point of another network — a RegNet as the AnyNet of its
stages — or, naming the network itself, in a normal form of its own (an
AnyNet's widths made multiples of its group widths, as it elaborates them).
The parser keeps declarations apart from the body, so they never elaborate;
`archc scale` (archdsl.explore.scale) reads them here. Their expressions see
the network's parameters and the `let`s at the top level of its body (those
in top-level `if`s included), computed as elaboration computes them.
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from archdsl.compiler.elaborate import Elaborator
from archdsl.language import ast as A
from archdsl.language.errors import ArchError
from archdsl.language.expr import bind, type_name
from archdsl.language.program import Program, find_recipe, load_program

# role -> what it scales. How a value is rounded depends on the parameter's
# declared type: a float is a multiplier, an int (or each int of a list) a
# count rounded by the scaling rule (archdsl.explore.scale).
ROLES = {
    "depth": "blocks: a depth multiplier, or the blocks of each stage",
    "width": "channels: a width multiplier, or the channels of each stage",
    "group_width": "channels per group of the grouped convs (of each stage)",
    "groups": "the number of groups (ResNeXt's cardinality)",
    "res": "the input resolution",
}
SCALABLE_TYPES = "int, float, list[int] or list[float]"
_HOPS = 8  # `scalable as` declarations followed from one network at most


@dataclass(frozen=True)
class Role:
    param: str
    kind: str  # "int" | "float": of the value, or of each element of a list
    per_stage: bool  # a list
    loc: A.Loc  # the declaration's argument


@dataclass
class Declared:
    """What a network declares for one point of it."""

    roles: dict[str, Role]  # role -> its parameter, in the order declared
    values: dict[str, Any]  # every parameter of the network, defaults filled in
    written_as: tuple[A.Scalable, dict[str, Any]] | None  # `scalable as`: it and its arguments' values


@dataclass
class Point:
    """A point in the network it is scaled as."""

    program: Program
    network: A.Definition
    recipe: Path | None  # the file of `network` when it is another recipe's; None: the config's own
    params: dict[str, Any]
    declared: Declared


# ---------------------------------------------------------------- checking
def param_kind(p: A.Param) -> tuple[str, bool] | None:
    """(element kind, is a list) of a parameter typed int, float, list[int] or list[float]."""
    if p.type is None or len(p.type.alternatives) != 1:
        return None
    a = p.type.alternatives[0]
    if a.name in ("int", "float") and a.item is None:
        return a.name, False
    if a.name == "list" and a.item is not None and len(a.item.alternatives) == 1:
        e = a.item.alternatives[0]
        if e.name in ("int", "float") and e.item is None:
            return e.name, True
    return None


def check(d: A.Definition) -> None:
    """Raise ArchError at the first declaration of `d` that cannot hold."""
    params = {p.name: p for p in d.params}
    forms = [s for s in d.scaling if s.target is not None]
    if len(forms) > 1:
        raise ArchError(f"network '{d.name}' is already scaled as '{forms[0].target}' ({forms[0].loc})", forms[1].loc)
    for s in d.scaling:
        named = set()
        for a in s.args:
            if a.name is None:
                raise ArchError("scalable takes its arguments by name" + (
                    f" (the parameters of '{s.target}')" if s.target else ": role: parameter, e.g. "
                    "scalable(depth: depth_mult, width: width_mult, res: res)"), a.loc)
            if a.name in named:
                raise ArchError(f"scalable: '{a.name}' given twice", a.loc)
            named.add(a.name)
            if s.target is None and a.name != "when":
                _check_role(d, params, a)


def _check_role(d: A.Definition, params: dict[str, A.Param], a: A.Arg) -> None:
    if a.name not in ROLES:
        close = difflib.get_close_matches(a.name, ROLES, 1)
        raise ArchError(f"scalable: no scaling role '{a.name}'", a.loc,
                        hint=(f"did you mean '{close[0]}'? " if close else "")
                        + f"roles: {', '.join(ROLES)}; and when: c")
    if not isinstance(a.value, A.Name):
        raise ArchError(f"scalable: role '{a.name}' takes a parameter of network '{d.name}', by name", a.value.loc)
    p = params.get(a.value.name)
    if p is None:
        close = difflib.get_close_matches(a.value.name, params, 1)
        raise ArchError(f"scalable: network '{d.name}' has no parameter '{a.value.name}'", a.value.loc,
                        hint=f"did you mean '{close[0]}'?" if close else f"parameters: {', '.join(params) or 'none'}")
    if param_kind(p) is None:
        raise ArchError(f"scalable: parameter '{p.name}' ({a.name}) must be typed {SCALABLE_TYPES}", a.value.loc,
                        hint=f"declare its type where it is declared, at {p.loc}: e.g. {p.name}: float > 0")


# ---------------------------------------------------------------- reading
def read(program: Program, d: A.Definition, params: dict[str, Any]) -> Declared:
    """`d`'s declarations (checked) for the point `params`: the roles that hold, with the values."""
    check(d)
    el, env = _environment(program, d, params)
    kinds = {p.name: param_kind(p) for p in d.params}
    roles: dict[str, Role] = {}
    form = None
    for s in d.scaling:
        if s.target is not None:
            form = (s, {a.name: el.evaluate(a.value, env) for a in s.args})
            continue
        when = next((a.value for a in s.args if a.name == "when"), None)
        if when is not None:
            holds = el.evaluate(when, env)
            if type(holds) is not bool:
                raise ArchError(f"scalable: when: must be true or false, got {holds!r} ({type_name(holds)})",
                                when.loc)
            if not holds:
                continue
        for a in s.args:
            if a.name == "when":
                continue
            if a.name in roles:
                raise ArchError(f"scalable: role '{a.name}' is already declared ({roles[a.name].loc}) for this point",
                                a.loc)
            roles[a.name] = Role(a.value.name, *kinds[a.value.name], a.loc)
    return Declared(roles, {p.name: env[p.name] for p in d.params}, form)


def _environment(program: Program, d: A.Definition, params: dict[str, Any]) -> tuple[Elaborator, dict]:
    """The parameters bound as the elaborator binds them (defaults, type checks), then the top-level lets."""
    el = Elaborator(program)
    env = el.bind_network(d, params)
    _top_level_lets(el, d.body, env)
    return el, env


def _top_level_lets(el: Elaborator, stmts: list[A.Stmt], env: dict) -> None:
    for s in stmts:
        if isinstance(s, A.Let):
            bind(el, env, s.target, el.evaluate(s.value, env), s.loc)
        elif isinstance(s, A.If):
            _top_level_lets(el, s.then if el.evaluate(s.test, env) else s.other, env)


def written_as(program: Program, d: A.Definition, params: dict[str, Any], roots: list[Path] | None = None,
               recipe: Path | None = None) -> Point:
    """The point `params` of `d` in the network it is scaled as: `scalable as`
    declarations followed to a network that declares none, or to its own normal form."""
    seen = [d.name]
    while True:
        declared = read(program, d, params)
        if declared.written_as is None:
            return Point(program, d, recipe, params, declared)
        s, args = declared.written_as
        if s.target == d.name:  # its normal form: one step
            _check_args(s, d)
            return Point(program, d, recipe, args, read(program, d, args))
        if s.target in seen or len(seen) > _HOPS:
            raise ArchError(f"scalable as: {' -> '.join(seen + [s.target])} does not end", s.loc)
        program, d, recipe = target(s, roots)
        _check_args(s, d)
        seen.append(d.name)
        params = args


def target(s: A.Scalable, roots: list[Path] | None = None) -> tuple[Program, A.Definition, Path]:
    """The network `scalable as NAME(...)` names: network NAME of the recipe NAME (recipes/NAME.arch)."""
    try:
        path = find_recipe(s.target, roots)
    except ArchError:
        raise ArchError(f"scalable as {s.target}: no recipe named '{s.target}' on the search path", s.loc,
                        hint=f"the network {s.target} of recipes/{s.target}.arch, found as a config's "
                        f"`recipe: {s.target}` is") from None
    program = load_program(path, roots)
    d = program.definitions.get(s.target)
    if d is None or d.kind != "network":
        raise ArchError(f"scalable as {s.target}: {path} defines no network '{s.target}'", s.loc)
    return program, d, path


def _check_args(s: A.Scalable, d: A.Definition) -> None:
    names = [p.name for p in d.params]
    for a in s.args:
        if a.name not in names:
            close = difflib.get_close_matches(a.name, names, 1)
            raise ArchError(f"scalable as {s.target}: network '{d.name}' has no parameter '{a.name}'", a.loc,
                            hint=f"did you mean '{close[0]}'?" if close else f"parameters: {', '.join(names)}")


def check_program(program: Program, roots: list[Path] | None = None) -> None:
    """Every network's declarations, and the networks `scalable as` names (`archc check`)."""
    for d in program.definitions.values():
        if d.kind != "network":
            continue
        check(d)
        for s in d.scaling:
            if s.target is not None:
                _check_args(s, d if s.target == d.name else target(s, roots)[1])
