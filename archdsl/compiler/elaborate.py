"""Elaboration: evaluate a network definition with its parameters into the IR.

Expressions and statements are compiled once into closures (expr.py, and
`_body` below) over the whitelisted builtins; statements build IR nodes while the current
tensor shape is tracked, so blocks can read `in.c` and residuals can check
that both sides agree. Every error names the source location and the path
(network › stage › block › op).
"""
from __future__ import annotations

import difflib
import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Callable

from pydantic import ValidationError

from archdsl.compiler import ir
from archdsl.language import ast as A
from archdsl.language.budget import Budget
from archdsl.language.bytecode import tiered, tiered_list
from archdsl.language.caches import drop_oldest, process_cache
from archdsl.language.errors import ArchError
from archdsl.language.expr import InputShape, Tensor, bind, compiled, in_shape, iterate, type_name
from archdsl.language.program import RESERVED, Program
from archdsl.language.types import KNOWN as KNOWN_TYPES
from archdsl.language.types import check_of, mismatch, unknown_types
from archdsl.ops import REGISTRY, PluginError, ShapeError, load_plugins



class _Sink:
    """Where statements put what they produce: IR nodes, or parallel branches.

    Nodes form a chain until the body names a value (`-> x`, `from x`, a join
    of named values); from then on the sink records which values each node
    takes (`wires`), and the body becomes a DAG (ir.Wiring)."""

    __slots__ = ("nodes", "branches", "what", "in_shape", "wires", "cur", "n_values", "n_inputs", "ranks")

    def __init__(self, nodes: list | None = None, branches: list | None = None, what: str = "",
                 in_shape: ir.Shape | None = None):
        self.nodes = nodes
        self.branches = branches
        self.what = what
        self.in_shape = in_shape  # the body's input
        self.wires: list[tuple[int, ...]] | None = None  # per node: the value ids it takes
        self.cur: tuple[int, ...] = ()  # the value so far (its ids), once wired
        self.n_values = 0
        self.n_inputs = 0
        self.ranks: dict[int, int] | None = None  # node index -> registration rank (`@n`)

    def add(self, node: ir.Node) -> None:
        self.nodes.append(node)
        if self.wires is not None:
            self.wires.append(self.cur)
            k = len(ir.shapes(node.out_shape))
            self.cur = tuple(range(self.n_values, self.n_values + k))
            self.n_values += k

    def wire(self) -> None:
        """Start recording the DAG; the nodes so far are a chain from the input."""
        if self.wires is not None:
            return
        k = len(ir.shapes(self.in_shape))
        self.n_inputs = self.n_values = k
        self.cur = tuple(range(k))
        nodes, self.nodes, self.wires = self.nodes, [], []
        for node in nodes:
            self.add(node)
        self.nodes = nodes

    def wiring(self) -> ir.Wiring | None:
        return None if self.wires is None else ir.Wiring(self.wires, self.n_inputs, self.cur)

    def rank_list(self) -> list[int] | None:
        made = self.nodes if self.nodes is not None else self.branches
        return None if self.ranks is None else [self.ranks.get(i, 0) for i in range(len(made))]

    def finish(self, seq: ir.Seq) -> None:
        """Give `seq` (whose children these are) its wiring and registration ranks."""
        if self.wires is not None or self.ranks is not None:  # else a chain in order: as made
            seq.wiring = self.wiring()
            seq.ranks = self.rank_list()


