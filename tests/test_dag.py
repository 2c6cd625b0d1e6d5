"""Several live tensors: named values (`-> x`), `from`, joins and chunks,
blocks with several inputs and outputs; the IR's wiring in the module, the
cost report, the rendering and deployment."""
import pytest
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

import archdsl
from archdsl.backends.cost import report
from archdsl.backends.render import render
from archdsl.backends.torch.lower import build_module
from archdsl.compiler.elaborate import elaborate
from archdsl.language import parsecache, parser
from archdsl.language.errors import ArchError
from archdsl.language.program import load_program

RES2 = """
block res2(width, scale = 4) {
  conv(width * scale, 1) bn relu
  chunk(scale) -> xs
  let ys = [xs[0]]
  for i in range(1, scale) {
    if i == 1 { from xs[i] } else { add(xs[i], ys[i - 1]) }
    conv(width, 3) bn relu -> y
    let ys = ys + [y]
  }
  cat(ys)
  conv(in.c, 1) bn
}
block two_out(c) { conv(c, 1) -> a  conv(c, 3, stride: 2) -> b  from (a, b) }
block pool_first(c) {
  -> (a, b)
  from a { avg_pool(2) } -> p
  mul(p, b) relu conv(c, 1)
}
network n() {
  input(16, 8, 8)
  stage { res2(4) res2(4) }
  stage { two_out(8) pool_first(12) }
  head { global_pool linear(10) }
}
"""


def build(tmp_path, text, params=None):
    f = tmp_path / "net.arch"
    f.write_text(text)
    return elaborate(load_program(f), params or {})


@pytest.fixture
def dag(tmp_path):
    spec = build(tmp_path, RES2)
    torch.manual_seed(0)
    net = build_module(spec).eval()
    for m in net.modules():  # non-trivial BN statistics
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 1.5)
            m.weight.data.uniform_(0.5, 1.5)
    return spec, net


def _bn(x, m):
    return F.batch_norm(x, m.running_mean, m.running_var, m.weight, m.bias, False, 0.0, m.eps)


def test_dag_blocks_compute_what_the_spec_says(dag):
    spec, net = dag
    x = torch.randn(2, 16, 8, 8)
    b0, b1 = net.stages[0].blocks
    mods = list(b0.children())
    # children: conv bn relu chunk | conv bn relu | add conv bn relu | add conv bn relu | cat conv bn
    convs3 = [m for m in mods if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (3, 3)]
    bns = [m for m in mods if isinstance(m, torch.nn.BatchNorm2d)]
    y = F.relu(_bn(F.conv2d(x, mods[0].weight), bns[0]))
    xs = torch.split(y, 4, dim=1)
    ys = [xs[0]]
    for i in range(1, 4):
        t = xs[i] if i == 1 else xs[i] + ys[i - 1]
        ys.append(F.relu(_bn(F.conv2d(t, convs3[i - 1].weight, padding=1), bns[i])))
    expected = _bn(F.conv2d(torch.cat(ys, 1), mods[-2].weight), bns[-1])
    assert torch.allclose(b0(x), expected, atol=1e-5)

    z = net.stages[0](x)
    two_out, pool_first = net.stages[1].blocks
    a, b = two_out(z)
    assert a.shape == (2, 8, 8, 8) and b.shape == (2, 8, 4, 4)
    conv_a, conv_b = list(two_out.children())
    assert torch.allclose(a, F.conv2d(z, conv_a.weight), atol=1e-6)
    assert torch.allclose(b, F.conv2d(a, conv_b.weight, stride=2, padding=1), atol=1e-6)  # b follows a
    last = list(pool_first.children())[-1]
    expected = F.conv2d(F.relu(F.avg_pool2d(a, 2) * b), last.weight)
    assert torch.allclose(pool_first((a, b)), expected, atol=1e-6)


def test_report_matches_module_and_flop_counter(dag):
    spec, net = dag
    rep = report(spec, "n", "fp32", [])
    assert rep.total.params == sum(p.numel() for p in net.parameters())
    with FlopCounterMode(display=False) as fc:
        net(torch.randn(1, 16, 8, 8))
    assert rep.total.macs == fc.get_total_flops() // 2


def test_layers_list_each_join_after_what_feeds_it(dag):
    spec, _ = dag
    rows = report(spec, "n", "fp32", []).layers
    names = [r.name for r in rows]
    block = [r for r in rows if r.name.startswith("stages.0.blocks.0.")]
    kinds = [r.kind for r in block]
    assert kinds.count("add") == 2 and kinds.count("cat") == 1 and kinds.count("chunk") == 1
    wiring = spec.children[1].children[0].children[0].wiring
    for i, takes in enumerate(wiring.inputs):
        # a child's inputs were all given by children listed before it
        assert all(v < wiring.n_inputs + i + 3 for v in takes)
    add = next(r for r in block if r.kind == "add")
    assert add.in_shape == ((4, 8, 8), (4, 8, 8))
    assert names.index(add.name) > names.index("stages.0.blocks.0.4")  # after the conv that feeds it


def test_render_shows_the_values_each_layer_takes(dag):
    spec, _ = dag
    text = render(spec)
    assert "[v3 -> v4, v5, v6, v7]: chunk(parts=4)" in text
    assert "[v6, v10 -> v11]: add()" in text


