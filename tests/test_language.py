"""The language: parsing, expressions, structural forms, shapes."""
import math

import pytest
import torch

from archdsl.backends.cost import report
from archdsl.backends.torch.lower import build_module
from archdsl.compiler import ir
from archdsl.compiler.elaborate import elaborate
from archdsl.language.builtins import make_divisible, quantize
from archdsl.language.errors import ArchError
from archdsl.language.program import load_program


def compile_text(tmp_path, text, params=None, name="net.arch"):
    f = tmp_path / name
    f.write_text(text)
    return elaborate(load_program(f), params or {})


def net(body, head="head { global_pool linear(10) }", res=8, pre=""):
    return f"{pre}\nnetwork t(res = {res}) {{\n  input(4, res, res)\n{body}\n{head}\n}}\n"


def expr_value(tmp_path, expr):
    """Evaluate an expression by using it as a linear layer's width."""
    spec = compile_text(tmp_path, net("", head=f"head {{ linear({expr}) }}"))
    return spec.out_shape[0]


@pytest.mark.parametrize("expr,expected", [
    ("2 + 3 * 4", 14), ("(2 + 3) * 4", 20), ("2 ** 3 ** 2 // 64", 8), ("17 // 5 + 17 % 5", 5),
    ("int(7 / 2)", 3), ("-3 + 10", 7), ("3 if 1 < 2 else 4", 3), ("3 if 1 > 2 else 4", 4),
    ("len([1, 2, 3])", 3), ("[x * 2 for x in range(5) if x % 2 == 1][1]", 6),
    ("(4, 5)[1]", 5), ("sum([1, 2, 3, 4][1:3])", 5), ("len([1, 2, 3][:-1])", 2), ("[5, 6, 7][1:][0]", 6), ("sum([1, 2, 3])", 6), ("max(3, 9, 4)", 9), ("min([5, 2])", 2),
    ("1 if 1 < 2 < 3 else 2", 1), ("1 if 3 in [1, 3] else 2", 1),
    ("1 if not (true and false) or false else 2", 1), ("round(2.5) + round(3.5)", 6),
    ("ceil(2.1) + floor(2.9)", 5), ("int(log(8, 2) + 0.5)", 3), ("int(sqrt(49))", 7),
    ("len(runs([1, 1, 2, 2, 2, 3]))", 3), ("runs([1, 1, 2])[0][1]", 2),
    ("cumsum([1, 2, 3])[2]", 6), ("make_divisible(32 * 1.4)", 48), ("quantize(83.7, 8)", 80),
    ("zip([1, 2], [3, 4])[1][0]", 2), ("enumerate([7, 8])[1][1]", 8),
])
def test_expressions(tmp_path, expr, expected):
    assert expr_value(tmp_path, expr) == expected


def test_make_divisible_follows_timms_rule():
    # never rounds down by more than 10%; at least the divisor
    assert make_divisible(3) == 8
    assert make_divisible(36) == 40  # 32 would drop 11%
    assert make_divisible(20) == 24  # int(20 + 4) // 8 * 8 = 24
    for v in range(1, 500):
        r = make_divisible(v * 1.1)
        assert r % 8 == 0 and r >= 0.9 * v * 1.1


def test_quantize_matches_regnet_rule():
    # nearest multiple; exact halves go to the even multiple, as Python and numpy round
    assert quantize(53, 8) == 56 and quantize(51.9, 8) == 48
    assert quantize(52, 8) == 48 and quantize(60, 8) == 64


def test_let_block_params_defaults_and_in(tmp_path):
    text = """
block widen(factor = 2, extra = in.c) {
  let out = in.c * factor + extra - in.c
  conv(out, 3) bn relu
}
""" + net("stage { widen() widen(factor: 3) }")
    spec = compile_text(tmp_path, text)
    stage = spec.children[1].children[0]
    assert [b.out_shape[0] for b in stage.children] == [8, 24]  # 4*2, then 8*3


def test_if_else_for_repeat(tmp_path):
    text = net("""
  let widths = [8, 16]
  for (i, w) in enumerate(widths) {
    stage repeat 2 as j {
      if j == 0 { conv(w, 3, stride: 2) } else if w > 8 { conv(w, 1) } else { bn }
    }
  }
  stage { repeat 3 as k { conv(4 + k, 1) } }
""", res=16)
    spec = compile_text(tmp_path, text)
    s0, s1, s2 = spec.children[1].children
    assert [n.kind for n in s0.children] == ["conv", "bn"]
    assert [n.kind for n in s1.children] == ["conv", "conv"]
    assert s1.out_shape == (16, 4, 4)
    assert [n.out_shape[0] for n in s2.children] == [4, 5, 6]


def test_structural_forms_shapes_and_module(tmp_path):
    text = net("""
  stem { conv(8, 3) bn relu }
  stage {
    residual(drop_path: true) { conv(8, 3) bn relu conv(8, 1) bn }
    residual { conv(16, 3, stride: 2) bn } shortcut { avg_pool(2) conv(16, 1) }
    parallel sum { branch { conv(16, 3) bn } branch { conv(16, 1) bn } branch { bn } }
    parallel concat { branch { conv(8, 1) } branch { max_pool(3, stride: 1, padding: 1) } }
    split(sizes: [8, 16]) { branch { } branch { conv(16, 3, groups: 16) } }
    channel_shuffle(3)
    gate { global_pool conv(6, 1, bias: true) relu conv(24, 1, bias: true) sigmoid }
  }
""")
    spec = compile_text(tmp_path, text)
    stage = spec.children[1].children[0]
    kinds = [type(n).__name__ for n in stage.children]
    assert kinds == ["Residual", "Residual", "Parallel", "Parallel", "Split", "Op", "Gate"]
    assert stage.children[3].out_shape == (24, 4, 4)  # 8 + 16 channels
    assert stage.children[4].out_shape == (24, 4, 4)
    m = build_module(spec, drop_path_rate=0.1).eval()
    y = m(torch.randn(2, 4, 8, 8))
    assert y.shape == (2, 10)
    # the report's parameter count is the module's
    assert report(spec, "t").total.params == sum(p.numel() for p in m.parameters())
    # report layer names are module names
    names = dict(m.named_modules())
    for layer in report(spec, "t").layers:
        if layer.kind not in ("add", "mul", "concat"):
            assert layer.name in names, layer.name


