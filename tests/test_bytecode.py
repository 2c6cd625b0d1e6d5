"""Hot expressions compiled to bytecode (language/bytecode.py) compute exactly
what the closures (expr.py) compute: the same value, or the same located
error, and the same budget charged. The closures are the reference here; a
few values are also checked by hand."""
from __future__ import annotations

import random

import pytest

import archdsl
from archdsl.build import costs
from archdsl.explore.points import Base
from archdsl.language import ast as A
from archdsl.language import bytecode
from archdsl.language.budget import Budget
from archdsl.language.errors import ArchError
from archdsl.language.expr import _compile, in_shape
from archdsl.language.parser import parse_text


class _El:
    """What an expression sees of the elaborator: its budget, and errors."""

    def __init__(self):
        self.budget = Budget()
        self.path = []

    def error(self, message, loc, hint=None):
        return ArchError(message, loc)

    def is_statement(self, name):
        return False


def _expr(src: str) -> A.Expr:
    d = parse_text(f"network n() {{\n  input(3, 8, 8)\n  let x = {src}\n}}").definitions[0]
    return next(s for s in d.body if isinstance(s, A.Let)).value


ENV = {"w0": 48, "wa": 27.5, "wm": 2.3, "depth": 20, "g": 8, "b": 1.0, "s": "ab", "L": [1, 2, 3],
       "P": [(1, 2), (3, 4)], "z": 0, "big": 2 ** 60, "t": True, "$in": in_shape((16, 8, 4))}


def _outcome(fn, env=ENV):
    el = _El()
    try:
        value = fn(el, dict(env))
        return "ok", value, type(value), el.budget.steps
    except ArchError as e:
        return "error", str(e), None, el.budget.steps


def _both(src: str, env=ENV):
    e = _expr(src)
    fast = bytecode.fast(e)
    assert fast is not None
    return _outcome(_compile(e), env), _outcome(fast, env)


HAND = [  # (expression, value worked out by hand)
    ("[round(log((w0 + wa * j) / w0) / log(wm)) for j in range(4)]", [0, 1, 1, 1]),
    ("[quantize(w0 * wm ** k, 8) for k in [0, 1, 2]]", [48, 112, 256]),
    ("[(w, d) for (w, d) in runs([8, 8, 16])]", [(8, 2), (16, 1)]),
    ("[a + b for (a, (b, c)) in [[1, [2, 3]]]]", [3]),
    ("in.c * in.h + in.w", 132),
    ("3 < w0 < 100 <= big", True),
    ("[x for x in [y * 2 for y in L if y * 3 > 2]]", [2, 4, 6]),
    ("L[1:] + [len(s)]", [2, 3, 2]),
    ("-wa if t else 0", -27.5),
    ("sum([g * 1.5 for i in L])", 36.0),
]


@pytest.mark.parametrize("src,want", HAND)
def test_hand_worked_values(src, want):
    closure, fast = _both(src)
    assert fast[:2] == ("ok", want) and type(fast[1]) is type(want)
    assert fast == closure


EDGE = [  # errors and limits: the fast form must give way to the closure's located error
    "1 / z", "-s", "+s", "s * 3", "L * big", "big ** big", "2 ** 10", "in.q", "L[5]", "s[0:1]", "L[t:2]",
    "[x for x in s]", "[(a, b) for (a, b) in [[1, 2], 'xy']]", "[(a, b) for (a, b) in P]", "nosuch(1)",
    "unknown + 1", "log(-1)", "fail('no')", "range(10 ** 7)", "2 in L", "'a' in s", "L in 3",
    "[1] == (1,)", "1 == 1.0", "big * big * big", "min([])", "quantize(w0, 0)", "str(big)",
    "[[y for y in range(x)] for x in range(3)]", "[x for x in [y for y in L] if x > 1]",
    "len(in)", "in", "(w0, wa)[1]", "not L", "w0 > 3 and wa", "z or s", "int(s)",
    "[y for y in [x for x in range(n)]] if n > 0 else []",
]


@pytest.mark.parametrize("src", EDGE)
def test_edges_match_the_closure(src):
    closure, fast = _both(src)
    assert fast == closure


def test_a_name_only_some_branches_read():
    """Names are read once at the start; one that is absent where a branch
    that would read it is not taken still gives the closure's value."""
    closure, fast = _both("w0 if t else missing")
    assert fast == closure == ("ok", 48, int, Budget().steps)


# ---------------------------------------------------------------- random expressions
_LEAVES = ["w0", "wa", "wm", "depth", "g", "b", "s", "L", "P", "z", "t", "big", "in", "1", "2", "0", "2.5",
           "-1", "'x'", "[]", "[1, 2]", "in.c", "in.w", "in.q"]
_FNS = ["log", "round", "quantize", "min", "max", "len", "int", "float", "sum", "range", "zip", "runs",
        "abs", "sqrt", "cumsum", "sorted", "make_divisible"]