class Elaborator:
    def __init__(self, program: Program):
        self.program = program
        self.path: list[str] = []
        self.calls: list[A.Loc] = []  # the block calls being elaborated, outermost first
        self.depth = 0
        self.memo = _memo_of(program)
        self.cache: dict = {}  # compiled closures of the definition being run (Definition.compiled)
        self.in_chans: int | None = None  # replaces the channels input(c, h, w) declares
        self.after_section: Callable[[ir.Seq], None] | None = None  # called with each section made
        self.budget = Budget()  # the limits of the load in progress (archdsl.language.budget)

    def is_statement(self, name: str) -> bool:
        """Is `name` a block, network or op (used as a statement, not a function)?"""
        return name in self.program.definitions or name in REGISTRY

    # ------------------------------------------------------------ errors
    def error(self, message: str, loc: A.Loc | None, hint: str | None = None) -> ArchError:
        return ArchError(message, loc, self.path, hint, self.calls)

    # ------------------------------------------------------------ expressions
    def evaluate(self, e: A.Expr, env: dict) -> Any:
        return compiled(e, self.cache, tiered)(self, env)

    # ------------------------------------------------------------ calls
    def _bind_args(self, what: str, params: list[str], args: list[A.Arg], env: dict, loc: A.Loc,
                   required: set[str]) -> dict:
        values: dict[str, Any] = {}
        if len(args) <= len(params) and all(a.name is None for a in args):  # the common case
            for name, a in zip(params, args):
                values[name] = self.evaluate(a.value, env)
            if len(args) < len(params) and required:
                missing = [p for p in params if p in required and p not in values]
                if missing:
                    raise self.error(f"{what} is missing argument(s): {', '.join(missing)}", loc)
            return values
        positional = [a for a in args if a.name is None]
        if len(positional) > len(params):
            raise self.error(f"{what} takes at most {len(params)} positional argument(s), "
                             f"got {len(positional)}", positional[len(params)].loc)
        for name, a in zip(params, positional):
            values[name] = self.evaluate(a.value, env)
        for a in args:
            if a.name is None:
                continue
            if a.name not in params:
                close = difflib.get_close_matches(a.name, params, 1)
                raise self.error(f"{what} has no argument '{a.name}'", a.loc,
                                 f"did you mean '{close[0]}'?" if close else
                                 f"arguments: {', '.join(params) or 'none'}")
            if a.name in values:
                raise self.error(f"{what} got argument '{a.name}' twice", a.loc)
            values[a.name] = self.evaluate(a.value, env)
        missing = [p for p in params if p in required and p not in values]
        if missing:
            raise self.error(f"{what} is missing argument(s): {', '.join(missing)}", loc)
        return values

    def _op(self, stmt: A.Call, env: dict, shape: ir.Shape) -> ir.Op:
        fields, required = _signature(stmt.name)
        values = self._bind_args(stmt.name, fields, stmt.args, env, stmt.loc, required)
        return self._make_op(stmt, tuple(values), tuple(values.values()), shape)

    def _make_op(self, stmt: A.Call, names: tuple, vals: tuple | list, shape: ir.Shape) -> ir.Op:
        """Validate an op's arguments (`names` bound to `vals`) and apply its shape rule."""
        budget = self.budget
        budget.layers -= 1
        if budget.layers < 0:
            raise budget.too_many_layers(self, stmt.loc)
        key = (stmt.name, _values_key(names, vals))
        made = _OPS.get((key, shape))
        if made is not None:  # an equal op on an equal input: one node, as equal block calls share a body
            return made
        opdef = REGISTRY[stmt.name]
        if not opdef.joins and type(shape[0]) is tuple:
            raise self.error(f"'{stmt.name}' takes one tensor, but the value here is {len(shape)} tensors",
                             stmt.loc, "name them (-> (a, b)) and continue from one (from a { ... }), "
                             "or join them (add, mul, cat)")
        attrs = _LAYERS.get(key)
        values: dict = {}
        try:
            if attrs is None:
                values = dict(zip(names, vals))
                values.update(opdef.preset)
                attrs = opdef.attrs.model_validate(values)
                if len(_LAYERS) >= 16_384:
                    drop_oldest(_LAYERS)
                _LAYERS[key] = attrs
        except ValidationError as ve:
            fields = _signature(stmt.name)[0]
            err = ve.errors()[0]
            field = str(err["loc"][0]) if err["loc"] else ""
            loc = next((a.loc for a in stmt.args if a.name == field), None)
            if loc is None and field in fields:
                i = fields.index(field)
                pos = [a for a in stmt.args if a.name is None]
                loc = pos[i].loc if i < len(pos) else None
            shown = values.get(field, "?")
            raise self.error(f"{stmt.name}: argument '{field}' = {shown!r}: {err['msg'].lower()}",
                             loc or stmt.loc) from None
        try:
            out = opdef.shape(attrs, shape)
        except ShapeError as se:
            raise self.error(f"{stmt.name}: {se}", stmt.loc) from None
        op = ir.Op(shape, out, stmt.loc, tuple(self.path), opdef.canonical or opdef.name, attrs)
        if len(_OPS) >= 65_536:  # as many as a long search's recent blocks hold
            drop_oldest(_OPS)
        _OPS[key, shape] = op
        return op

    def _block(self, stmt: A.Call, env: dict, shape: ir.Shape, role: str | None, label: str) -> ir.Seq:
        d = self._block_def(stmt)
        params, required, _ = _params_of(d)
        values = self._bind_args(stmt.name, params, stmt.args, env, stmt.loc, required)
        return self._enter_block(stmt, d, tuple(values), tuple(values.values()), shape, role, label)

    def _block_def(self, stmt: A.Call) -> A.Definition:
        d = self.program.definitions[stmt.name]
        if d.kind != "block":
            raise self.error(f"'{stmt.name}' is a network, not a block", stmt.loc)
        return d

    def _enter_block(self, stmt: A.Call, d: A.Definition, names: tuple, vals: tuple | list, shape: ir.Shape,
                     role: str | None, label: str) -> ir.Seq:
        """Elaborate block `d` called with arguments `names` bound to `vals`."""
        # A block's body depends only on its arguments as given and its input
        # shape (its defaults are computed from them): an equal call shares the
        # first one's children (ir.Seq.is_block).
        key = (stmt.name, shape, _values_key(names, vals))
        kept = self.memo.get(key)
        if kept is not None:
            done = kept[0]
            self.budget.reuse(self, kept[2], stmt.loc)
            return ir.Seq(shape, done.out_shape, stmt.loc, (*self.path, label), done.children, role, stmt.name,
                          done.wiring, done.ranks)
        params, _, defaults = _params_of(d)
        layers_before = self.budget.enter(self, stmt.loc)
        self.path.append(label)
        self.calls.append(stmt.loc)
        self.depth += 1
        try:
            values = dict(zip(names, vals))
            inner: dict[str, Any] = {"$in": in_shape(shape)}
            if len(values) == len(params):
                inner.update(values)
            else:
                for name, default in defaults:  # defaults may refer to earlier parameters and to `in`
                    inner[name] = values[name] if name in values else default(self, inner)
            for name, check in _typed_of(d):
                wanted = check(self, inner, inner[name])
                if wanted is not None:  # the call's fault: named at the call, in the caller's frame
                    raise ArchError(f"{stmt.name}: {mismatch(name, inner[name], wanted)}",
                                    _arg_loc(stmt, params, name), self.path[:-1],
                                    None if name in values else "this is the parameter's default",
                                    self.calls[:-1])
            seq = ir.Seq(shape, shape, stmt.loc, tuple(self.path), ir.Body(), role, stmt.name)
            caller, self.cache = self.cache, d.compiled
            try:
                sink = _Sink(seq.children, in_shape=shape)
                seq.out_shape = self.run(d.body, inner, shape, sink)
                if sink.wires is not None or sink.ranks is not None:
                    sink.finish(seq)
            finally:
                self.cache = caller
            self.memo.put(key, seq, layers_before - self.budget.layers)
        except RecursionError:
            raise self.budget.too_deep(self, stmt.loc) from None
        finally:
            self.depth -= 1
            self.calls.pop()
            self.path.pop()
        return seq

    # ------------------------------------------------------------ statements
    def run(self, stmts: list[A.Stmt], env: dict, shape: ir.Shape, sink: _Sink) -> ir.Shape:
        """Execute statements from `shape`; return the shape after them."""
        for step in _body(stmts, self.cache):
            shape = step(self, env, shape, sink)
        return shape

    def _plugins(self, loc: A.Loc) -> None:
        try:
            load_plugins()
        except PluginError as e:
            raise self.error(e.message, loc) from None

    def _need_nodes(self, sink: _Sink, loc: A.Loc, what: str):
        if sink.nodes is None:
            raise self.error(f"{what} cannot stand directly inside {sink.what}; wrap it in branch {{ }}", loc)

    def _s_Let(self, s: A.Let, env, shape, sink):
        bind(self, env, s.target, self.evaluate(s.value, env), s.loc)
        return shape

    def _count(self, e: A.Expr, env) -> int:
        n = self.evaluate(e, env)
        if not isinstance(n, int) or isinstance(n, bool) or n < 0:
            raise self.error(f"repeat count must be a non-negative integer, got {n!r}", e.loc)
        self.budget.loop(self, n, e.loc)
        return n

    def _s_Call(self, s: A.Call, env, shape, sink):
        if s.name == "input":
            raise self.error("input(...) may only appear at the top of a network", s.loc)
        self._need_nodes(sink, s.loc, f"'{s.name}'")
        if s.name not in REGISTRY and s.name not in self.program.definitions:
            self._plugins(s.loc)  # an op of another package, perhaps
        if s.name in REGISTRY:
            self.path.append(s.name)
            try:
                node = self._join(s, env, shape, sink) if REGISTRY[s.name].joins else self._op(s, env, shape)
            finally:
                self.path.pop()
        elif s.name in self.program.definitions:
            role = "block" if sink.what == "stage" else None
            label = f"blocks.{len(sink.nodes)} ({s.name})" if role else s.name
            node = self._block(s, env, shape, role, label)
        else:
            known = list(REGISTRY) + list(self.program.definitions)
            close = difflib.get_close_matches(s.name, known, 1)
            raise self.error(f"unknown op or block '{s.name}'", s.loc,
                             f"did you mean '{close[0]}'?" if close else None)
        sink.add(node)
        return node.out_shape

    def _seq(self, stmts, env, shape, loc, what="") -> ir.Seq:
        seq = ir.Seq(shape, shape, loc, tuple(self.path), [])
        sink = _Sink(seq.children, what=what, in_shape=shape)
        seq.out_shape = self.run(stmts, dict(env), shape, sink)
        if sink.wires is not None or sink.ranks is not None:
            sink.finish(seq)
        return seq

    def _flags(self, kind: str, args: list[A.Arg], env, allowed: dict[str, Any], loc) -> dict:
        plan = self.cache.get(id(args), _NOT_YET)  # the argument list is the running definition's
        if plan is _NOT_YET:
            plan = _arg_plan(list(allowed), set(), args)
            plan = self.cache[id(args)] = None if plan is None else [(p, tiered(e)) for p, e in plan]
        if plan is None:  # they do not bind: _bind_args says why
            values = self._bind_args(kind, list(allowed), args, env, loc, set())
            return {k: values.get(k, v) for k, v in allowed.items()}
        flags = dict(allowed)
        for name, arg in plan:
            flags[name] = arg(self, env)
        return flags

    def _s_Residual(self, s: A.Residual, env, shape, sink):
        self._need_nodes(sink, s.loc, "residual")
        f = self._flags("residual", s.args, env, {"when": True, "drop_path": False, "gain": False,
                                                   "per_channel": False, "shortcut_first": False}, s.loc)
        gain = f["gain"]
        if gain is True or not isinstance(gain, (int, float)):  # false: no gain
            raise self.error(f"residual: gain is the scalar's initial value or false, not {gain!r}", s.loc)
        if not f["when"]:
            return self.run(s.body, env, shape, sink)
        self.path.append("residual")
        try:
            body = self._seq(s.body, env, shape, s.loc)
            short = self._seq(s.shortcut, env, shape, s.loc) if s.shortcut else None
            if short is not None and not short.children:
                short = None
            other = short.out_shape if short else shape
            if body.out_shape != other:
                raise self.error(
                    f"residual adds unequal shapes: body gives {_fmt(body.out_shape)}, "
                    f"{'shortcut' if short else 'identity'} gives {_fmt(other)}", s.loc,
                    None if short else "add a shortcut { ... } that matches the body's output, "
                    "or a when: condition")
        finally:
            self.path.pop()
        gain = None if gain is False else float(gain)
        sink.add(ir.Residual(shape, body.out_shape, s.loc, tuple(self.path), body, short,
                                      bool(f["drop_path"]), gain, bool(f["per_channel"]) and gain is not None,
                                      bool(f["shortcut_first"])))
        return body.out_shape

    def _s_Branch(self, s: A.Branch, env, shape, sink):
        if sink.branches is None:
            raise self.error("branch { } may only appear inside parallel or split", s.loc)
        # The parent elaborates branch bodies, with the env as it is here.
        sink.branches.append(_Bound(s, dict(env)))
        return shape

    def _s_Parallel(self, s: A.Parallel, env, shape, sink):
        self._need_nodes(sink, s.loc, "parallel")
        if s.join not in ("sum", "concat"):
            raise self.error(f"parallel joins by 'sum' or 'concat', not '{s.join}'", s.loc)
        seqs, ranks = self._bound_branches(s, env, shape, "parallel")
        outs = [b.out_shape for b in seqs]
        if s.join == "sum":
            if any(o != outs[0] for o in outs):
                raise self.error("parallel sum of unequal shapes: " + ", ".join(_fmt(o) for o in outs), s.loc)
            out = outs[0]
        else:
            out = self._concat_shape(outs, s.loc)
        sink.add(ir.Parallel(shape, out, s.loc, tuple(self.path), s.join, seqs, ranks))
        return out

    def _concat_shape(self, outs, loc) -> ir.Shape:
        if any(o[1:] != outs[0][1:] for o in outs):
            raise self.error("concat of unequal spatial sizes: " + ", ".join(_fmt(o) for o in outs), loc)
        return (sum(o[0] for o in outs), outs[0][1], outs[0][2])

    def _bound_branches(self, s, env, shape, what, inputs=None) -> tuple[list[ir.Seq], list[int] | None]:
        """The branches' sequences, and their registration ranks (None: in order)."""
        collected: list[_Bound] = []
        branch_sink = _Sink(branches=collected, what=what)
        self.run(s.body, dict(env), shape, branch_sink)
        if not collected:
            raise self.error(f"{what} needs at least one branch {{ }}", s.loc)
        if inputs is not None and len(inputs) != len(collected):
            raise self.error(f"split into {len(inputs)} parts has {len(collected)} branches", s.loc)
        seqs = []
        for i, b in enumerate(collected):
            self.path.append(f"branch {i}")
            try:
                seqs.append(self._seq(b.branch.body, b.env, inputs[i] if inputs else shape, b.branch.loc))
            finally:
                self.path.pop()
        return seqs, branch_sink.rank_list()

    def _s_Split(self, s: A.Split, env, shape, sink):
        self._need_nodes(sink, s.loc, "split")
        f = self._flags("split", s.args, env, {"sizes": 2}, s.loc)
        sizes = f["sizes"]
        c = shape[0]
        if isinstance(sizes, int) and not isinstance(sizes, bool):
            if sizes <= 0 or c % sizes:
                raise self.error(f"cannot split {c} channels into {sizes} equal parts", s.loc)
            sizes = [c // sizes] * sizes
        if (not isinstance(sizes, (list, tuple)) or not all(isinstance(x, int) and x > 0 for x in sizes)
                or sum(sizes) != c):
            raise self.error(f"split sizes {sizes!r} must be positive integers summing to the "
                             f"input channels ({c})", s.loc)
        seqs, ranks = self._bound_branches(s, env, shape, "split", [(x, shape[1], shape[2]) for x in sizes])
        out = self._concat_shape([b.out_shape for b in seqs], s.loc)
        sink.add(ir.Split(shape, out, s.loc, tuple(self.path), list(sizes), seqs, ranks))
        return out

    def _s_Gate(self, s: A.Gate, env, shape, sink):
        self._need_nodes(sink, s.loc, "gate")
        self._flags("gate", s.args, env, {}, s.loc)
        self.path.append("gate")
        try:
            body = self._seq(s.body, env, shape, s.loc)
        finally:
            self.path.pop()
        g = body.out_shape
        if g[0] != shape[0] or g[1:] not in ((1, 1), shape[1:]):
            raise self.error(f"gate body gives {_fmt(g)}, which cannot scale an input of {_fmt(shape)}",
                             s.loc, "a gate's body must give (C, 1, 1) or the input shape")
        sink.add(ir.Gate(shape, shape, s.loc, tuple(self.path), body))
        return shape

    # ------------------------------------------------------------ named values
    def _s_NameValue(self, s: A.NameValue, env, shape, sink):
        self._need_nodes(sink, s.loc, "-> (naming a value)")
        sink.wire()
        named = [Tensor(c, h, w, vid, sink) for vid, (c, h, w) in zip(sink.cur, ir.shapes(shape))]
        bind(self, env, s.target, tuple(named) if ir.is_multi(shape) else named[0], s.loc)
        return shape

    def _switch(self, value, sink: _Sink, loc: A.Loc) -> ir.Shape:
        """Make `value` (a named tensor, or a tuple or list of them) the value so far."""
        tensors: list[Tensor] = []
        todo = [value]
        while todo:
            v = todo.pop()
            if isinstance(v, Tensor):
                tensors.append(v)
            elif isinstance(v, (list, tuple)) and v:
                todo.extend(reversed(v))
            else:
                raise self.error(f"expected a named tensor (or several), got a {type_name(v)}", loc,
                                 "name a value with -> x after the statements that make it")
        for t in tensors:
            if t.owner is not sink:
                raise self.error("this tensor was named in another body (a block, section, branch or "
                                 "residual); a named value is used in the body that names it", loc)
        sink.wire()
        sink.cur = tuple(t.vid for t in tensors)
        return tensors[0].shape if len(tensors) == 1 else tuple(t.shape for t in tensors)

    def _s_Order(self, s: A.Order, env, shape, sink):
        made = sink.nodes if sink.nodes is not None else sink.branches  # a layer, or a branch
        if not made:
            raise self.error("@n follows the layer (or branch) whose registration rank it sets", s.loc)
        if type(s.rank) is not int:
            raise self.error(f"a registration rank is a whole number, not {s.rank!r}", s.loc)
        if sink.ranks is None:
            sink.ranks = {}
        sink.ranks[len(made) - 1] = s.rank
        return shape

    def _s_From(self, s: A.From, env, shape, sink):
        self._need_nodes(sink, s.loc, "from")
        shape = self._switch(self.evaluate(s.value, env), sink, s.value.loc)
        if s.body is None:
            return shape
        outer = env.get("$in")
        env["$in"] = in_shape(shape)  # `in` in the body: the value it starts from
        try:
            return self.run(s.body, env, shape, sink)
        finally:
            env["$in"] = outer

    def _join(self, s: A.Call, env, shape, sink) -> ir.Shape:
        """A join (add, mul, cat): its leading tensor arguments, if any, are its inputs."""
        args = list(s.args)
        inputs = []
        while args and args[0].name is None:
            v = self.evaluate(args[0].value, env)
            if not (isinstance(v, Tensor) or (isinstance(v, (list, tuple)) and v
                                              and all(isinstance(x, Tensor) for x in v))):
                break
            inputs.append(v)
            args.pop(0)
        if inputs:
            shape = self._switch(inputs, sink, s.args[0].loc)
        fields, required = _signature(s.name)
        values = self._bind_args(s.name, fields, args, env, s.loc, required)
        return self._make_op(s, tuple(values), tuple(values.values()), shape)

    def _s_Section(self, s: A.Section, env, shape, sink):
        raise self.error(f"'{s.kind}' sections may only appear at the top level of a network", s.loc)

    # ------------------------------------------------------------ networks
    def network(self, d: A.Definition, params: dict[str, Any]) -> ir.Seq:
        """Elaborate network `d` with `params` (config-level errors are api.check_params')."""
        names = [p.name for p in d.params]
        for k in params:
            if k not in names:
                close = difflib.get_close_matches(k, names, 1)
                raise ArchError(f"network '{d.name}' has no parameter '{k}'", d.loc,
                                hint=(f"did you mean '{close[0]}'? " if close else "")
                                + f"parameters: {', '.join(names)}")
        env = self.bind_network(d, params)
        net = ir.Seq((0, 0, 0), (0, 0, 0), d.loc, (d.name,), [], "network", d.name)
        stages = ir.Seq((0, 0, 0), (0, 0, 0), d.loc, (d.name, "stages"), [], "stages")
        state = {"shape": None, "stem": None, "head": None}
        self._network_body(d.body, env, net, stages, state)
        if state["shape"] is None:
            raise ArchError(f"network '{d.name}' never declares input(c, h, w)", d.loc)
        stem = state["stem"] or ir.Seq(net.in_shape, net.in_shape, d.loc, (d.name, "stem"), [], "stem")
        stages.in_shape = stem.out_shape
        stages.out_shape = stages.children[-1].out_shape if stages.children else stem.out_shape
        head = state["head"] or ir.Seq(stages.out_shape, stages.out_shape, d.loc, (d.name, "head"), [], "head")
        net.children = [stem, stages, head]
        net.out_shape = head.out_shape
        return net

    def bind_network(self, d: A.Definition, params: dict[str, Any]) -> dict[str, Any]:
        """Network `d`'s parameters bound to `params` (defaults computed, types
        checked): the environment its body starts from."""
        env: dict[str, Any] = {}
        self.path = [d.name]
        self.cache = d.compiled
        for p in d.params:
            if p.name in params:
                env[p.name] = params[p.name]
            elif p.default is not None:
                env[p.name] = self.evaluate(p.default, env)
            else:
                raise ArchError(f"network '{d.name}' needs parameter '{p.name}'", p.loc,
                                hint=f"set params.{p.name} in the config")
        for name, check in _typed_of(d):  # with every parameter bound, as a block's are
            wanted = check(self, env, env[name])
            if wanted is not None:
                p = next(p for p in d.params if p.name == name)
                raise ParamError(f"network '{d.name}': {mismatch(name, env[name], wanted)}",
                                 p.loc, name, name in params)
        return env

    def _network_body(self, stmts, env, net, stages, state):
        for s in stmts:
            if isinstance(s, A.Let):
                self._s_Let(s, env, None, None)
            elif isinstance(s, A.If):
                self._network_body(s.then if self.evaluate(s.test, env) else s.other, env, net, stages, state)
            elif isinstance(s, A.For):
                for item in iterate(self, self.evaluate(s.iterable, env), s.iterable.loc):
                    bind(self, env, s.target, item, s.loc)
                    self._network_body(s.body, env, net, stages, state)
            elif isinstance(s, A.Repeat):
                for i in range(self._count(s.count, env)):
                    if s.var is not None:
                        env[s.var] = i
                    self._network_body(s.body, env, net, stages, state)
            elif isinstance(s, A.Call) and s.name == "input":
                if state["shape"] is not None or stages.children or state["stem"]:
                    raise self.error("input(...) must come once, before any section", s.loc)
                v = self._bind_args("input", ["c", "h", "w"], s.args, env, s.loc, {"c", "h", "w"})
                dims = (self.in_chans or v["c"], v["h"], v["w"])
                if not all(isinstance(x, int) and not isinstance(x, bool) and x > 0 for x in dims):
                    raise self.error(f"input dimensions must be positive integers, got {dims}", s.loc)
                state["shape"] = dims
                net.in_shape = dims
                env["$in"] = in_shape(dims)
            elif isinstance(s, A.Section):
                self._section(s, env, net, stages, state)
            else:
                raise self.error("a network body holds input(...), let, if, for and stem/stage/head "
                                 "sections; put layers inside a section", s.loc)

    def _section(self, s: A.Section, env, net, stages, state):
        if state["shape"] is None:
            raise self.error(f"{s.kind} comes before input(c, h, w)", s.loc)
        if state["head"] is not None:
            raise self.error(f"{s.kind} after head: the head must be the last section", s.loc)
        if s.kind == "stem" and (state["stem"] is not None or stages.children):
            raise self.error("stem must come once, before the stages", s.loc)
        shape = state["shape"]
        # A section, like a block body, depends only on its input shape and the
        # values of the names it reads: an equal one is taken from the memo
        # (a search's networks share about half their stages), its layers and
        # steps counted again as its first elaboration counted them.
        free = self.cache.get(("reads", id(s)))
        if free is None:
            free = self.cache[("reads", id(s))] = tuple(sorted(A.names_read([s.count, s.body])))
        bound = tuple([n for n in free if n in env])  # (the others it binds itself before reading)
        key = (id(s), len(stages.children), shape, _values_key(bound, [env[n] for n in bound]))
        budget = self.budget
        try:
            kept = self.memo.get_section(key)
        except TypeError:  # a value that does not hash: made anew
            kept = key = None
        if kept is not None and budget.layers >= kept[1] and budget.steps >= kept[2]:
            seq = kept[0]
            budget.layers -= kept[1]
            budget.steps -= kept[2]
        else:  # (past a limit: made anew, which says where)
            layers, steps = budget.layers, budget.steps
            seq = self._section_seq(s, env, shape, stages)
            if key is not None:
                self.memo.put_section(key, seq, layers - budget.layers, steps - budget.steps)
        shape = seq.out_shape
        state["shape"] = shape
        env["$in"] = in_shape(shape)
        if self.after_section is not None:  # a search's bounds: it may stop the network here
            self.after_section(seq)
        if s.kind == "stem":
            state["stem"] = seq
        elif s.kind == "stage":
            stages.children.append(seq)
        else:
            state["head"] = seq

    def _section_seq(self, s: A.Section, env, shape: ir.Shape, stages) -> ir.Seq:
        """Section `s` elaborated from `shape`."""
        label = f"stages.{len(stages.children)}" if s.kind == "stage" else s.kind
        self.path.append(label)
        seq = ir.Seq(shape, shape, s.loc, tuple(self.path), ir.Body(), s.kind)  # (its sums kept on it: cost.py)
        try:
            sink = _Sink(seq.children, what=s.kind, in_shape=shape)
            inner = dict(env)
            if s.count is not None:
                for i in range(self._count(s.count, env)):
                    if s.var is not None:
                        inner[s.var] = i
                    inner["$in"] = in_shape(shape)  # each repetition's own input
                    shape = self.run(s.body, inner, shape, sink)
            else:
                shape = self.run(s.body, inner, shape, sink)
        finally:
            self.path.pop()
        seq.out_shape = shape
        sink.finish(seq)
        if s.kind == "head" and (seq.wiring is not None or seq.ranks is not None):
            raise self.error("the head is a chain of layers (timm's forward_head splits it at its pool); "
                             "name values inside a block or a stage", s.loc)
        return seq


@dataclass
class _Bound:
    """A branch with the environment it was reached in (loop variables included)."""

    branch: A.Branch
    env: dict


# Layers by (op, argument values): the validated (frozen) attributes, which
# pydantic checks once per distinct layer; and the op made of a layer on an
# input shape (an equal op on an equal input is one node; nodes are never
# mutated, passes copy what they change). Ops are keyed by layer and shape
# together: a layer without arguments (bn, relu) meets many shapes.
_LAYERS: dict[tuple, Any] = process_cache("elaborated")
_OPS: dict[tuple, ir.Op] = process_cache("elaborated")


_NOT_YET = object()  # not in a cache yet (whose values may be None)
# Types whose values `==` and `hash` tell apart exactly once the type is known
# (bar -0.0): a memo key may hold them as they are.
_PLAIN_TYPES = frozenset({int, float, bool, str, type(None), InputShape})


def _values_key(names: tuple, vals: tuple | list) -> tuple:
    """A memo key for arguments `names` bound to `vals`, telling apart what
    `==` does not (see _frozen); the types, in C, where that is enough. Another
    argument order makes another key: only less sharing."""
    types = tuple(map(type, vals))
    floats = _FLOATS_AT.get(types, _NOT_YET)
    if floats is _NOT_YET:
        if len(_FLOATS_AT) >= 4096:
            _FLOATS_AT.clear()
        floats = _FLOATS_AT[types] = (tuple([i for i, t in enumerate(types) if t is float])
                                      if _PLAIN_TYPES.issuperset(types) else None)
    if floats is not None:  # plain values: equal keys unless a float is -0.0 (== 0.0)
        for i in floats:
            v = vals[i]
            if v == 0 and math.copysign(1.0, v) < 0:
                break
        else:
            return (names, types, tuple(vals))
    return (names, tuple([_frozen(v) for v in vals]))


# Per tuple of argument types: where its floats are, when every type is plain
# (None: not all plain). A network's calls have few such tuples.
_FLOATS_AT: dict[tuple, tuple | None] = {}


def _frozen(v: Any) -> Any:
    """A hashable stand-in for a spec value, telling apart what `==` does not
    (1, 1.0 and true; -0.0 and 0.0; a list and a tuple)."""
    t = type(v)
    if t is float:
        return (t, v) if v else (t, repr(v))  # -0.0 == 0.0
    if t is list or t is tuple:
        return (t, tuple([_frozen(x) for x in v]))
    return (t, v)


def _typed_of(d: A.Definition) -> list[tuple[str, Any]]:
    """(name, check) of a definition's typed parameters (kept in d.compiled)."""
    key = ("typed", id(d))
    hit = d.compiled.get(key)
    if hit is None:
        hit = d.compiled[key] = [(p.name, check_of(p.type, d.compiled)) for p in d.params if p.type is not None]
    return hit


def _arg_loc(stmt: A.Call, params: list[str], name: str) -> A.Loc:
    """Where a call gives parameter `name` (the call itself when a default does)."""
    positional = [a for a in stmt.args if a.name is None]
    i = params.index(name)
    if i < len(positional):
        return positional[i].loc
    return next((a.loc for a in stmt.args if a.name == name), stmt.loc)


class ParamError(ArchError):
    """A network parameter's value does not fit its declared type; `from_config`
    when the value came from the config (the API then names the key)."""

    def __init__(self, message: str, loc: A.Loc, param: str, from_config: bool):
        super().__init__(message, loc)
        self.param = param
        self.from_config = from_config


def _params_of(d: A.Definition) -> tuple[list[str], set[str], list[tuple[str, Any]]]:
    """A block's parameter names, the required ones, and (name, compiled
    default) in order (kept in d.compiled)."""
    cache = d.compiled
    hit = cache.get(id(d))
    if hit is None:
        hit = cache[id(d)] = ([p.name for p in d.params], {p.name for p in d.params if p.default is None},
                              [(p.name, None if p.default is None else tiered(p.default)) for p in d.params])
    return hit


class _BlockMemo:
    """Elaborated block bodies of one program by (block, input shape, argument
    values), kept across elaborations (a sweep's configs share most blocks),
    each with its layer count (a reused body's layers count again: Budget.reuse).
    The least recently used go first when it is full: a search's common
    bodies (its narrow early stages) stay while its rare ones come and go."""

    # A search's configs share most blocks with recent ones. ~4 KB a body (its
    # ops are shared): at most ~130 MB. Measured on the mbnet space
    # (bench/design_space_cost.py's steady state, 7,000 points after 5,000):
    # bodies elaborated again after being dropped fell from 2.35 to 0.11 a
    # point against 16,384, first in first out.
    LIMIT = 32_768

    def __init__(self, definitions: tuple[A.Definition, ...]):
        self.definitions = definitions  # what the bodies came from (and what keeps their ids)
        self.bodies: dict[tuple, list] = {}  # key -> [body's Seq, last use, layers]
        self.clock = 0  # counts bodies stored: a use is stamped with it (one lookup a hit)
        # Sections (stem, stage, head) by (statement, index, input shape, the values
        # of the names they read): (Seq, layers, steps), the oldest dropped first.
        self.sections: dict[tuple, tuple] = {}

    def get(self, key: tuple) -> list | None:
        """[Seq, last use, layers] of the body stored under `key`, or None."""
        kept = self.bodies.get(key)
        if kept is not None:
            kept[1] = self.clock
        return kept

    def put(self, key: tuple, seq: ir.Seq, layers: int) -> None:
        bodies = self.bodies
        if len(bodies) >= self.LIMIT:  # the least recently used quarter goes
            by_use = sorted(bodies, key=lambda k: bodies[k][1])
            for k in by_use[:len(by_use) // 4]:
                del bodies[k]
        self.clock += 1
        bodies[key] = [seq, self.clock, layers]

    SECTIONS = 8_192  # a search's stages: most repeat within a few thousand networks

    def get_section(self, key: tuple) -> tuple | None:
        """(Seq, layers, steps) of the section stored under `key`, or None."""
        return self.sections.get(key)

    def put_section(self, key: tuple, seq: ir.Seq, layers: int, steps: int) -> None:
        if len(self.sections) >= self.SECTIONS:
            drop_oldest(self.sections)
        self.sections[key] = (seq, layers, steps)


# The memos of the programs elaborated last, by the ids of their definitions:
# loading a recipe again makes a new Program from the same parsed definitions
# (while its files are unchanged), which elaborates the same. Each memo holds
# its definitions, so the ids are not reused while it is here.
_MEMOS: dict[tuple, _BlockMemo] = process_cache("elaborated")
_NAMES_CHECKED: dict[tuple, tuple] = process_cache("read")  # programs check_names passed


def forget_blocks() -> None:
    """Drop every elaborated block body kept for reuse (benchmarks use this to
    time a config never elaborated before)."""
    _MEMOS.clear()


def check_names(program: Program) -> None:
    """A definition may not take the name of a primitive op (nor `input`), and
    its parameters' types must name known types."""
    for d in program.definitions.values():
        if d.name in REGISTRY or d.name in RESERVED:
            raise ArchError(f"'{d.name}' is a primitive op and cannot be redefined", d.loc)
        for p in d.params:
            for bad in unknown_types(p.type) if p.type is not None else ():
                if bad.name in KNOWN_TYPES.split(", "):
                    raise ArchError(f"only list takes an element type, not {bad.name}", bad.loc)
                raise ArchError(f"unknown type '{bad.name}'", bad.loc,
                                f"types: {KNOWN_TYPES}, or literal values joined by |")


def _memo_of(program: Program) -> _BlockMemo:
    definitions = tuple(program.definitions.values())
    key = tuple(map(id, definitions))
    memo = _MEMOS.get(key)
    if memo is None:
        if key not in _NAMES_CHECKED:  # a property of the parsed files: checked once per program
            check_names(program)
            _NAMES_CHECKED[key] = definitions  # (holding them keeps their ids from being reused)
        if len(_MEMOS) >= 8:
            _MEMOS.pop(next(iter(_MEMOS)))
        memo = _MEMOS[key] = _BlockMemo(definitions)
    return memo


# ------------------------------------------------------------ compiled statements
# Each statement list is compiled once into a tuple of steps, closures
# `step(elaborator, env, shape, sink) -> shape`, the way expr.py compiles
# expressions: loops, lets and calls run without a dispatch on the node type,
# and a call's arguments are matched to parameter names once, not per call.
# Structural forms (residual, parallel, ...) run the Elaborator's methods.
Step = Callable[[Elaborator, dict, ir.Shape, _Sink], ir.Shape]


def _body(stmts: list[A.Stmt], cache: dict) -> tuple[Step, ...]:
    """The steps of `stmts`, kept in `cache` (their Definition.compiled)."""
    steps = cache.get(id(stmts))
    if steps is None:
        steps = cache[id(stmts)] = _steps(stmts)
    return steps


def _steps(stmts: list[A.Stmt]) -> tuple[Step, ...]:
    return tuple([_STEP.get(type(s), _structural)(s) for s in stmts])


def _structural(s: A.Stmt) -> Step:
    method = getattr(Elaborator, "_s_" + type(s).__name__)
    return lambda el, env, shape, sink: method(el, s, env, shape, sink)


def _let(s: A.Let) -> Step:
    value = tiered(s.value)
    if type(s.target) is str:
        name = s.target

        def let(el, env, shape, sink):
            env[name] = value(el, env)
            return shape
        return let

    def let_unpack(el, env, shape, sink):
        bind(el, env, s.target, value(el, env), s.loc)
        return shape
    return let_unpack


def _if(s: A.If) -> Step:
    test = tiered(s.test)
    branches: dict[bool, tuple[Step, ...]] = {}  # compiled when first taken: many never are

    def if_(el, env, shape, sink):
        taken = bool(test(el, env))
        steps = branches.get(taken)
        if steps is None:
            steps = branches[taken] = _steps(s.then if taken else s.other)
        for step in steps:
            shape = step(el, env, shape, sink)
        return shape
    return if_


def _for(s: A.For) -> Step:
    iterable, body = tiered(s.iterable), _steps(s.body)

    def for_(el, env, shape, sink):
        items = iterate(el, iterable(el, env), s.iterable.loc)
        return _iterations(el, env, shape, sink, body,
                           (bind(el, env, s.target, item, s.loc) for item in items))
    return for_


def _iterations(el, env: dict, shape, sink, body: tuple, each) -> ir.Shape:
    """Run `body` once for each step of `each` (which binds the loop's
    variables), `in` being each iteration's input; `in` is restored after."""
    outer = env.get("$in")
    for _ in each:
        env["$in"] = in_shape(shape)
        for step in body:
            shape = step(el, env, shape, sink)
    env["$in"] = outer
    return shape


def _repeat(s: A.Repeat) -> Step:
    body, var = _steps(s.body), s.var

    def repeat(el, env, shape, sink):
        count = range(el._count(s.count, env))
        return _iterations(el, env, shape, sink, body,
                           count if var is None else (env.__setitem__(var, i) for i in count))
    return repeat


def _arg_plan(params: list[str], required: set[str], args: list[A.Arg]) -> list | None:
    """(parameter, argument expression) in evaluation order, when the arguments
    bind cleanly; None when they do not (Elaborator._bind_args says why)."""
    positional = [a for a in args if a.name is None]
    named = [a for a in args if a.name is not None]
    bound = params[:len(positional)]
    names = bound + [a.name for a in named]
    if (len(positional) > len(params) or any(a.name not in params for a in named)
            or len(set(names)) != len(names) or not required <= set(names)):
        return None
    return [(p, a.value) for p, a in zip(bound + [a.name for a in named], positional + named)]


def _call(s: A.Call) -> Step:
    name, what = s.name, f"'{s.name}'"
    generic = _structural(s)  # input(...), unknown names and bad arguments: it raises
    if name == "input":
        return generic
    if name in REGISTRY:
        if REGISTRY[name].joins:  # its arguments may be tensors
            return generic
        plan = _arg_plan(*_signature(name), s.args)
        if plan is None:
            return generic
        names, args = tuple([p for p, _ in plan]), tiered_list([e for _, e in plan])

        def op(el, env, shape, sink):
            nodes = sink.nodes
            if nodes is None:
                el._need_nodes(sink, s.loc, what)
            el.path.append(name)
            try:
                node = el._make_op(s, names, args(el, env), shape)
            finally:
                el.path.pop()
            if sink.wires is None:  # sink.add, inlined: the hottest step
                nodes.append(node)
            else:
                sink.add(node)
            return node.out_shape
        return op

    plans: dict[int, tuple] = {}  # by the definition called (programs may differ)

    def block(el, env, shape, sink):
        nodes = sink.nodes
        d = el.program.definitions.get(name)
        if nodes is None or d is None:
            return generic(el, env, shape, sink)
        hit = plans.get(id(d))
        if hit is None or hit[0] is not d:
            if len(plans) >= 64:
                plans.clear()
            params, required, _ = _params_of(d)
            plan = _arg_plan(params, required, s.args)
            hit = plans[id(d)] = (d, None, None) if plan is None else (d, tuple([p for p, _ in plan]),
                                                                  tiered_list([e for _, e in plan]))
        _, names, args = hit
        if names is None or d.kind != "block":
            return generic(el, env, shape, sink)  # it raises, or binds the arguments the long way
        vals = args(el, env)
        role = "block" if sink.what == "stage" else None
        label = f"blocks.{len(nodes)} ({name})" if role else name
        node = el._enter_block(s, d, names, vals, shape, role, label)
        if sink.wires is None:
            nodes.append(node)
        else:
            sink.add(node)
        return node.out_shape
    return block


_STEP: dict[type, Callable[[Any], Step]] = {A.Let: _let, A.If: _if, A.For: _for, A.Repeat: _repeat,
                                           A.Call: _call}


@lru_cache(maxsize=None)
def _signature(op: str) -> tuple[list[str], set[str]]:
    """An op's argument names (in positional order) and the required ones."""
    opdef = REGISTRY[op]
    preset = dict(opdef.preset)
    fields = {k: f for k, f in opdef.attrs.model_fields.items() if k not in preset}
    return list(fields), {k for k, f in fields.items() if f.is_required()}


def _fmt(shape: ir.Shape) -> str:
    return " + ".join("(%d, %d, %d)" % s for s in ir.shapes(shape))


def elaborate(program: Program, params: dict[str, Any], network: str | None = None,
              in_chans: int | None = None, after_section: Callable[[ir.Seq], None] | None = None) -> ir.Seq:
    """in_chans: input channels in place of those the network's input(c, h, w) declares;
    after_section: called with each stem, stage and head as it is made (it may raise to
    stop: a search stops a network whose cost is already past a bound)."""
    d = program.network(network)
    e = Elaborator(program)
    e.in_chans = in_chans
    e.after_section = after_section
    try:
        return e.network(d, params)
    except RecursionError:
        raise e.budget.too_deep(e, d.loc) from None
