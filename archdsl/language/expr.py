"""Spec expressions, compiled once into Python closures.

A tree-walking interpreter pays a dispatch on the node type for every
expression it meets; elaboration meets tens of thousands per network. Each
AST expression is therefore turned, once, into a closure `fn(el, env)` that
calls its operands' closures directly. Nothing is generated as source text
and nothing is `eval`ed: the closures are ordinary nested functions over the
whitelisted builtins. (bytecode.py compiles hot expressions further, and
falls back to these closures for every error.) `el` is the running elaborator, used only to raise
located errors (its path names the network, stage, block and op).
"""
from __future__ import annotations

import difflib
import operator
from dataclasses import dataclass, field
from typing import Any, Callable

from archdsl.language import ast as A
from archdsl.language.budget import power_too_big, product_too_big, value_too_big
from archdsl.language.builtins import BUILTINS, SpecFailure
from archdsl.language.caches import process_cache

Fn = Callable[[Any, dict], Any]  # (elaborator, env) -> value


@dataclass(frozen=True)
class InputShape:
    """The value of `in`: the shape a block receives."""

    c: int
    h: int
    w: int

    def __len__(self) -> int:
        # `len(in)` counts tensors: 1 here, k for the tuple of k shapes a block
        # taking several tensors receives; so one block can serve both.
        return 1


@dataclass(frozen=True)
class Tensor(InputShape):
    """A named live tensor (`-> x`): its shape (x.c, x.h, x.w) and which
    value of which body it is."""

    vid: int = 0
    owner: Any = field(default=None, compare=False, hash=False)  # the body that named it

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.c, self.h, self.w)


# The value of `in` by shape, made once: `in` is set for every loop iteration
# and block call, and a frozen dataclass takes ~1 us to make.
_IN_SHAPES: dict = process_cache("elaborated")


def in_shape(shape) -> InputShape | tuple[InputShape, ...]:
    """The value of `in` for `shape` (a tuple of them for several tensors)."""
    made = _IN_SHAPES.get(shape)
    if made is None:
        if len(_IN_SHAPES) >= 4096:
            _IN_SHAPES.clear()
        made = _IN_SHAPES[shape] = (tuple(InputShape(*s) for s in shape) if type(shape[0]) is tuple
                                    else InputShape(*shape))
    return made


BINOPS = {
    "+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv,
    "//": operator.floordiv, "%": operator.mod, "**": operator.pow,
}
CMPS = {
    "==": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le,
    ">": operator.gt, ">=": operator.ge, "in": lambda a, b: a in b,
}


def type_name(v: Any) -> str:
    return {bool: "bool", int: "int", float: "float", str: "string", list: "list",
            tuple: "tuple", InputShape: "shape", Tensor: "tensor"}.get(type(v), type(v).__name__)


def compiled(e: A.Expr, cache: dict, compile: Callable[[Any], Any] | None = None) -> Fn:
    """`e`'s closure (by `compile`, default the expression compiler), kept in
    `cache` (its Definition.compiled)."""
    fn = cache.get(id(e))
    if fn is None:
        fn = cache[id(e)] = (compile or _compile)(e)
    return fn


def _compile(e: A.Expr) -> Fn:
    return _COMPILERS[type(e)](e)


def iterate(el, value, loc):
    """`value` as the items of a loop, charged to the budget's `steps` before it runs."""
    if not isinstance(value, (list, tuple)):
        raise el.error(f"cannot iterate over a {type_name(value)}", loc)
    el.budget.loop(el, len(value), loc)
    return value


def bind(el, env: dict, target, value, loc) -> None:
    """Bind `target` — a name, or a (nested) list of targets — to `value`."""
    if type(target) is str:
        env[target] = value
        return
    if not isinstance(value, (list, tuple)) or len(value) != len(target):
        n = len(value) if isinstance(value, (list, tuple)) else 1
        raise el.error(f"cannot unpack {n} value(s) into {len(target)} names", loc)
    for t, v in zip(target, value):
        bind(el, env, t, v, loc)


# ------------------------------------------------------------------ compilers
def _const(e: A.Const) -> Fn:
    v = e.value
    return lambda el, env: v


def _name(e: A.Name) -> Fn:
    name = e.name

    def f(el, env):
        try:
            return env[name]
        except KeyError:
            pass
        if name in BUILTINS:
            raise el.error(f"'{name}' is a function; call it as {name}(...)", e.loc)
        close = difflib.get_close_matches(name, [k for k in env if not k.startswith("$")], 1)
        raise el.error(f"unknown name '{name}'", e.loc, f"did you mean '{close[0]}'?" if close else None)
    return f


def _in_shape(e: A.InShape) -> Fn:
    def f(el, env):
        shape = env.get("$in")
        if shape is None:
            raise el.error("'in' is only defined inside a block or after input(...)", e.loc)
        return shape
    return f


def _cond(e: A.Cond) -> Fn:
    test, then, other = _compile(e.test), _compile(e.then), _compile(e.other)
    return lambda el, env: then(el, env) if test(el, env) else other(el, env)