def _random_expr(rng: random.Random, depth: int, names: list[str]) -> str:
    if depth <= 0 or rng.random() < 0.25:
        return rng.choice(_LEAVES + names)
    k = rng.randrange(10)
    sub = lambda: _random_expr(rng, depth - 1, names)  # noqa: E731
    if k == 0:
        return f"({sub()} {rng.choice(['+', '-', '*', '/', '//', '%', '**'])} {sub()})"
    if k == 1:
        return f"({sub()} {rng.choice(['==', '!=', '<', '<=', '>', '>=', 'in'])} {sub()})"
    if k == 2:
        return f"({sub()} if {sub()} else {sub()})"
    if k == 3:
        return f"({sub()} {rng.choice(['and', 'or'])} {sub()})"
    if k == 4:
        fn = rng.choice(_FNS)
        return f"{fn}({', '.join(sub() for _ in range(rng.choice([1, 1, 2])))})"
    if k == 5:
        v = rng.choice(["i", "j"])
        cond = f" if {_random_expr(rng, depth - 1, names + [v])}" if rng.random() < 0.3 else ""
        return f"[{_random_expr(rng, depth - 1, names + [v])} for {v} in {sub()}{cond}]"
    if k == 6:
        return f"[{_random_expr(rng, depth - 1, names + ['p', 'q'])} for (p, q) in {sub()}]"
    if k == 7:
        return f"{rng.choice(['-', '+', 'not '])}{sub()}"
    if k == 8:
        return f"{sub()}[{sub()}]" if rng.random() < 0.6 else f"L[{sub()}:{sub()}]"
    return f"[{sub()}, {sub()}]"


def test_random_expressions_match_the_closure():
    rng = random.Random(15)
    checked = ok = 0
    for _ in range(1500):
        src = _random_expr(rng, 4, [])
        try:
            e = _expr(src)
        except ArchError:
            continue
        closure, fast = _outcome(_compile(e)), _outcome(bytecode.fast(e))
        assert fast == closure, src
        checked += 1
        ok += closure[0] == "ok"
    assert checked > 1000 and ok > 200  # both outcomes well exercised


# ---------------------------------------------------------------- whole networks
def test_every_bundled_preset_costs_the_same_compiled(monkeypatch):
    """Every expression of every bundled preset promoted at once (its first
    evaluation) gives the same totals as the closures alone."""
    from archdsl.language.caches import forget
    from archdsl.language.resources import conf_dir
    names = sorted(p.stem for p in conf_dir().glob("*.yaml") if p.stem not in ("base",))
    results, made = {}, []
    for wrap in ("fast", "fast_list"):
        real = getattr(bytecode, wrap)
        monkeypatch.setattr(bytecode, wrap, lambda *a, real=real: made.append(1) or real(*a))
    for promote in (10 ** 9, 1):
        monkeypatch.setattr(bytecode, "PROMOTE_AFTER", promote)
        forget()  # programs parsed again: their expressions compiled afresh
        out = {}
        for name in names:
            try:
                out[name] = costs(archdsl.compile(name).report())
            except ArchError as e:  # not a buildable preset on its own
                out[name] = str(e)
        results[promote] = out
    assert sum(isinstance(v, dict) for v in results[1].values()) >= 100
    assert len(made) > 300  # expressions and argument lists compiled (none in the first pass)
    assert results[1] == results[10 ** 9]


def test_a_search_space_point_after_promotion():
    """A design space's network `let`s, promoted after a few points, give the
    widths pycls's rule gives (worked out by hand for this point)."""
    base = Base("regnetx_004")
    point = {"depth": 13, "w0": 24, "wa": 24.48, "wm": 2.54, "group_w": 16}
    first = base.evaluate(point)
    for _ in range(bytecode.PROMOTE_AFTER + 1):
        again = base.evaluate(point)
    assert again == first
    # u_j = 24 + 24.48 j snapped to 24 * 2.54^k (k = 0, 1 x2, 2 x7, 3 x3) and quantized
    # to 8: 24, 64, 152, 392; then to the group width 16 (Python rounds half to even):
    # 32, 64, 160, 384
    c = base.compiled(point)
    stages = c.spec.children[1].children
    assert [len(s.children) for s in stages] == [1, 2, 7, 3]
    assert [s.children[0].out_shape[0] for s in stages] == [32, 64, 160, 384]


def test_spec_text_never_becomes_code(tmp_path):
    """Strings and names of a spec are values and keys in the compiled form;
    its functions see no Python builtins."""
    marker = tmp_path / "ran"
    code = f"__import__('os').system('touch {marker}')"
    closure, fast = _both(f'[{code!r} + "" for i in [1]]')
    assert fast == closure and fast[1] == [code] and not marker.exists()
    closure, fast = _both("__import__")
    assert fast == closure and fast[0] == "error" and "unknown name '__import__'" in fast[1]
    assert bytecode.fast(_expr("w0 + 1")).__globals__["__builtins__"] == {}
