"""Hot spec expressions compiled to Python bytecode; the closures stay for errors.

expr.py's closures cost a Python call per AST node. An expression evaluated
many times (a network's `let` comprehensions, once per design-space point; a
block call's arguments, once per call) is therefore compiled, after
`PROMOTE_AFTER` evaluations, into one Python function whose arithmetic,
names and comprehensions run as bytecode: RegNet's width rule runs ~5x faster.

Safety, since a spec may not run code: the function is built as a Python
syntax tree (`ast`) from a fixed set of node forms and compiled from that
tree. No spec text becomes source: a spec's names are dictionary keys
(`env["w0"]`), its constants are constant nodes, its calls reach only the
whitelisted builtins (bound by us under our own names), and the function's
globals hold only our helpers, with no Python builtins.

Exactness: the fast form computes what the closures compute, with the same
budget charges (steps) and limits; it never raises a spec error itself. On
anything unusual (an error, a value over a limit, a type the fast form does
not take) it gives the step budget back and evaluates the closure, which
raises the located error or returns the value.
"""
from __future__ import annotations

import ast
import warnings
from typing import Any

from archdsl.language import ast as A
from archdsl.language.budget import power_too_big, product_too_big
from archdsl.language.builtins import BUILTINS, ONE_ARGUMENT
from archdsl.language.expr import Fn, InputShape, _compile, _within_limits, iterate

PROMOTE_AFTER = 32  # evaluations before compiling: a single network's expressions mostly run fewer


class _Slow(Exception):
    """The fast form cannot give the closure's answer here: evaluate the closure."""


_SEQ = frozenset({str, list, tuple})
_NUM = frozenset({int, float})


def _slow(*_):
    raise _Slow


# The closures' own checks serve here too: whatever they raise (a located
# error, the budget's) only sends the evaluation back to the closure, which
# raises it again where it belongs.
def _charge(el, n: int) -> None:
    el.budget.loop(el, n, None)


def _lim(el, out):
    return _within_limits(el, out, None)


def _add(el, a, b):
    return _lim(el, a + b)


def _sub(el, a, b):
    return _lim(el, a - b)


def _mul(el, a, b):
    if type(a) is not float and type(b) is not float and product_too_big(a, b, el.budget.limits):
        raise _Slow
    return _lim(el, a * b)


def _pow(el, a, b):
    if type(a) is not float and type(b) is not float and power_too_big(a, b, el.budget.limits):
        raise _Slow
    return _lim(el, a ** b)


def _neg(v):
    if type(v) not in _NUM:
        raise _Slow
    return -v


def _pos(v):
    if type(v) not in _NUM:
        raise _Slow
    return v


def _attr(v, name):
    if not isinstance(v, InputShape):
        raise _Slow
    return getattr(v, name)


def _slice(target, start, stop):
    if type(target) is not list and type(target) is not tuple:
        raise _Slow
    for b in (start, stop):
        if b is not None and (type(b) is not int):
            raise _Slow
    return target[start:stop]


def _iter(el, v):
    return iterate(el, v, None)


def _fits(v, shape) -> bool:
    """Does `v` unpack into a target of this shape (a name: None; a list of
    targets: their shapes) as expr.bind unpacks it?"""
    if shape is None:
        return True
    if (type(v) is not list and type(v) is not tuple) or len(v) != len(shape):
        return False
    return all(_fits(x, s) for x, s in zip(v, shape))


def _iter_unpack(el, v, shape):
    v = _iter(el, v)
    for item in v:
        if not _fits(item, shape):
            raise _Slow
    return v


def _iter_flat(el, v, n: int):
    """_iter_unpack into n names (the common `for (w, d) in ...`)."""
    v = _iter(el, v)
    for item in v:
        if (type(item) is not tuple and type(item) is not list) or len(item) != n:
            raise _Slow
    return v


def _in(el, seq):
    """The right side of `in`, its length charged when it is a sequence."""
    if type(seq) in _SEQ:
        _charge(el, len(seq))
    return seq


def _call(el, fn, *args):
    for v in args:
        if type(v) in _SEQ:  # a builtin walks the sequences it is given
            _charge(el, len(v))
    out = fn(*args)
    return out if type(out) is float else _lim(el, out)


def _call_kw(el, fn, args, kwargs):
    for v in args:  # (as the closure: the positional ones)
        if type(v) in _SEQ:
            _charge(el, len(v))
    out = fn(*args, **kwargs)
    return out if type(out) is float else _lim(el, out)