def test_deploy_trace_and_state_dict_of_a_dag(dag):
    spec, net = dag
    x = torch.randn(2, 16, 8, 8)
    deployed = archdsl.deploy(net, channels_last=False, prepack=False)
    assert torch.allclose(deployed(x), net(x), atol=1e-4)
    traced = torch.jit.trace(net, x)
    assert torch.allclose(traced(x), net(x), atol=1e-6)
    again = build_module(spec)
    again.load_state_dict(net.state_dict())  # same names and order, chain or DAG
    assert torch.allclose(again.eval()(x), net(x))


def test_named_values_survive_the_parse_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ARCHDSL_CACHE_DIR", str(tmp_path / "cache"))
    direct = parser.parse_text(RES2, "x.arch")
    parsecache.parse_text(RES2, "x.arch")
    assert parsecache.parse_text(RES2, "x.arch").definitions == direct.definitions


@pytest.mark.parametrize("body,message", [
    ("conv(8, 1) -> a  conv(8, 1) -> b  from (a, b) conv(4, 1)", "takes one tensor, but the value here is 2"),
    ("conv(8, 1) -> a  residual { from a { relu } }", "named in another body"),
    ("from 3", "expected a named tensor"),
    ("conv(8, 1) -> a  conv(4, 1) -> b  add(a, b)", "cannot broadcast"),
    ("conv(8, 1) -> a  conv(8, 3, stride: 2) -> b  cat(a, b)", "cat of unequal spatial sizes"),
    ("add", "joins two or more tensors"),
    ("chunk(3)", "cannot chunk 8 channels into 3"),
])
def test_misuse_is_a_located_error(tmp_path, body, message):
    text = f"network n() {{\n  input(8, 8, 8)\n  stage {{\n    {body}\n  }}\n}}\n"
    with pytest.raises(ArchError, match=message) as info:
        build(tmp_path, text)
    assert info.value.loc is not None and info.value.loc.line == 4


def test_the_head_stays_a_chain(tmp_path):
    text = "network n() {\n  input(8, 8, 8)\n  head { -> x global_pool }\n}\n"
    with pytest.raises(ArchError, match="the head is a chain"):
        build(tmp_path, text)


def test_deploy_folds_batch_norms_inside_a_dag(dag):
    spec, net = dag
    deployed = archdsl.deploy(net, channels_last=False, prepack=False)
    block = deployed.stages[0].blocks[0]
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in block.modules())
    x = torch.randn(2, 16, 8, 8)
    assert torch.allclose(block(x), net.stages[0].blocks[0](x), atol=1e-4)


def test_registration_ranks_order_the_state_dict_not_the_computation(tmp_path):
    ordered = """
block b(w) {
  conv(2 * w, 1) bn relu
  chunk(2) -> (x1, x2)
  from x1 { conv(w, 3) @1 bn @2 relu } -> y1
  add(x2, y1) conv(w, 3) @1 bn @2 relu -> y2
  cat(y1, y2) conv(4 * w, 1) @3 bn @3
}
network n() { input(8, 8, 8) stage { b(4) } head { global_pool } }
"""
    spec = build(tmp_path, ordered)
    net = build_module(spec).eval()
    block = net.stages[0].blocks[0]
    keys = [k for k in block.state_dict() if k.endswith("weight")]
    kinds = ["conv" if v.ndim == 4 else "bn" for k, v in block.state_dict().items() if k.endswith("weight")]
    # rank 0: the first conv and bn; rank 1: both 3x3 convs; rank 2: their bns; rank 3: the last conv, bn
    assert kinds == ["conv", "bn", "conv", "conv", "bn", "bn", "conv", "bn"]
    assert keys[2:4] == ["4.weight", "8.weight"]
    plain = build_module(build(tmp_path, ordered.replace(" @1", "").replace(" @2", "").replace(" @3", ""))).eval()
    # the same computation: copy weights by name, compare outputs
    plain.load_state_dict(net.state_dict())
    x = torch.randn(2, 8, 8, 8)
    assert torch.allclose(plain(x), net(x), atol=1e-6)
    deployed = archdsl.deploy(net, channels_last=False, prepack=False)
    assert torch.allclose(deployed(x), net(x), atol=1e-4)


def test_a_rank_needs_a_layer_before_it(tmp_path):
    with pytest.raises(ArchError, match="@n follows the layer"):
        build(tmp_path, "network n() {\n  input(8, 8, 8)\n  stage { @1 conv(8, 1) }\n}\n")
    with pytest.raises(ArchError, match="whole number"):
        build(tmp_path, "network n() {\n  input(8, 8, 8)\n  stage { conv(8, 1) @1.5 }\n}\n")


def test_branch_ranks_order_registration_not_the_sum(tmp_path):
    text = """
network n() {
  input(4, 8, 8)
  stage { parallel sum { branch { conv(4, 1) } @1  branch { conv(4, 3) }  branch { conv(4, 5) } } }
}
"""
    net = build_module(build(tmp_path, text)).eval()
    par = net.stages[0].blocks[0]
    shapes = [tuple(v.shape[2:]) for v in par.state_dict().values()]
    assert shapes == [(3, 3), (5, 5), (1, 1)]  # the ranked branch registers last
    assert [n for n, _ in par.branches.named_children()] == ["1", "2", "0"]
    x = torch.randn(1, 4, 8, 8)
    b = list(par.branches)  # run in the order written: the 1x1 first
    assert torch.equal(par(x), (b[0](x) + b[1](x)) + b[2](x))
