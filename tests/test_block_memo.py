"""Equal block calls are elaborated and costed once (elaborate._BlockMemo,
ir.Body, cost.Part), and nothing a user sees depends on it."""
import os

import pytest
import torch

import archdsl
from archdsl.backends.cost import report
from archdsl.compiler import ir
from archdsl.compiler.elaborate import elaborate, forget_blocks
from archdsl.language.errors import ArchError
from archdsl.language.program import load_program

SPEC = """
block unit(c, stride = 1) {
  residual(when: stride == 1 and in.c == c) { conv(c, 3, stride: stride) bn relu }
}
block twice(c) { unit(c) unit(c) }
block relus(n) { repeat n as i { relu } }
network t(res = 16, n = 2) {
  input(4, res, res)
  stage { unit(8, stride: 2) unit(8) unit(8) twice(8) }
  stage { unit(16, stride: 2) unit(16) relus(n) }
  head { global_pool linear(10) }
}
"""


def blocks(spec):
    return [n for _, n in ir.named(spec) if isinstance(n, ir.Seq) and n.is_block]


@pytest.fixture
def program(program_of):
    return program_of(SPEC, "memo.arch")


def test_equal_calls_share_one_body(program):
    spec = elaborate(program, {})
    s0 = spec.children[1].children[0].children
    # unit(8, stride: 2) differs from unit(8); the two unit(8) calls share one body
    assert s0[0].children is not s0[1].children
    assert s0[1].children is s0[2].children
    # nested calls inside twice(8) too, and they keep their own call site
    inner = s0[3].children
    assert inner[0].children is s0[1].children is inner[1].children
    assert inner[0].loc != s0[1].loc
    # another input shape is another body: unit(16) after 8 channels vs after 16
    s1 = spec.children[1].children[1].children
    assert s1[0].children is not s1[1].children


def test_a_new_elaboration_reuses_the_bodies_and_forgetting_them_does_not(program):
    a, b = elaborate(program, {}), elaborate(program, {})
    assert blocks(a)[1].children is blocks(b)[1].children
    forget_blocks()
    c = elaborate(program, {})
    assert blocks(c)[1].children is not blocks(a)[1].children
    assert report(c, "t").to_dict() == report(a, "t").to_dict()


def test_loading_unchanged_files_again_reuses_the_bodies_and_an_edit_does_not(tmp_path):
    f = tmp_path / "memo.arch"
    f.write_text(SPEC)
    forget_blocks()
    a = elaborate(load_program(f), {})
    b = elaborate(load_program(f), {})  # a new Program from the same parsed files
    assert blocks(a)[1].children is blocks(b)[1].children
    os.utime(f, ns=(f.stat().st_atime_ns, f.stat().st_mtime_ns + 10**9))  # an edit, as the parse cache sees it
    c = elaborate(load_program(f), {})
    assert blocks(c)[1].children is not blocks(a)[1].children
    assert report(c, "t").to_dict() == report(a, "t").to_dict()


def test_report_layers_are_named_and_summed_as_without_sharing(program):
    spec = elaborate(program, {})
    rep = report(spec, "t")
    names = [l.name for l in rep.layers]
    assert len(names) == len(set(names))
    ops = [name for name, n in ir.named(spec) if isinstance(n, ir.Op)]
    assert [l.name for l in rep.layers if l.kind not in ("add",)] == ops
    # totals from the kept per-body sums equal a plain sum over the layer rows
    assert rep.total.params == sum(l.params for l in rep.layers)
    assert rep.total.macs == sum(l.macs for l in rep.layers)
    assert rep.total.act_bytes == sum(l.act_bytes for l in rep.layers)
    for hw in archdsl.cost("resnet18").hardware:
        assert rep.roofline(hw) == pytest.approx(sum(l.time(hw) for l in rep.layers), rel=1e-12)
    sweep = rep.ridge_sweep()
    assert [r["mac_equivalents"] for r in sweep] == [
        sum(max(l.macs, l.bytes * r["ridge_point"]) for l in rep.layers) for r in sweep]
    sections = rep.by_section()
    assert sections["stages.0"].macs + sections["stages.1"].macs + sections["head"].macs == rep.total.macs


def test_shared_bodies_lower_to_separate_modules(program):
    spec = elaborate(program, {})
    net = archdsl.backends.torch.lower.build_module(spec)
    a, b = net.stages[0].blocks[1], net.stages[0].blocks[2]
    assert a is not b and a[0].body[0].weight is not b[0].body[0].weight
    names = [n for n, _ in net.named_modules()]
    assert len(names) == len(set(names))
    assert {n for n, _ in ir.named(spec)} <= set(names)
    assert net(torch.randn(1, 4, 16, 16)).shape == (1, 10)


def test_the_memo_tells_an_int_from_a_float(program):
    """relus(2) and relus(2.0) look equal to Python; only one is a valid repeat count."""
    elaborate(program, {"n": 2})
    with pytest.raises(ArchError, match="repeat count must be a non-negative integer"):
        elaborate(program, {"n": 2.0})