_HELPERS = {f.__name__: f for f in (_slow, _lim, _add, _sub, _mul, _pow, _neg, _pos, _attr, _slice, _iter,
                                    _iter_unpack, _iter_flat, _in, _call, _call_kw)}
_OPS = {"+": ast.Add, "-": ast.Sub, "*": ast.Mult, "/": ast.Div, "//": ast.FloorDiv, "%": ast.Mod,
        "**": ast.Pow}
_GROWS = {"+": "_add", "-": "_sub", "*": "_mul", "**": "_pow"}
_CMPS = {"==": ast.Eq, "!=": ast.NotEq, "<": ast.Lt, "<=": ast.LtE, ">": ast.Gt, ">=": ast.GtE, "in": ast.In}
_PLAIN_CONST = (int, float, bool, str, type(None))


def _name(n: str, load: bool = True) -> ast.Name:
    return ast.Name(n, ast.Load() if load else ast.Store())


def _call_of(fn: str, *args: ast.expr) -> ast.Call:
    return ast.Call(_name(fn), list(args), [])


class _Gen:
    """Builds one function's syntax tree; `env` names, not source text."""

    def __init__(self):
        self.globals: dict[str, Any] = {"__builtins__": {}, **_HELPERS, "_NUM": _NUM, "_type": type,
                                        "_float": float, "_int": int, "_SEQ": _SEQ}
        self.n = 0
        self.names: dict[str, str] = {}  # env names read -> their locals

    def fresh(self, what: str) -> str:
        self.n += 1
        return f"_{what}{self.n}"

    def bound(self, value: Any) -> ast.Name:
        """A value the function refers to (a builtin, a constant of another type)."""
        name = self.fresh("k")
        self.globals[name] = value
        return _name(name)

    def expr(self, e: A.Expr, scope: dict[str, str], walrus: bool) -> ast.expr:
        """`e` as a Python expression; `scope`: comprehension names -> locals;
        `walrus`: whether temporaries may be bound here (not inside a
        comprehension's iterable)."""
        return getattr(self, "_" + type(e).__name__)(e, scope, walrus)

    def _Const(self, e, scope, walrus):
        v = e.value
        return ast.Constant(v) if type(v) in _PLAIN_CONST else self.bound(v)

    def _Name(self, e, scope, walrus):
        local = scope.get(e.name) or self.names.get(e.name)
        if local is None:  # read from env once, at the start (a name absent there: the closure runs)
            local = self.names[e.name] = self.fresh("n")
        return _name(local)

    def _InShape(self, e, scope, walrus):  # None or absent: the closure says why
        return ast.BoolOp(ast.Or(), [ast.Subscript(_name("env"), ast.Constant("$in"), ast.Load()), _call_of("_slow")])

    def _Cond(self, e, scope, walrus):
        return ast.IfExp(self.expr(e.test, scope, walrus), self.expr(e.then, scope, walrus),
                         self.expr(e.other, scope, walrus))

    def _BoolOp(self, e, scope, walrus):
        return ast.BoolOp(ast.And() if e.op == "and" else ast.Or(), [self.expr(o, scope, walrus) for o in e.operands])

    def _Not(self, e, scope, walrus):
        return ast.UnaryOp(ast.Not(), self.expr(e.operand, scope, walrus))

    def _Neg(self, e, scope, walrus):
        v = self.expr(e.operand, scope, walrus)
        if not walrus:
            return _call_of("_neg" if e.op == "-" else "_pos", v)
        t = self.fresh("t")
        body = ast.UnaryOp(ast.USub(), _name(t)) if e.op == "-" else _name(t)
        test = ast.Compare(_call_of("_type", ast.NamedExpr(_name(t, False), v)), [ast.In()], [_name("_NUM")])
        return ast.IfExp(test, body, _call_of("_slow"))

    def _BinOp(self, e, scope, walrus):
        left, right = self.expr(e.left, scope, walrus), self.expr(e.right, scope, walrus)
        grows = _GROWS.get(e.op)
        if grows is None:  # / // %: they grow nothing
            return ast.BinOp(left, _OPS[e.op](), right)
        if not walrus:
            return _call_of(grows, _name("el"), left, right)
        a, b = self.fresh("a"), self.fresh("b")

        def is_float(name, value):
            return ast.Compare(_call_of("_type", ast.NamedExpr(_name(name, False), value)), [ast.Is()], [_name("_float")])
        if e.op in ("*", "**"):  # a float on either side: a float (or an error), nothing to check
            test = ast.BinOp(is_float(a, left), ast.BitOr(), is_float(b, right))  # `|`: both evaluated
            return ast.IfExp(test, ast.BinOp(_name(a), _OPS[e.op](), _name(b)),
                             _call_of(grows, _name("el"), _name(a), _name(b)))
        # + and -: a float result needs no check
        out = self.fresh("r")
        test = is_float(out, ast.BinOp(left, _OPS[e.op](), right))
        return ast.IfExp(test, _name(out), self._checked(out))

    def _Compare(self, e, scope, walrus):
        ops, rights = [], []
        for op, rhs in e.rest:
            r = self.expr(rhs, scope, walrus)
            ops.append(_CMPS[op]())
            rights.append(_call_of("_in", _name("el"), r) if op == "in" else r)
        # Python's chain evaluates each operand once and stops at the first false, as the closure
        return ast.Compare(self.expr(e.first, scope, walrus), ops, rights)

    def _Index(self, e, scope, walrus):
        return ast.Subscript(self.expr(e.target, scope, walrus), self.expr(e.index, scope, walrus), ast.Load())

    def _Slice(self, e, scope, walrus):
        def part(x):
            return ast.Constant(None) if x is None else self.expr(x, scope, walrus)
        return _call_of("_slice", self.expr(e.target, scope, walrus), part(e.start), part(e.stop))

    def _Attr(self, e, scope, walrus):
        if e.name not in ("c", "h", "w"):
            return _call_of("_slow")
        return _call_of("_attr", self.expr(e.target, scope, walrus), ast.Constant(e.name))

    def _FCall(self, e, scope, walrus):
        fn = BUILTINS.get(e.name)
        if fn is None:
            return _call_of("_slow")
        args = [self.expr(a.value, scope, walrus) for a in e.args if a.name is None]
        named = [(a.name, self.expr(a.value, scope, walrus)) for a in e.args if a.name is not None]
        if len(args) == 1 and not named:
            fn = ONE_ARGUMENT.get(e.name, fn)
        if named:
            kwargs = ast.Dict([ast.Constant(k) for k, _ in named], [v for _, v in named])
            return _call_of("_call_kw", _name("el"), self.bound(fn), ast.Tuple(args, ast.Load()), kwargs)
        if not walrus:
            return _call_of("_call", _name("el"), self.bound(fn), *args)
        # Inline: each argument charged if a sequence, the result checked unless a float.
        charged = []
        for a in args:
            x = self.fresh("x")
            charged.append(ast.IfExp(ast.Compare(_call_of("_type", ast.NamedExpr(_name(x, False), a)), [ast.NotIn()],
                                                 [_name("_SEQ")]),
                                     _name(x), _call_of("_in", _name("el"), _name(x))))
        out = self.fresh("o")
        made = ast.NamedExpr(_name(out, False), ast.Call(self.bound(fn), charged, []))
        return ast.IfExp(ast.Compare(_call_of("_type", made), [ast.Is()], [_name("_float")]),
                         _name(out), self._checked(out))

    def _checked(self, name: str) -> ast.expr:
        """`name` (an int, usually) through the limits: inline for an int that fits."""
        fits = ast.BoolOp(ast.And(), [
            ast.Compare(_call_of("_type", _name(name)), [ast.Is()], [_name("_int")]),
            ast.Compare(ast.Call(ast.Attribute(_name(name), "bit_length", ast.Load()), [], []), [ast.LtE()],
                        [ast.Attribute(ast.Attribute(ast.Attribute(_name("el"), "budget", ast.Load()), "limits",
                                                     ast.Load()), "int_bits", ast.Load())])])
        return ast.IfExp(fits, _name(name), _call_of("_lim", _name("el"), _name(name)))

    def _TupleExpr(self, e, scope, walrus):
        return ast.Tuple([self.expr(i, scope, walrus) for i in e.items], ast.Load())

    def _ListExpr(self, e, scope, walrus):
        return ast.List([self.expr(i, scope, walrus) for i in e.items], ast.Load())

    def _ListComp(self, e, scope, walrus):
        inner = dict(scope)

        def target(t):  # (python target, its shape for _fits)
            if type(t) is str:
                inner[t] = local = self.fresh("v")
                return _name(local, False), None
            parts = [target(x) for x in t]
            return ast.Tuple([p for p, _ in parts], ast.Store()), tuple(s for _, s in parts)
        items = self.expr(e.iterable, scope, False)  # no temporaries in an iterable (Python forbids them)
        tgt, shape = target(e.target)
        if shape is None:
            items = _call_of("_iter", _name("el"), items)
        elif all(s is None for s in shape):
            items = _call_of("_iter_flat", _name("el"), items, ast.Constant(len(shape)))
        else:
            items = _call_of("_iter_unpack", _name("el"), items, self.bound(shape))
        ifs = [] if e.condition is None else [self.expr(e.condition, inner, walrus)]
        return ast.ListComp(self.expr(e.element, inner, walrus), [ast.comprehension(tgt, items, ifs, 0)])