def _bool_op(e: A.BoolOp) -> Fn:
    fns = [_compile(o) for o in e.operands]
    if e.op == "and":
        def f(el, env):
            v = True
            for o in fns:
                v = o(el, env)
                if not v:
                    return v
            return v
    else:
        def f(el, env):
            v = False
            for o in fns:
                v = o(el, env)
                if v:
                    return v
            return v
    return f


def _not(e: A.Not) -> Fn:
    operand = _compile(e.operand)
    return lambda el, env: not operand(el, env)


def _neg(e: A.Neg) -> Fn:
    operand, minus = _compile(e.operand), e.op == "-"

    def f(el, env):
        v = operand(el, env)
        if not isinstance(v, (int, float)) or isinstance(v, bool):
            raise el.error(f"unary {e.op} needs a number, got {type_name(v)}", e.loc)
        return -v if minus else v
    return f


_SEQUENCES = (str, list, tuple)
_SEQUENCE_SET = frozenset(_SEQUENCES)


def _bin_op(e: A.BinOp) -> Fn:
    left, right, op, fn = _compile(e.left), _compile(e.right), e.op, BINOPS[e.op]

    def failed(el, a, b, ex):
        if isinstance(ex, ZeroDivisionError):
            return el.error("division by zero", e.loc)
        return el.error(f"cannot apply '{op}' to {type_name(a)} and {type_name(b)}", e.loc)

    # What may grow a value past the budget's limits is checked: before `*`
    # and `**` (they could take minutes or gigabytes to make it), after `+`
    # and `-` (which grow an integer by a bit, and join sequences); `/`, `//`
    # and `%` grow nothing. One closure per kind: these run per layer.
    if op in ("+", "-"):
        def grows(el, env):
            a, b = left(el, env), right(el, env)
            try:
                out = fn(a, b)
            except (TypeError, ValueError, OverflowError, MemoryError) as ex:
                raise failed(el, a, b, ex) from None
            return _within_limits(el, out, e.loc)
        return grows
    if op not in ("*", "**"):
        def plain(el, env):
            a, b = left(el, env), right(el, env)
            try:
                return fn(a, b)
            except (ZeroDivisionError, TypeError, ValueError, OverflowError, MemoryError) as ex:
                raise failed(el, a, b, ex) from None
        return plain
    before = power_too_big if op == "**" else product_too_big

    def f(el, env):
        a, b = left(el, env), right(el, env)
        if type(a) is not float and type(b) is not float:  # a float result (or an error): nothing to grow
            why = before(a, b, el.budget.limits)
            if why is not None:
                raise el.error(f"'{op}': {why}", e.loc, el.budget.limits.hint("int_bits" if "integer" in why
                                                                              else "length"))
        try:
            out = fn(a, b)
        except (ZeroDivisionError, TypeError, ValueError, OverflowError, MemoryError) as ex:
            raise failed(el, a, b, ex) from None
        return _within_limits(el, out, e.loc)
    return f


def _within_limits(el, out, loc):
    """`out`, a value just made, if it is within the budget: an integer's bits, a
    sequence's length (which making it costs)."""
    t = type(out)
    if t is int:
        if out.bit_length() > el.budget.limits.int_bits:
            _too_big(el, out, loc)
    elif t in _SEQUENCES:
        el.budget.loop(el, len(out), loc)
        if len(out) > el.budget.limits.length:
            _too_big(el, out, loc)
    return out


def _too_big(el, value, loc):
    why = value_too_big(value, el.budget.limits)
    raise el.error(why, loc, el.budget.limits.hint("int_bits" if type(value) is int else "length"))


def _compare(e: A.Compare) -> Fn:
    first = _compile(e.first)
    rest = [(op, CMPS[op], _compile(rhs)) for op, rhs in e.rest]

    def f(el, env):
        left = first(el, env)
        for op, cmp, rhs in rest:
            right = rhs(el, env)
            if op == "in" and type(right) in _SEQUENCES:
                el.budget.loop(el, len(right), e.loc)  # a search costs the sequence's length
            try:
                ok = cmp(left, right)
            except TypeError:
                raise el.error(f"cannot compare {type_name(left)} {op} {type_name(right)}", e.loc) from None
            if not ok:
                return False
            left = right
        return True
    return f


def _index(e: A.Index) -> Fn:
    target_fn, index_fn = _compile(e.target), _compile(e.index)

    def f(el, env):
        target, idx = target_fn(el, env), index_fn(el, env)
        try:
            return target[idx]
        except IndexError:
            raise el.error(f"index {idx} out of range for a {type_name(target)} of length {len(target)}",
                           e.loc) from None
        except (TypeError, KeyError):
            raise el.error(f"cannot index a {type_name(target)} with {type_name(idx)}", e.loc) from None
    return f


def _slice(e: A.Slice) -> Fn:
    target_fn = _compile(e.target)
    start_fn = None if e.start is None else _compile(e.start)
    stop_fn = None if e.stop is None else _compile(e.stop)

    def f(el, env):
        target = target_fn(el, env)
        start = None if start_fn is None else start_fn(el, env)
        stop = None if stop_fn is None else stop_fn(el, env)
        if not isinstance(target, (list, tuple)):
            raise el.error(f"cannot slice a {type_name(target)}", e.loc)
        if not all(b is None or (isinstance(b, int) and not isinstance(b, bool)) for b in (start, stop)):
            raise el.error("slice bounds must be integers", e.loc)
        return target[start:stop]
    return f


