"""Parameter types, compiled once into checks.

    block mbconv(out: int >= 1, k: 1 | 3 | 5 | 7 = 3, act: "relu" | "silu" = "relu")
    network regnet(depth: int >= 1, w0: float > 0, widths: list[int >= 1], ...)

A type is one or more alternatives joined by `|`; each is a literal value or
a named type (int, float, bool, str, list, any) with optional bounds, each a
comparison the value must pass (`int >= 1`, `float > 0 <= 1`, `str in
names`); `list[T]` checks every element against T. Bounds are expressions,
evaluated where the parameter is bound (so they may use earlier parameters).
A float accepts an int; an int never accepts a bool.
"""
from __future__ import annotations

import operator
from typing import Any, Callable

from archdsl.language import ast as A
from archdsl.language.expr import CMPS, _compile, compiled, type_name

# (elaborator, env, value) -> None when the value fits, else what was wanted
Check = Callable[[Any, dict, Any], "str | None"]

_KINDS: dict[str, Callable[[Any], bool]] = {
    "int": lambda v: type(v) is int,
    "float": lambda v: type(v) in (int, float),
    "bool": lambda v: type(v) is bool,
    "str": lambda v: type(v) is str,
    "list": lambda v: type(v) in (list, tuple),
    "any": lambda v: True,
}


# The same kinds as the types a value's type must be one of (all but `any`).
_TYPES = {"int": (int,), "float": (int, float), "bool": (bool,), "str": (str,), "list": (list, tuple)}


def check_of(spec: A.TypeSpec, cache: dict) -> Check:
    """`spec`'s check, kept in `cache` (its Definition.compiled)."""
    return compiled(spec, cache, _compile_type)


def _compile_type(spec: A.TypeSpec) -> Check:
    alts = [_compile_alt(a) for a in spec.alternatives]
    if len(alts) == 1:  # the common case: one call, no loop
        a = spec.alternatives[0]
        types = _TYPES.get(a.name)
        constant = [(CMPS[op], _constant(b)) for op, b in a.bounds]
        describe1 = alts[0][1]
        if types is not None and a.item is None and len(constant) <= 2 and \
                all(c is not _NOT_CONSTANT for _, c in constant):
            (cmp1, c1), (cmp2, c2) = (constant + [(operator.is_not, _NOT_CONSTANT)] * 2)[:2]  # no bound: always true, in C

            def check_number(el, env, v):
                if type(v) in types:
                    try:
                        if cmp1(v, c1) and cmp2(v, c2):
                            return None
                    except TypeError:
                        pass
                return describe1(el, env, v)
            return check_number
        fits1 = alts[0][0]

        def check1(el, env, value):
            return None if fits1(el, env, value) else describe1(el, env, value)
        return check1

    def check(el, env, value):
        for fits, _ in alts:
            if fits(el, env, value):
                return None
        return " | ".join(describe(el, env, value) for _, describe in alts)
    return check


def _compile_alt(a: A.TypeAlt):
    if a.name is None:  # a literal: equal, and of the same kind (1 is not true)
        lit = _compile(a.literal)

        def fits_literal(el, env, v):
            want = lit(el, env)  # 1 is not 1.0 nor true; a float literal takes an equal int
            return v == want and (type(v) is type(want) or (type(want) is float and type(v) is int))
        return fits_literal, lambda el, env, v=None: _shown(lit(el, env))
    kind = _KINDS[a.name]  # names were checked when the program was (unknown_types)
    bounds = [(op, CMPS[op], _compile(b)) for op, b in a.bounds]
    item = _compile_type(a.item) if a.item is not None else None

    constant = [(CMPS[op], _constant(b)) for op, b in a.bounds]
    if item is None and all(c is not _NOT_CONSTANT for _, c in constant):
        # Bounds that are numbers (nearly all): compared without evaluating
        # anything, as a type check runs at every block call elaborated.
        return _fits_constant(kind, constant), lambda el, env, v=None: " ".join(
            [a.name] + [f"{op} {_shown(c)}" for (op, _), (_, c) in zip(a.bounds, constant)])

    def fits(el, env, v):
        if not kind(v):
            return False
        for _, cmp, bound in bounds:
            try:
                if not cmp(v, bound(el, env)):
                    return False
            except TypeError:
                return False
        return item is None or _bad_element(el, env, item, v) is None

    def describe(el, env, v=None):
        text = a.name if item is None else f"list[{_describe_spec(el, env, a.item)}]"
        text = " ".join([text] + [f"{op} {_shown(bound(el, env))}" for op, _, bound in bounds])
        bad = None if item is None or not kind(v) else _bad_element(el, env, item, v)
        return text if bad is None else f"{text} (element {bad} is {_shown(v[bad])})"
    return fits, describe


_NOT_CONSTANT = object()


def _fits_constant(kind: Callable[[Any], bool], bounds: list[tuple[Callable, Any]]):
    """A check of a kind and constant bounds; zero, one or two bounds (nearly
    every parameter) without a loop."""
    if not bounds:
        return lambda el, env, v: kind(v)
    if len(bounds) == 1:
        (cmp, c), = bounds

        def fits_one(el, env, v):
            try:
                return kind(v) and cmp(v, c)
            except TypeError:
                return False
        return fits_one
    if len(bounds) == 2:
        (cmp1, c1), (cmp2, c2) = bounds

        def fits_two(el, env, v):
            try:
                return kind(v) and cmp1(v, c1) and cmp2(v, c2)
            except TypeError:
                return False
        return fits_two

    def fits_all(el, env, v):
        try:
            return kind(v) and all(cmp(v, c) for cmp, c in bounds)
        except TypeError:
            return False
    return fits_all


def _constant(e: A.Expr):
    """The value of a bound written as a number (or a negated one)."""
    if isinstance(e, A.Const):
        return e.value
    if isinstance(e, A.Neg) and isinstance(e.operand, A.Const) and type(e.operand.value) in (int, float):
        return -e.operand.value if e.op == "-" else e.operand.value
    return _NOT_CONSTANT


def _bad_element(el, env, item: Check, v) -> int | None:
    return next((i for i, x in enumerate(v) if item(el, env, x) is not None), None)


def _describe_spec(el, env, spec: A.TypeSpec) -> str:
    return " | ".join(_compile_alt(a)[1](el, env) for a in spec.alternatives)


def unknown_types(spec: A.TypeSpec) -> list[A.TypeAlt]:
    """The alternatives of `spec` (nested too) that name no known type, or give
    an element type to something other than list."""
    bad = []
    for a in spec.alternatives:
        if a.name is not None and (a.name not in _KINDS or (a.item is not None and a.name != "list")):
            bad.append(a)
        if a.item is not None:
            bad += unknown_types(a.item)
    return bad


KNOWN = ", ".join(_KINDS)


def _shown(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return f'"{v}"' if isinstance(v, str) else repr(v)


def mismatch(name: str, value: Any, wanted: str) -> str:
    """The message for a parameter whose value does not fit its type."""
    return f"parameter '{name}' = {_shown(value)} ({type_name(value)}) must be {wanted}"