def _function(body: ast.expr, gen: _Gen, slow: Fn):
    """def _fast(el, env): try: return body / except: the closure, the budget as it was."""
    gen.globals["_closure"] = slow
    steps = ast.Attribute(ast.Attribute(_name("el"), "budget", ast.Load()), "steps", ast.Load())
    restore = ast.Assign([ast.Attribute(ast.Attribute(_name("el"), "budget", ast.Load()), "steps", ast.Store())],
                         _name("_steps"))
    handler = ast.ExceptHandler(_name("_Exception"), None,
                                [restore, ast.Return(_call_of("_closure", _name("el"), _name("env")))])
    gen.globals["_Exception"] = Exception
    reads = [ast.Assign([_name(local, False)], ast.Subscript(_name("env"), ast.Constant(name), ast.Load()))
             for name, local in gen.names.items()]
    fn = ast.FunctionDef(name="_fast", args=ast.arguments(posonlyargs=[], args=[ast.arg("el"), ast.arg("env")],
                                                          kwonlyargs=[], kw_defaults=[], defaults=[]),
                         body=[ast.Assign([_name("_steps", False)], steps),
                               ast.Try([*reads, ast.Return(body)], [handler], [], [])], decorator_list=[])
    module = ast.Module([fn], [])
    for node in ast.walk(module):  # one location for all (ast.fix_missing_locations leaves a cycle behind)
        if "lineno" in node._attributes:
            node.lineno = node.end_lineno = 1
            node.col_offset = node.end_col_offset = 0
    with warnings.catch_warnings():  # Python's hints on constant operands ('x'[1.5]): the closure says why
        warnings.simplefilter("ignore")
        code = compile(module, "<archdsl expression>", "exec")
    exec(code, gen.globals)  # a tree we built; see the docstring
    return gen.globals.pop("_fast")  # not left in its own globals: no cycle, freed with its tree