def _attr(e: A.Attr) -> Fn:
    target_fn, name = _compile(e.target), e.name

    def f(el, env):
        target = target_fn(el, env)
        if isinstance(target, InputShape) and name in ("c", "h", "w"):
            return getattr(target, name)
        raise el.error(f"a {type_name(target)} has no attribute '{name}'", e.loc,
                       "only shapes have attributes: in.c, in.h, in.w")
    return f


def _fcall(e: A.FCall) -> Fn:
    fn = BUILTINS.get(e.name)
    if fn is None:
        def unknown(el, env):
            if el.is_statement(e.name):
                raise el.error(f"'{e.name}' is a block or op, not a function; use it as a statement", e.loc)
            close = difflib.get_close_matches(e.name, list(BUILTINS), 1)
            raise el.error(f"unknown function '{e.name}'", e.loc,
                           f"did you mean '{close[0]}'?" if close else
                           "builtins: " + ", ".join(sorted(BUILTINS)))
        return unknown
    args = [_compile(a.value) for a in e.args if a.name is None]
    kwargs = [(a.name, _compile(a.value)) for a in e.args if a.name is not None]
    loc, name = e.loc, e.name

    def called(el, a, k):
        if not _SEQUENCE_SET.isdisjoint(map(type, a)):
            for v in a:  # a builtin walks the sequences it is given: that costs their length
                if type(v) in _SEQUENCES:
                    el.budget.loop(el, len(v), loc)
        try:
            out = fn(*a) if k is None else fn(*a, **k)
        except SpecFailure as ex:
            raise el.error(str(ex), loc) from None
        except (TypeError, ValueError, ZeroDivisionError, OverflowError, MemoryError) as ex:
            raise el.error(f"{name}(): {ex}", loc) from None
        return out if type(out) is float else _within_limits(el, out, loc)

    # One and two plain numbers are most calls (log(x), quantize(w, 8)):
    # those run without building an argument list; the rest take `called`.
    if not kwargs and len(args) == 1:
        g0 = args[0]

        def f1(el, env):
            a = g0(el, env)
            if type(a) is float or type(a) is int:
                try:
                    out = fn(a)
                except SpecFailure as ex:
                    raise el.error(str(ex), loc) from None
                except (TypeError, ValueError, ZeroDivisionError, OverflowError) as ex:
                    raise el.error(f"{name}(): {ex}", loc) from None
                return out if type(out) is float else _within_limits(el, out, loc)
            return called(el, [a], None)
        return f1
    if not kwargs and len(args) == 2:
        g0, g1 = args

        def f2(el, env):
            a, b = g0(el, env), g1(el, env)
            ta, tb = type(a), type(b)
            if (ta is float or ta is int) and (tb is float or tb is int):
                try:
                    out = fn(a, b)
                except SpecFailure as ex:
                    raise el.error(str(ex), loc) from None
                except (TypeError, ValueError, ZeroDivisionError, OverflowError) as ex:
                    raise el.error(f"{name}(): {ex}", loc) from None
                return out if type(out) is float else _within_limits(el, out, loc)
            return called(el, [a, b], None)
        return f2

    def f(el, env):
        return called(el, [g(el, env) for g in args], {n: g(el, env) for n, g in kwargs} if kwargs else None)
    return f


def _tuple(e: A.TupleExpr) -> Fn:
    fns = [_compile(i) for i in e.items]
    return lambda el, env: tuple([g(el, env) for g in fns])


def _list(e: A.ListExpr) -> Fn:
    fns = [_compile(i) for i in e.items]
    return lambda el, env: [g(el, env) for g in fns]


def _list_comp(e: A.ListComp) -> Fn:
    iterable, element = _compile(e.iterable), _compile(e.element)
    condition = None if e.condition is None else _compile(e.condition)
    target = e.target

    def f(el, env):
        out = []
        inner = dict(env)  # the loop's own scope; each item rebinds every target name
        items = iterate(el, iterable(el, env), e.iterable.loc)
        if type(target) is str and condition is None:  # the common form, without a call per item
            for item in items:
                inner[target] = item
                out.append(element(el, inner))
            return out
        for item in items:
            bind(el, inner, target, item, e.loc)
            if condition is None or condition(el, inner):
                out.append(element(el, inner))
        return out
    return f


_COMPILERS: dict[type, Callable[[Any], Fn]] = {
    A.Const: _const, A.Name: _name, A.InShape: _in_shape, A.Cond: _cond, A.BoolOp: _bool_op,
    A.Not: _not, A.Neg: _neg, A.BinOp: _bin_op, A.Compare: _compare, A.Index: _index,
    A.Slice: _slice, A.Attr: _attr, A.FCall: _fcall, A.TupleExpr: _tuple, A.ListExpr: _list,
    A.ListComp: _list_comp,
}