def test_deploy_of_a_shared_spec_keeps_weights_apart(program):
    torch.manual_seed(0)
    net = archdsl.backends.torch.lower.build_module(elaborate(program, {})).eval()
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-1, 1)
                m.running_var.uniform_(0.5, 2)
    x = torch.randn(2, 4, 16, 16)
    with torch.no_grad():
        assert (archdsl.deploy(net)(x) - net(x)).abs().max().item() <= 1e-5


def test_an_op_without_arguments_is_one_node_per_input_shape(program_of):
    """bn and relu have no arguments, so one layer meets every shape in a
    network; each (layer, shape) is still one node, kept for the next network."""
    src = """
network w(n = 6) {
  input(3, 8, 8)
  stage { for c in [8 + 8 * i for i in range(n)] { conv(c, 1) bn relu } }
  head { global_pool linear(2) }
}
"""
    prog = program_of(src, "shapes.arch")
    ops = lambda spec: [n for _, n in ir.named(spec.children[1]) if isinstance(n, ir.Op)]
    a, b = ops(elaborate(prog, {})), ops(elaborate(prog, {}))
    assert len(a) == len(b) == 18
    assert len({(x.kind, x.attrs) for x in a[1::3]}) == 1 and len({x.in_shape for x in a[1::3]}) == 6  # bn
    assert all(x is y for x, y in zip(a, b))


def test_sums_without_names_equal_the_named_report(program):
    """A report read only for totals and times skips naming its layers
    (cost.unnamed); every figure equals the named walk's, to the bit."""
    from archdsl.backends.cost import Hardware, costed, unnamed

    hws = [Hardware("a", 1e12, 1e11), Hardware("b", 3e9, 2e10),
           Hardware("c", 5e10, 1e10, efficiency={"conv": 0.5}, overhead=2e-6, weight_bw={"conv": 3e9})]
    machines = tuple(h.machine for h in hws)
    for preset in ("regnetx_004", "mobilenetv2_100", "convnextv2_atto", "ghostnet_100"):
        spec = archdsl.compile(preset).spec
        named, bare = costed(spec), unnamed(spec)
        assert bare.total == named.total
        assert bare.times(machines) == named.times(machines)
        assert bare.ridge((0, 10, 100)) == named.ridge((0, 10, 100))
    spec = elaborate(program, {})
    rep, full = report(spec, "t", hardware=hws), report(spec, "t", hardware=hws)
    totals = (rep.total, rep.rooflines())  # the unnamed path: no layer named yet
    assert "costed" not in rep.__dict__
    full.layers  # the named path first
    assert (full.total, full.rooflines()) == totals


def test_bodies_costed_for_sums_are_named_when_read(program):
    """Block bodies costed first for sums (a sweep, cost.unnamed) carry no
    names; a report read afterwards names every layer as the module does."""
    from archdsl.backends.cost import costed, unnamed
    from archdsl.language import caches

    caches.forget("elaborated")
    spec = elaborate(program, {})
    unnamed(spec).total  # every body's Part is made here, without names
    ops = [name for name, n in ir.named(spec) if isinstance(n, ir.Op)]
    assert [l.name for l in report(spec, "t").layers if l.kind != "add"] == ops
    # a block on its own (its body's Part, made above without names) names its
    # layers as the network's report does below the block's own name
    caches.forget("elaborated")
    spec = elaborate(program, {})
    unnamed(spec).total
    prefix, block = next((name, n) for name, n in ir.named(spec) if isinstance(n, ir.Seq) and n.is_block)
    mine = [f"{prefix}.{l.name}" for l in costed(block).layers()]  # named here, first
    inside = [l.name for l in report(spec, "t").layers if l.name.startswith(prefix + ".")]
    assert len(inside) >= 3 and mine == inside

def test_the_memo_drops_the_bodies_used_least_recently():
    from archdsl.compiler.elaborate import _BlockMemo

    memo = _BlockMemo(())
    memo.LIMIT = 4
    for k in "abcd":
        memo.put(k, k.upper(), 1)
    assert memo.get("a")[0] == "A"  # used: now the most recently used
    memo.put("e", "E", 1)  # full: the least recently used quarter (one body) goes
    assert sorted(memo.bodies) == ["a", "c", "d", "e"]
    assert memo.get("b") is None and memo.get("a")[0] == "A"


def test_a_reused_body_counts_its_layers_against_the_limit(program_of):
    """A body taken from the memo counts its layers again, as the module built
    from it has them again; the limit is met at the same call either way."""
    from archdsl.language.caches import forget

    src = """
block four() { relu relu relu relu }
network r(n = 3) {
  input(3, 8, 8)
  stage { repeat n { four() } }
  head { global_pool }
}
"""
    prog = program_of(src, "layers.arch")
    assert len([1 for _, n in ir.named(elaborate(prog, {"n": 5})) if isinstance(n, ir.Op)]) == 21
    for fresh in (True, False):  # elaborated anew, then from the memo
        with archdsl.language.budget.active(archdsl.language.budget.Limits(layers=12)):
            if fresh:
                forget("elaborated")
            elaborate(prog, {"n": 2})  # 9 layers
            with pytest.raises(ArchError, match="too many layers"):
                elaborate(prog, {"n": 3})  # 13