def _built(make_body, slow: Fn) -> Fn | None:
    """_function of the body make_body(gen) gives; None when Python cannot compile
    it (too deeply nested for its compiler)."""
    try:
        gen = _Gen()
        return _function(make_body(gen), gen, slow)
    except (RecursionError, MemoryError, SyntaxError, ValueError):
        return None


def fast(e: A.Expr, slow: Fn | None = None) -> Fn | None:
    """`e` compiled to one Python function (falling back to `slow`, its closure)."""
    slow = slow or _compile(e)
    return _built(lambda gen: gen.expr(e, {}, True), slow)


def fast_list(es: list[A.Expr], slow: Fn) -> Fn | None:
    """The values of `es` as one list, by one function (a call's arguments);
    `slow` gives the same list from their closures."""
    return _built(lambda gen: ast.List([gen.expr(e, {}, True) for e in es], ast.Load()), slow)


def _trivial(e: A.Expr) -> bool:
    return type(e) in (A.Const, A.Name, A.InShape)


def _tiered(slow: Fn, make_fast) -> Fn:
    """`slow`, replaced by make_fast()'s function once it has run PROMOTE_AFTER
    times (compiling costs ~50 us: only hot expressions pay it)."""
    runs = 0
    hot: Fn | None = None

    def f(el, env):
        nonlocal runs, hot
        if hot is not None:
            return hot(el, env)
        runs += 1
        if runs >= PROMOTE_AFTER:
            hot = make_fast() or slow
        return slow(el, env)
    return f


def tiered(e: A.Expr) -> Fn:
    """`e`'s closure, compiled once it is hot (names and constants stay closures: as fast)."""
    slow = _compile(e)
    return slow if _trivial(e) else _tiered(slow, lambda: fast(e, slow))


def tiered_list(es: list[A.Expr]) -> Fn:
    """The values of `es` as a list (a call's arguments), compiled as one once hot."""
    slows = [_compile(e) for e in es]

    def slow(el, env):
        return [f(el, env) for f in slows]
    return slow if all(map(_trivial, es)) else _tiered(slow, lambda: fast_list(es, slow))
