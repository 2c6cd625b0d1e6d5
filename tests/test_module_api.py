"""The compiled module offers timm's interface and works with trace/compile/export."""
import pytest
import torch

import archdsl
from archdsl.backends.torch.lower import build_module
from archdsl.compiler.elaborate import elaborate
from archdsl.language.program import load_program

SMALL = """
use "blocks/se"
network small(res = 32, classes = 10) {
  input(3, res, res)
  stem { conv(16, 3, stride: 2) bn relu }
  stage {
    residual(drop_path: true) { conv(16, 3) bn relu conv(16, 3) bn } relu
    parallel sum { branch { conv(32, 3, stride: 2) bn } branch { conv(32, 1, stride: 2) bn } }
    relu
  }
  stage {
    split { branch { } branch { conv(16, 3, groups: 16) bn squeeze_excite(4) } }
    channel_shuffle(2)
    parallel concat { branch { conv(16, 1) } branch { avg_pool(3, stride: 1, padding: 1) } }
  }
  head { conv(64, 1) bn silu global_pool dropout(0.1) linear(classes) }
}
"""


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    f = tmp_path_factory.mktemp("spec") / "small.arch"
    f.write_text(SMALL)
    torch.manual_seed(0)
    return build_module(elaborate(load_program(f), {}), drop_path_rate=0.1).eval()


def test_timm_interface(small):
    x = torch.randn(2, 3, 32, 32)
    feats = small.forward_features(x)
    assert feats.shape == (2, 64, 8, 8) and small.num_features == 64
    assert small.forward_head(feats, pre_logits=True).shape == (2, 64)
    assert torch.equal(small.forward_head(feats), small(x))
    # one entry per reduction, the last module at it (as timm indexes feature_info):
    # the stem at /2; both stages at /4, the second (48 channels) last
    assert [f["num_chs"] for f in small.feature_info] == [16, 48]
    assert [f["reduction"] for f in small.feature_info] == [2, 4]
    assert [f["module"] for f in small.feature_info] == ["stem.2", "stages.1"]
    small.reset_classifier(5)
    assert small(x).shape == (2, 5) and small.num_classes == 5
    small.reset_classifier(10)


def test_drop_path_rates_rise_linearly():
    m = archdsl.load("resnet18", ["drop_path_rate=0.2"])
    rates = [mod.rate for mod in m.modules() if type(mod).__name__ == "DropPath"]
    assert len(rates) == 7 and rates[-1] == pytest.approx(0.2)  # the first is 0 and dropped
    assert all(a < b for a, b in zip(rates, rates[1:]))


def test_jit_trace(small):
    x = torch.randn(1, 3, 32, 32)
    traced = torch.jit.trace(small, x)
    assert torch.allclose(traced(x), small(x), atol=1e-6)


def test_export(small):
    x = torch.randn(1, 3, 32, 32)
    ep = torch.export.export(small, (x,))
    assert torch.allclose(ep.module()(x), small(x), atol=1e-6)


def test_compile(small):
    x = torch.randn(1, 3, 32, 32)
    compiled = torch.compile(small)
    assert torch.allclose(compiled(x), small(x), atol=1e-4)


def test_build_output_loads_back(tmp_path):
    from archdsl.api import compile as compile_config
    from archdsl.build import write_outputs

    c = compile_config("resnet18", ["params.res=64"])
    result = write_outputs(c, tmp_path)
    assert {"report.json", "report.md", "layers.csv", "network.txt", "config.yaml", "spec.arch",
            "model.pt"} <= {p.name for p in tmp_path.iterdir()}
    saved = torch.load(tmp_path / "model.pt", weights_only=True)
    m = archdsl.load(tmp_path)
    assert all(torch.equal(v, m.state_dict()[k]) for k, v in saved.items())
    assert result["params"] == sum(p.numel() for p in m.parameters())


RESIDUALS = """
block nothing(on = false) { if on { relu } }
network r(res = 8) {
  input(4, res, res)
  stage {
    residual { conv(4, 3) bn }
    residual { dropout(0.0) }
    residual(gain: 0.5) { identity }
    residual { conv(4, 1) nothing() identity }
    residual { nothing() identity }
  }
}
"""


def test_residual_adds_in_place_only_into_a_fresh_body(tmp_path):
    """Outside autograd a residual adds its shortcut into the body's output;
    a body that passes its input through must not have it overwritten."""
    f = tmp_path / "r.arch"
    f.write_text(RESIDUALS)
    net = build_module(elaborate(load_program(f), {})).eval()
    blocks = net.stages[0].blocks
    # an empty block or an identity after the conv still leaves its output fresh
    assert [b.body_fresh for b in blocks] == [True, False, False, True, False]
    x = torch.randn(2, 4, 8, 8)
    kept = x.clone()
    with torch.no_grad():
        y = blocks[0](x)
        assert torch.equal(x, kept)
        assert torch.equal(y, x + blocks[0].body(x))
        assert torch.equal(blocks[1](x), x + x) and torch.equal(x, kept)
        assert torch.equal(blocks[2](x), x + 0.5 * x) and torch.equal(x, kept)
        assert torch.equal(blocks[3](x), x + blocks[3].body(x)) and torch.equal(x, kept)
        assert torch.equal(blocks[4](x), x + x) and torch.equal(x, kept)
        inference = net(x)
    training = net(x)  # autograd on: out of place, and backward works
    assert training.requires_grad and torch.equal(inference, training)
    training.sum().backward()
    assert net.stages[0].blocks[0].body[0].weight.grad is not None


def test_a_1x1_conv_after_the_pool_is_the_classifier(tmp_path):
    f = tmp_path / "c.arch"
    f.write_text("network n() { input(3, 16, 16) stage { conv(24, 3) } head { global_pool conv(10, 1, bias: true) } }\n")
    net = build_module(elaborate(load_program(f), {})).eval()
    x = torch.randn(2, 3, 16, 16)
    assert net.num_classes == 10 and isinstance(net.get_classifier(), torch.nn.Conv2d)
    feats = net.forward_features(x)
    assert net.forward_head(feats, pre_logits=True).shape == (2, 24)
    assert net(x).shape == (2, 10)
    net.reset_classifier(4)
    assert net(x).shape == (2, 4) and net.num_classes == 4