def test_residual_when_false_is_plain_sequence(tmp_path):
    spec = compile_text(tmp_path, net("stage { residual(when: false) { conv(8, 1) } }"))
    stage = spec.children[1].children[0]
    assert [type(n).__name__ for n in stage.children] == ["Op"]


def test_use_resolves_other_files_and_detects_cycles(tmp_path):
    (tmp_path / "lib.arch").write_text('block twice() { conv(in.c * 2, 1) }\n')
    spec = compile_text(tmp_path, net("stage { twice() twice() }", pre='use "lib"'))
    assert spec.children[1].out_shape[0] == 16
    (tmp_path / "a.arch").write_text('use "b"\nblock x() { bn }\n')
    (tmp_path / "b.arch").write_text('use "a"\nblock y() { bn }\n')
    with pytest.raises(ArchError, match="use cycle: a.arch -> b.arch -> a.arch"):
        load_program(tmp_path / "a.arch")


def test_use_cannot_leave_the_search_path(tmp_path):
    for bad in ['"../etc/passwd"', '"/etc/passwd"']:
        (tmp_path / "x.arch").write_text(f"use {bad}\n")
        with pytest.raises(ArchError, match="relative"):
            load_program(tmp_path / "x.arch")


def test_module_mirrors_spec_names(tmp_path):
    text = net("""
  stem { conv(8, 3) bn relu }
  stage repeat 2 as i { conv(8, 3) bn }
  stage { conv(16, 3, stride: 2) }
""")
    m = build_module(compile_text(tmp_path, text))
    names = set(dict(m.named_modules()))
    assert {"stem", "stages.0.blocks.0", "stages.0.blocks.1", "stages.1.blocks.0", "head"} <= names


def test_cost_rules_by_hand(tmp_path):
    spec = compile_text(tmp_path, net("stage { conv(6, 3, stride: 2, groups: 2) bn }",
                                      head="head { global_pool linear(10) }", res=8))
    r = report(spec, "t")
    conv, bnl = r.layers[0], r.layers[1]
    assert (conv.params, conv.macs) == (6 * 2 * 9, 6 * 4 * 4 * 2 * 9)
    assert bnl.params == 12 and bnl.macs == 0
    lin = r.layers[-1]
    assert (lin.params, lin.macs) == (6 * 10 + 10, 60)
    assert conv.activations == 6 * 16
    assert conv.weight_bytes == conv.params * 4
    assert conv.act_bytes == (4 * 64 + 6 * 16) * 4
    hw_macs, hw_bw = 1e9, 1e8
    from archdsl.backends.cost import Hardware
    t = report(spec, "t", hardware=[Hardware("x", hw_macs, hw_bw)])
    expect = sum(max(l.macs / hw_macs, l.bytes / hw_bw) for l in t.layers)
    assert math.isclose(t.roofline(t.hardware[0]), expect)
    assert report(spec, "t", dtype="int8").layers[0].act_bytes * 4 == conv.act_bytes


def test_ir_walk_visits_every_op(tmp_path):
    spec = compile_text(tmp_path, net("stage { residual { conv(4, 1) bn } shortcut { bn } }"))
    assert [o.kind for o in ir.ops(spec)] == ["conv", "bn", "bn", "global_pool", "linear"]


def test_residual_gain_and_shortcut_first(tmp_path):
    # shortcut(x) + g * body(x), g a learnable scalar from `gain`; shortcut_first
    # registers the shortcut's layers first (state-dict order, for ports by position).
    text = net("stage { residual(gain: 0.0, shortcut_first: true) { conv(6, 3) } shortcut { conv(6, 1) } }")
    spec = compile_text(tmp_path, text)
    res = spec.children[1].children[0].children[0]
    assert (res.gain, res.shortcut_first) == (0.0, True)
    assert [o.attrs.k for o in ir.ops(res)] == [1, 3]
    m = build_module(spec).eval()
    block = m.stages[0].blocks[0]
    assert list(block.state_dict()) == ["gain", "shortcut.0.weight", "body.0.weight"]
    x = torch.randn(2, 4, 8, 8)
    assert torch.equal(block(x), block.shortcut(x))  # starts at the shortcut alone
    with torch.no_grad():
        block.gain.fill_(0.5)
    assert torch.allclose(block(x), block.shortcut(x) + 0.5 * block.body(x))
    r = report(spec, "t")
    assert r.total.params == sum(p.numel() for p in m.parameters())
    names = [l.name for l in r.layers if l.kind != "add"]
    assert names[:2] == ["stages.0.blocks.0.shortcut.0", "stages.0.blocks.0.body.0"]
    with pytest.raises(ArchError, match="gain"):
        compile_text(tmp_path, net("stage { residual(gain: true) { conv(4, 1) } }"))