def test_a_section_is_taken_from_the_memo_only_when_what_it_reads_is_equal(program_of):
    src = """
network t(k = 3, c = 8, extra = 0) {
  input(3, 16, 16)
  let unused = extra * 2
  stage { conv(c, k) bn relu }
  stage { conv(8, 3) bn }
  head { global_pool linear(10) }
}
"""
    prog = program_of(src, "sections.arch")
    stage = lambda spec, i: spec.children[1].children[i]
    a = elaborate(prog, {})
    assert stage(elaborate(prog, {"extra": 1}), 0) is stage(a, 0)  # reads neither `extra` nor `unused`
    b = elaborate(prog, {"k": 5})
    assert stage(b, 0) is not stage(a, 0) and stage(b, 0).children[0].attrs.k == 5
    assert stage(b, 1) is stage(a, 1)  # same input shape, reads nothing that changed
    c = elaborate(prog, {"c": 16})  # the second stage reads nothing new, but its input has 16 channels
    assert stage(c, 1) is not stage(a, 1) and stage(c, 1).in_shape == (16, 16, 16)
    assert report(c, "t").to_dict() == report(elaborate(prog, {"c": 16}), "t").to_dict()


def test_a_reused_section_counts_its_layers_against_the_limit(program_of):
    src = """
network n(a = 5) {
  input(3, 8, 8)
  stage { repeat a { relu } }
  stage repeat a { relu }
  head { global_pool }
}
"""
    prog = program_of(src, "section_layers.arch")
    elaborate(prog, {})  # 11 layers, every section now in the memo
    with archdsl.language.budget.active(archdsl.language.budget.Limits(layers=11)):
        elaborate(prog, {})
    with archdsl.language.budget.active(archdsl.language.budget.Limits(layers=10)):
        with pytest.raises(ArchError, match="too many layers"):
            elaborate(prog, {})


@pytest.mark.parametrize("space_name", ["regnetx_400mf", "mbnet_400mf"])
def test_design_points_from_the_memos_equal_points_elaborated_anew(space_name):
    """Random points of a design space: with the block and section memos full
    of other points' bodies and stages, each point's network and report equal
    those of the same point elaborated from empty memos."""
    import numpy as np

    from archdsl.backends.cost import unnamed
    from archdsl.explore.points import Base
    from archdsl.explore.space import load_space
    from archdsl.language import caches

    space = load_space(space_name)
    base = Base(space.base_path(), space.overrides)
    cols = space.sample(np.random.default_rng(7), 120)
    points = [{k: v[i].tolist() for k, v in cols.items()} for i in range(120)]

    def shown(spec):
        part = unnamed(spec)
        return ([(name, type(n).__name__, n.in_shape, n.out_shape, getattr(n, "attrs", None))
                 for name, n in ir.named(spec)], part.total, part.times(((1e12, 1e11), (3e9, 2e10))))

    def network(p):
        return elaborate(base.program, base.params(p), base.cfg.network)

    for p in points[:100]:  # other points fill the memos
        network(p)
    warm = [shown(network(p)) for p in points[100:]]
    for p, got in zip(points[100:], warm):
        caches.forget("elaborated")
        assert got == shown(network(p))


def test_part_times_are_each_rows_roofline_summed():
    """Each machine's time of a Part is the sum over its rows, a nested Part's
    included, of max(MACs / peak, bytes / bandwidth): rows on either side of
    every ridge point, on it, without MACs or without bytes."""
    import random

    from archdsl.backends.cost import Part

    rng = random.Random(3)
    # ridge points 0.5, 4, 4, 25 MACs a byte, in no order
    machines = ((1e11, 4e9), (2e9, 4e9), (8e10, 2e10), (4e10, 1e10))
    rows = []
    for i in range(60):
        moved = rng.choice([0, rng.randint(1, 10**6)])
        macs = rng.choice([0, 4 * moved, rng.randint(1, 10**8)])  # 4: on the middle ridges
        weights = rng.choice([0, moved // 3])  # bytes moved: weights (field 7) + activations (8)
        rows.append(("", "conv", (8, 4, 4), (8, 4, 4), 0, macs, 0, weights, moved - weights, 0, "conv", 0, False))
    nested = Part(rows[:20])
    part = Part([("b", nested)] + rows[20:])

    def by_hand(rs, peak, bw):
        return sum(max(r[5] / peak, (r[7] + r[8]) / bw) for r in rs)
    for got, (peak, bw) in zip(part.times(machines), machines):
        assert got == pytest.approx(by_hand(rows, peak, bw), rel=1e-12)
        assert got > 0
