"""Language v2: typed parameters, spec tracebacks, `in` in every context,
nested unpacking and `repeat` without a counter."""
import subprocess
import sys
from pathlib import Path

import pytest

import archdsl
from archdsl.compiler.elaborate import elaborate
from archdsl.language.errors import ArchError, ConfigError
from archdsl.language.program import load_program

ROOT = Path(__file__).resolve().parent.parent


def build(tmp_path, text, params=None, name="net.arch"):
    f = tmp_path / name
    f.write_text(text)
    return elaborate(load_program(f), params or {})


def stage_channels(spec):
    return [s.out_shape[0] for s in spec.children[1].children]


def error_of(tmp_path, text, params=None, name="net.arch") -> ArchError:
    with pytest.raises(ArchError) as info:
        build(tmp_path, text, params, name)
    return info.value


# ---------------------------------------------------------------- `in` everywhere
def test_in_is_each_repetitions_input_in_a_stage_repeat(tmp_path):
    spec = build(tmp_path, "network n() {\n  input(16, 8, 8)\n  stage repeat 2 as j { conv(in.c * 2, 3) }\n}\n")
    stage = spec.children[1].children[0]
    assert [op.out_shape[0] for op in stage.children] == [32, 64]


def test_in_is_each_iterations_input_in_repeat_and_for(tmp_path):
    spec = build(tmp_path, """
network n() {
  input(4, 8, 8)
  stage { repeat 3 { conv(in.c * 2, 1) } }
  stage { for k in [1, 3] { conv(in.c + k, k) } }
  stage { conv(in.c + 1, 1) conv(in.c + 1, 1) }
}
""")
    # 4 -> 8 -> 16 -> 32; then 32+1, 33+3; a plain section keeps its own input
    assert stage_channels(spec) == [32, 36, 37]
    assert [op.out_shape[0] for op in spec.children[1].children[1].children] == [33, 36]


def test_in_inside_a_block_is_still_the_blocks_input(tmp_path):
    # A block's `in` is its input, even after layers and inside a residual
    # (what every bundled block relies on).
    spec = build(tmp_path, """
block b(out) {
  conv(out, 1)
  conv(in.c, 1)
  repeat 2 { conv(in.c * 2, 1) }
}
network n() { input(3, 8, 8) stage { b(5) } }
""")
    block = spec.children[1].children[0].children[0]
    assert [op.out_shape[0] for op in block.children] == [5, 3, 6, 12]


# ---------------------------------------------------------------- small gaps
def test_nested_tuple_unpacking_in_for_let_and_comprehensions(tmp_path):
    spec = build(tmp_path, """
network n() {
  input(1, 8, 8)
  let (a, (b, c)) = (1, (2, 3))
  let ws = [x * y for (x, (y, _)) in [(2, (3, 0)), (4, (5, 0))]]
  stage { for (i, (w, k)) in enumerate([(a + b + c, 1), (ws[1], 3)]) { conv(w + i, k) } }
}
""")
    assert [op.out_shape[0] for op in spec.children[1].children[0].children] == [6, 21]


def test_unpacking_a_mismatched_shape_is_located(tmp_path):
    e = error_of(tmp_path, "network n() {\n  input(1, 8, 8)\n  let (a, (b, c)) = (1, 2)\n}\n")
    assert e.loc.line == 3 and "cannot unpack" in e.message


def test_repeat_without_as(tmp_path):
    spec = build(tmp_path, """
network n() {
  input(2, 8, 8)
  stage repeat 3 { conv(in.c + 1, 1) }
  stage { repeat 2 { relu } }
}
""")
    assert [len(s.children) for s in spec.children[1].children] == [3, 2]
    assert stage_channels(spec) == [5, 5]


# ---------------------------------------------------------------- typed parameters
TYPED = """
block b(out: int >= 1, act: "relu" | "silu" = "relu", ks: list[int >= 1] = [3], scale: float > 0 = 1.0) {
  conv(out, ks[0]) act(act)
}
network n(depth: int >= 1 = 2, w: float > 0 <= 10 = 1.5, mode: "a" | "b" = "a") {
  input(3, 8, 8)
  stage repeat depth { CALL }
}
"""


@pytest.mark.parametrize("call,ok", [
    ("b(8)", True), ('b(8, act: "silu", ks: [1], scale: 2)', True), ("b(8, scale: 2)", True),
    ("b(0)", False), ("b(2.5)", False), ("b(true)", False), ('b(8, act: "gelu")', False),
    ("b(8, ks: [3, 0])", False), ("b(8, ks: 3)", False), ("b(8, scale: 0)", False),
])
def test_block_parameters_are_checked_at_the_call(tmp_path, call, ok):
    text = TYPED.replace("CALL", call)
    if ok:
        assert build(tmp_path, text).out_shape[0] == 8
        return
    e = error_of(tmp_path, text)
    call_line = text.splitlines().index(f"  stage repeat depth {{ {call} }}") + 1
    assert e.loc.file.endswith("net.arch") and e.loc.line == call_line, e.render()
    assert "must be" in e.message and e.message.startswith("b: parameter")


@pytest.mark.parametrize("params,key", [({"depth": 0}, "depth"), ({"depth": 2.0}, "depth"),
                                        ({"w": 11}, "w"), ({"w": -1}, "w"), ({"mode": "c"}, "mode")])
def test_network_parameters_are_checked_before_elaboration(tmp_path, params, key):
    e = error_of(tmp_path, TYPED.replace("CALL", "b(8)"), params)
    assert f"parameter '{key}'" in e.message and "must be" in e.message
    assert e.loc.line == 5  # the declaration


