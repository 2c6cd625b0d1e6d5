"""Elaboration runs specs compiled into closures (archdsl.language.expr, elaborate._body):
once per definition, kept on it, with the interpreter's semantics and errors."""
import gc
import pickle

import pytest

from archdsl.compiler import ir
from archdsl.compiler.elaborate import elaborate, forget_blocks
from archdsl.language import program as P
from archdsl.language.errors import ArchError

SPEC = """
block unit(c, stride = 1, k = 3) {
  residual(when: stride == 1 and in.c == c) { conv(c, k, stride: stride) bn relu }
}
block named_args(c) {
  unit(stride: 2, c: c)
  unit(c, k: 1)
}
network t(res = 16, bad = false) {
  input(4, res, res)
  stage {
    named_args(8)
    if bad { conv(8, 3, bogus: 1) }
    for (i, w) in enumerate([8, 16]) { unit(w, stride: 1 + i) }
  }
  head { global_pool linear(10) }
}
"""


@pytest.fixture
def program(program_of):
    return program_of(SPEC, "compiled.arch")


def shapes(spec):
    return [(name, type(n).__name__, n.in_shape, n.out_shape) for name, n in ir.named(spec)]


def test_each_definition_is_compiled_once_and_keeps_its_closures(program):
    first = shapes(elaborate(program, {}))
    sizes = {name: len(d.compiled) for name, d in program.definitions.items()}
    assert all(sizes.values()), sizes  # every definition ran, so each holds closures
    forget_blocks()
    assert shapes(elaborate(program, {"res": 16})) == first
    assert {name: len(d.compiled) for name, d in program.definitions.items()} == sizes


def test_named_arguments_in_any_order_bind_like_positional_ones(program):
    spec = elaborate(program, {})
    stage = spec.children[1].children[0]
    block = stage.children[0]  # named_args(8): unit(stride: 2, c: 8), unit(8, k: 1)
    convs = [n for n in ir.ops(block) if n.kind == "conv"]
    assert [(c.attrs.out, c.attrs.k, c.attrs.stride) for c in convs] == [(8, 3, 2), (8, 1, 1)]
    assert block.out_shape == (8, 8, 8)


def test_a_bad_call_fails_only_when_it_runs_and_names_its_place(program):
    elaborate(program, {})  # the bad call sits in an untaken branch
    with pytest.raises(ArchError) as e:
        elaborate(program, {"bad": True})
    assert "no argument 'bogus'" in str(e.value)
    line = next(i for i, text in enumerate(SPEC.splitlines(), 1) if "bogus" in text)
    assert (e.value.loc.line, e.value.loc.column) == (line, SPEC.splitlines()[line - 1].index("bogus") + 1)


def test_a_definition_pickles_without_its_closures_and_elaborates_the_same(program):
    spec = shapes(elaborate(program, {}))
    copy = pickle.loads(pickle.dumps(program))
    assert all(d.compiled == {} for d in copy.definitions.values())
    forget_blocks()
    assert shapes(elaborate(copy, {})) == spec


@pytest.mark.parametrize("promote", [None, 1])
def test_a_dropped_tree_leaves_no_reference_cycles(program, promote, monkeypatch):
    """Also with every expression compiled to bytecode (language/bytecode.py)."""
    if promote:
        from archdsl.language import bytecode
        monkeypatch.setattr(bytecode, "PROMOTE_AFTER", promote)
    gc.collect()
    was = gc.isenabled()
    gc.disable()
    try:
        elaborate(program, {})
        forget_blocks()  # the block memo holds the program,
        P._CACHE.clear()  # and the in-process parse cache its files
        del program
        assert gc.collect() == 0  # refcounting freed it all: nothing cyclic was left
    finally:
        if was:
            gc.enable()
