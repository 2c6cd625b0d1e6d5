"""Deploy passes (archdsl/passes): BatchNorm folding and linear-branch fusion.

Every bundled preset is deployed from a module with random BatchNorm
statistics and compared with it in eval mode; small specs exercise the cases
the zoo does not (groups, dilation, nested sums, residual and gate bodies,
what must be left alone); RepVGG's deploy form is compared with timm's
re-parameterized models.
"""
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import small_res
from reference import counted_macs, n_params

import archdsl
from archdsl.backends.torch.lower import build_module
from archdsl.backends.torch.modules import ParallelSum, Residual
from archdsl.backends.torch.prepack import PackedConv2d
from archdsl.backends.torch.prepack import available as prepack_available
from archdsl.compiler.elaborate import elaborate
from archdsl.language.program import load_program

ROOT = Path(__file__).resolve().parent.parent
PRESETS = sorted(p.stem for p in (ROOT / "conf").glob("*.yaml") if p.stem != "base")
RES = 64  # small, so the zoo runs in about a minute; deploying does not depend on it
TOL = 1e-4


pytestmark = pytest.mark.usefixtures("one_thread")


def trained(net: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Random BatchNorm statistics and affine, so that every fold matters (as after training)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                for t, lo, hi in ((m.running_mean, -0.5, 0.5), (m.running_var, 0.5, 2.0),
                                  (m.weight, 0.5, 1.5), (m.bias, -0.5, 0.5)):
                    t.copy_(torch.rand(t.shape, generator=g) * (hi - lo) + lo)
    return net.eval()


def max_diff(a: torch.nn.Module, b: torch.nn.Module, shape, seed: int = 1) -> float:
    """Max difference of the outputs, relative to their size where that exceeds 1:
    random BN statistics over tens of summed branches (MobileOne) grow outputs to
    ~1e4, where float rounding alone differs by more than an absolute 1e-4."""
    x = torch.randn((2, *shape), generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        ya, yb = a(x), b(x)
        return ((ya - yb).abs().max() / max(1.0, ya.abs().max().item())).item()


def count(module: torch.nn.Module, kind: type) -> int:
    return sum(isinstance(m, kind) for m in module.modules())


@pytest.mark.parametrize("preset", PRESETS)
def test_every_preset_deploys_to_the_same_function(preset):
    overrides = [f"params.res={small_res(preset, RES)}"]
    net = trained(archdsl.compile(preset, overrides).module())
    deployed = archdsl.deploy(net)
    shape = net.input_shape
    assert max_diff(net, deployed, shape) <= TOL
    assert count(deployed, torch.nn.BatchNorm2d) <= count(net, torch.nn.BatchNorm2d)
    # The deployed report (deploy=true) describes this very module.
    rep = archdsl.cost(preset, overrides + ["deploy=true"])
    assert rep.deployed
    assert rep.total.params == n_params(deployed)
    # Counted in contiguous memory: channels-last attention takes a fused CPU
    # kernel that FlopCounterMode does not count.
    assert rep.total.macs == counted_macs(archdsl.deploy(net, channels_last=False), shape)


SMALL = """
network small(res = 12) {
  input(4, res, res)
  stem { conv(8, 3) bn relu }
  stage {
    parallel sum {                 # grouped, nested, a 5x5, identity with and without bn
      branch { bn }
      branch { }
      branch { parallel sum { branch { conv(8, 5, groups: 2) bn } branch { conv(8, 1, groups: 2) bn } } }
      branch { conv(8, 3, groups: 2, bias: true) }
    }
    bn relu                        # a bn after the sum folds into the fused conv
    parallel sum { branch { conv(16, 3, stride: 2) bn } branch { conv(16, 1, stride: 2) bn } }
    relu
    parallel sum { branch { conv(16, 3, dilation: 2) bn } branch { conv(16, 1) bn } branch { bn } }
    relu
    parallel sum { branch { conv(16, 3, padding: "same") bn } branch { conv(16, 1, padding: "same") bn } }
  }
  stage {
    residual { conv(16, 3) bn }    # a linear body on the identity: one conv
    relu
    residual { conv(16, 3) bn relu conv(16, 1) bn } shortcut { conv(16, 1) bn }
    relu
    gate { global_pool conv(16, 1) bn sigmoid }
    split { branch { } branch { conv(8, 3, groups: 8) bn } }
    parallel sum { branch { conv(16, 3, groups: 2) bn } branch { conv(16, 3, groups: 4) bn } }
    avg_pool(2) bn relu            # no conv before this bn: it stays
  }
  head { global_pool linear(10) }
}
"""


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    f = tmp_path_factory.mktemp("spec") / "small.arch"
    f.write_text(SMALL)
    torch.manual_seed(0)
    net = trained(build_module(elaborate(load_program(f), {})))
    with torch.no_grad():  # biases too, for the one conv that has its own
        for m in net.modules():
            if isinstance(m, torch.nn.Conv2d) and m.bias is not None:
                m.bias.uniform_(-0.5, 0.5)
    return net


def test_small_spec_deploys_to_the_same_function(small):
    assert max_diff(small, archdsl.deploy(small), small.input_shape) <= TOL


def test_small_spec_deployed_structure(small):
    d = archdsl.deploy(small)
    stage0 = d.stages[0].blocks
    # Each sum of stage 0 (and the BN after the first) is one conv with a bias.
    convs = [m for m in stage0 if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 4 == len(stage0) - 3  # and three relus
    assert [(c.kernel_size, c.stride, c.groups, c.dilation) for c in convs] == [
        ((5, 5), (1, 1), 2, (1, 1)), ((3, 3), (2, 2), 1, (1, 1)), ((3, 3), (1, 1), 1, (2, 2)),
        ((3, 3), (1, 1), 1, (1, 1))]
    assert all(c.bias is not None for c in convs)
    stage1 = d.stages[1].blocks
    assert isinstance(stage1[0], torch.nn.Conv2d)  # the residual with a linear body
    assert count(stage1, Residual) == 1  # the other keeps its add (its body is not linear)
    assert count(stage1, ParallelSum) == 1  # groups 2 and 4 do not fuse
    assert count(d, torch.nn.BatchNorm2d) == 1  # the one after the pool
    assert count(small, torch.nn.BatchNorm2d) == 1 + 11 + 9  # stem, stage 0, stage 1


def test_deploy_is_idempotent(small):
    once = archdsl.deploy(small)
    twice = archdsl.deploy(once)
    assert [(k, v.shape) for k, v in once.state_dict().items()] == \
        [(k, v.shape) for k, v in twice.state_dict().items()]
    assert max_diff(once, twice, small.input_shape) == 0.0


def _conv_weights(net):
    return [m.weight for m in net.modules() if isinstance(m, torch.nn.Conv2d)]


def test_deployed_module_runs_channels_last(small):
    cl = torch.channels_last
    d = archdsl.deploy(small)
    assert d.channels_last and all(w.is_contiguous(memory_format=cl) for w in _conv_weights(d))
    x = torch.randn(2, *small.input_shape)
    with torch.no_grad():
        feats = d.forward_features(x)
        assert feats.is_contiguous(memory_format=cl) and not x.is_contiguous(memory_format=cl)
        plain = archdsl.deploy(small, channels_last=False)
        assert not plain.channels_last and all(w.is_contiguous() for w in _conv_weights(plain))
        assert plain.forward_features(x).is_contiguous()
        assert (d(x) - plain(x)).abs().max().item() <= TOL


def test_channels_last_and_prepack_follow_deploy_unless_set():
    def layout(overrides):
        net = archdsl.load("resnet18", ["params.res=32", *overrides])
        return (net.channels_last, net.stem[0].weight.is_contiguous(memory_format=torch.channels_last),
                count(net, PackedConv2d) > 0)
    assert layout([]) == (False, False, False)
    assert layout(["deploy=true"]) == (True, True, prepack_available())
    assert layout(["deploy=true", "channels_last=false", "prepack=false"]) == (False, False, False)
    assert layout(["channels_last=true"]) == (True, True, False)
    assert layout(["prepack=true"]) == (False, False, prepack_available())


needs_prepack = pytest.mark.skipif(not prepack_available(), reason="this PyTorch build has no oneDNN prepacking")


@needs_prepack
def test_prepacked_convs_compute_what_plain_ones_do(small):
    packed, plain = archdsl.deploy(small), archdsl.deploy(small, prepack=False)
    convs = [m for m in packed.modules() if isinstance(m, PackedConv2d)]
    assert convs and count(plain, PackedConv2d) == 0
    assert packed.state_dict().keys() == plain.state_dict().keys()
    nhwc = {}  # conv -> was its input channels-last (a split's slice is not: the plain path)
    def record(m, inputs):  # returns None: the input is left as it is
        nhwc.setdefault(m, inputs[0].is_contiguous(memory_format=torch.channels_last))

    hooks = [m.register_forward_pre_hook(record) for m in convs]
    c, h, w = small.input_shape
    for shape in [(1, c, h, w), (3, c, h + 8, w + 16)]:  # a weight packed once serves any input size
        x = torch.randn(shape)
        with torch.inference_mode():
            assert (packed(x) - plain(x)).abs().max().item() <= 1e-5
    for hook in hooks:
        hook.remove()
    assert sum(nhwc.values()) >= len(convs) - 2
    assert all((m._packed is not None) == nhwc[m] for m in convs)  # the packed path ran where it may
    # A changed weight is packed again.
    with torch.no_grad():
        for net in (packed, plain):
            for m in net.modules():
                if isinstance(m, torch.nn.Conv2d):
                    m.weight.mul_(0.5)
        x = torch.randn(2, c, h, w)
        assert (packed(x) - plain(x)).abs().max().item() <= 1e-5


@needs_prepack
def test_prepacked_module_trains_traces_exports_and_copies(small):
    import copy

    packed = archdsl.deploy(small)
    x = torch.randn(2, *small.input_shape)
    with torch.no_grad():
        expected = packed(x)
    y = packed(x)  # autograd on: the plain path
    y.sum().backward()
    assert torch.allclose(y, expected, atol=1e-5)
    assert next(m for m in packed.modules() if isinstance(m, PackedConv2d)).weight.grad is not None
    twin = copy.deepcopy(packed)
    with torch.no_grad():
        assert torch.allclose(twin(x), expected, atol=1e-5)
        traced = torch.jit.trace(packed, x)
    assert torch.allclose(traced(x), expected, atol=1e-5)
    exported = torch.export.export(packed, (x,)).module()
    with torch.no_grad():
        assert torch.allclose(exported(x), expected, atol=1e-5)


def test_deploy_needs_an_archdsl_module():
    with pytest.raises(TypeError, match="archdsl"):
        archdsl.deploy(torch.nn.Conv2d(3, 3, 1))


REPVGG = [p for p in PRESETS if p.startswith("repvgg_")]


@pytest.mark.parametrize("preset", REPVGG)
def test_repvgg_deploys_to_timms_reparameterized_model(preset):
    import timm
    from timm.utils.model import reparameterize_model

    with torch.device("meta"):  # counts only: no memory, no init
        ref = reparameterize_model(timm.create_model(preset).eval())
        ours = archdsl.load(preset, deploy=True)
    assert n_params(ours) == n_params(ref) == archdsl.cost(preset, ["deploy=true"]).total.params


def test_load_repvgg_deploy_gives_one_conv_per_block():
    net = archdsl.load("repvgg_a0", ["params.res=64"], deploy=True)
    blocks = [net.stem[0]] + [b for s in net.stages for b in s.blocks]
    assert len(blocks) == 1 + 2 + 4 + 14 + 1
    for b in blocks:
        assert [type(m) for m in b] == [PackedConv2d if prepack_available() else torch.nn.Conv2d, torch.nn.ReLU]
        assert b[0].kernel_size == (3, 3) and b[0].bias is not None
    assert count(net, torch.nn.BatchNorm2d) == 0 and count(net, ParallelSum) == 0


def test_archc_build_deploy_writes_the_deployed_report(tmp_path):
    r = subprocess.run([sys.executable, "-m", "archdsl", "build", "resnet18", "deploy=true"], cwd=tmp_path,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    out = next((tmp_path / "outputs" / "resnet18").iterdir())
    rep = json.loads((out / "report.json").read_text())
    assert rep["deployed"] is True and "deployed" in rep["convention"]
    assert "(deployed graph)" in (out / "report.md").read_text().splitlines()[0]
    net = archdsl.load(out)  # its config says deploy: true; model.pt holds the deployed weights
    assert count(net, torch.nn.BatchNorm2d) == 0
    assert rep["total"]["params"] == n_params(net)
    train_form = archdsl.cost("resnet18")
    assert not train_form.deployed and train_form.total.params > rep["total"]["params"]


# Marks (empty block calls, as `feature_map`) between the layers deploy joins:
# in a chain, in a graph of named values, and inside and after a fused sum.
MARKED = """
block mark() { }

network marked(res = 12) {
  input(4, res, res)
  stem { conv(8, 3) mark bn relu }
  stage {
    -> a
    from a conv(8, 3) mark bn -> b
    add(a, b) relu
    parallel sum { branch { conv(8, 3) mark bn } branch { conv(8, 1) bn } }
    mark mark bn relu
  }
  head { global_pool linear(10) }
}
"""


def _built(tmp_path, text: str) -> torch.nn.Module:
    f = tmp_path / "spec.arch"
    f.write_text(text)
    torch.manual_seed(0)
    return trained(build_module(elaborate(load_program(f), {})))


def test_marks_do_not_stop_folding_or_fusion(tmp_path):
    net = _built(tmp_path, MARKED)
    d = archdsl.deploy(net)
    assert max_diff(net, d, net.input_shape) <= TOL
    assert count(d, torch.nn.BatchNorm2d) == 0 and count(d, ParallelSum) == 0
    # three 3x3 convs of 8 outputs with biases (stem 4 -> 8, the graph's, the fused sum) and the classifier
    assert n_params(d) == (8 * 4 * 9 + 8) + 2 * (8 * 8 * 9 + 8) + (8 * 10 + 10)
    empty = [m for m in d.modules() if isinstance(m, torch.nn.Sequential) and len(m) == 0]
    assert len(empty) == 5  # every mark is kept, after the layer it follows now
    unmarked = _built(tmp_path, re.sub(r" mark(?=[ \n])", "", MARKED))  # the calls, not the block
    assert n_params(archdsl.deploy(unmarked)) == n_params(d)


def test_ghostnet_stem_map_before_its_bn_deploys():
    """GhostNet's first map is its stem conv's, marked before the BN (as timm
    takes it): every BN of the network follows a conv and folds; the
    deployed network's maps are the train form's after each fold (its first:
    the stem's BN output, which no in-place relu after it overwrites)."""
    net = trained(archdsl.load("ghostnet_050", [f"params.res={RES}"]))
    d = archdsl.deploy(net)
    assert count(d, torch.nn.BatchNorm2d) == 0
    x = torch.randn(1, 3, RES, RES)
    with torch.no_grad():
        mine = d.forward_intermediates(x, intermediates_only=True)
        want = net.forward_intermediates(x, intermediates_only=True)
        want[0] = net.stem[2](want[0])  # the stem conv's output, through its BN
    assert len(mine) == len(want) == 5
    assert all((a - b).abs().max() <= TOL * max(1.0, b.abs().max().item()) for a, b in zip(mine, want))