def test_a_bound_may_use_an_earlier_parameter(tmp_path):
    text = "block b(lo: int, hi: int > lo) { conv(hi, 1) }\nnetwork n() { input(1, 4, 4) stage { CALL } }\n"
    assert build(tmp_path, text.replace("CALL", "b(1, 2)")).out_shape[0] == 2
    assert "must be int > 2" in error_of(tmp_path, text.replace("CALL", "b(2, 2)")).message


def test_an_unknown_type_is_a_located_error_even_if_never_called(tmp_path):
    e = error_of(tmp_path, "block b(x: float > 0 | integer) { relu }\nnetwork n() { input(1, 4, 4) }\n")
    assert "unknown type 'integer'" in e.message and (e.loc.line, e.loc.column) == (1, 24)
    e = error_of(tmp_path, "block b(x: int[float]) { relu }\nnetwork n() { input(1, 4, 4) }\n")
    assert "only list takes an element type" in e.message
    spec = tmp_path / "c.arch"
    spec.write_text("block b(x: flot) { relu }\nnetwork n(w) { input(1, 4, 4) }\n")
    r = subprocess.run([sys.executable, "-m", "archdsl", "check", str(spec)], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 2 and f"{spec}:1:12: unknown type 'flot'" in r.stderr


def test_literal_numbers_are_not_equal_floats_and_lists_name_the_bad_element(tmp_path):
    text = "block b(g: 1 | 2 = 1, r: 0.5 | 1.0 = 1, ks: list[int >= 1] = [1]) { conv(4, ks[0]) }\n" \
           "network n() { input(1, 4, 4) stage { CALL } }\n"
    assert build(tmp_path, text.replace("CALL", "b(2, r: 1)")).out_shape[0] == 4  # a float literal takes 1
    assert "must be 1 | 2" in error_of(tmp_path, text.replace("CALL", "b(2.0)")).message
    e = error_of(tmp_path, text.replace("CALL", "b(ks: [3, 0, 5])"))
    assert "must be list[int >= 1] (element 1 is 0)" in e.message


def _user_config(tmp_path, recipe: str, params: str) -> Path:
    (tmp_path / "recipes").mkdir()
    (tmp_path / "recipes" / "mine.arch").write_text(recipe)
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "mine.yaml").write_text(f"defaults: [base, _self_]\nrecipe: mine\nparams: {params}\n")
    return conf / "mine.yaml"


def test_a_config_value_that_breaks_a_type_names_key_and_override(tmp_path):
    cfg = _user_config(tmp_path, TYPED.replace("CALL", "b(8)"), "{depth: 2}")
    assert archdsl.cost(cfg).total.params > 0
    with pytest.raises(ConfigError) as info:
        archdsl.cost(cfg, ["params.depth=-1"])
    e = info.value
    assert e.key == "params.depth" and e.override == "params.depth=-1"
    assert "must be int >= 1" in e.message
    r = subprocess.run([sys.executable, "-m", "archdsl", "cost", str(cfg), "params.w=0"], cwd=tmp_path,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 2
    out = r.stdout + r.stderr
    assert "params.w" in out and "params.w=0" in out and "Traceback" not in out


# ---------------------------------------------------------------- spec tracebacks
def test_an_error_inside_a_used_block_names_the_users_call_sites(tmp_path):
    (tmp_path / "lib.arch").write_text("block deep(s) {\n  bn conv(8, 3, stride: s)\n}\n")
    text = 'use "lib"\nblock mine(s) {\n  deep(s)\n}\n' \
           "network n() {\n  input(16, 8, 8)\n  stage { mine(-1) }\n}\n"
    e = error_of(tmp_path, text, name="user.arch")
    shown = e.render()
    user, lib = str(tmp_path / "user.arch"), str(tmp_path / "lib.arch")
    # innermost last: the user's stage, the user's block, then the library's op
    assert [(str(c.file), c.line) for c in e.calls] == [(user, 7), (user, 3)]
    assert (e.loc.file, e.loc.line) == (lib, 2)
    lines = shown.splitlines()
    at = lines.index("  spec traceback (innermost last):")
    assert lines[at + 1].startswith(f"    {user}:7:") and "mine(-1)" in lines[at + 1]
    assert lines[at + 2].startswith(f"    {user}:3:") and "deep(s)" in lines[at + 2]
    assert lines[at + 3].startswith(f"    {lib}:2:") and "conv(8, 3, stride: s)" in lines[at + 3]


def test_a_bundled_block_error_shows_the_users_file(tmp_path):
    text = 'use "mbconv"\nnetwork n() {\n  input(16, 8, 8)\n  stage { mbconv(16, stride: -1) }\n}\n'
    e = error_of(tmp_path, text, name="user.arch")
    assert f"{tmp_path / 'user.arch'}:4:" in e.render()


def test_errors_outside_blocks_have_no_traceback(tmp_path):
    e = error_of(tmp_path, "network n() {\n  input(3, 8, 8)\n  stage { conv(0, 1) }\n}\n")
    assert e.calls == [] and "spec traceback" not in e.render()


def test_len_of_in_counts_tensors(tmp_path):
    # One block serves one tensor (len 1: relu) and two (len 2: added).
    spec = build(tmp_path, """
block fuse() {
  if len(in) > 1 { add } else { relu }
}
network n() {
  input(8, 8, 8)
  stage {
    fuse()
    conv(8, 1) -> a  conv(8, 1) -> b
    from (a, b) fuse()
  }
}
""")
    stage = spec.children[1].children[0]
    kinds = [[c.kind for c in n.children] for n in stage.children if getattr(n, "name", None) == "fuse"]
    assert kinds == [["act"], ["add"]]  # relu is an `act` layer
