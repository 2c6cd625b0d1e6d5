"""The ops the field uses beyond the presets: non-square conv and pool
geometry, pad, shift, upsample, group_norm, parametric activations, avgmax
global pooling, softmax. Each is written as a spec, elaborated and built, and
checked four ways: output shape against the IR, params (module = report),
MACs (report = FlopCounterMode / 2, on a random input and on the meta device;
tests/op_harness.py), and values against a
direct torch computation with the module's own weights."""
import math

import pytest
import torch
import torch.nn.functional as F
from op_harness import SHAPE, built, spec_text  # noqa: F401 (built: a fixture)
from reference import n_params
from torch.utils.flop_counter import FlopCounterMode

import archdsl
from archdsl.backends.torch.lower import build_module
from archdsl.compiler.elaborate import elaborate
from archdsl.language.errors import ArchError
from archdsl.ops import REGISTRY

pytestmark = pytest.mark.usefixtures("one_thread")


def close(a, b):
    return torch.allclose(a, b, atol=1e-5, rtol=1e-5)


# --- conv: non-square kernel, stride, dilation, padding -------------------------------

@pytest.mark.parametrize("body,kw", [
    ("conv(8, (1, 7))", dict(padding=(0, 3))),  # Inception's 1x7: auto padding per axis
    ("conv(8, (7, 1), bias: true)", dict(padding=(3, 0))),
    ("conv(8, (3, 5), stride: (2, 1), dilation: (1, 2))", dict(stride=(2, 1), padding=(1, 4), dilation=(1, 2))),
    ("conv(8, (3, 3), padding: (1, 0))", dict(padding=(1, 0))),
    ("conv(8, 3, stride: (1, 2))", dict(stride=(1, 2), padding=1)),
    ("conv(8, (1, 7), padding: \"same\")", dict(padding=(0, 3))),  # stride 1, odd: symmetric
    ("conv(8, (1, 3), groups: 2, padding: 0)", dict(groups=2)),
    ("conv(8, [1, 5], stride: [2, 2])", dict(stride=2, padding=(0, 2))),  # a list works as a tuple
])
def test_conv_per_axis_geometry(built, body, kw):
    spec, net, conv, x, y = built(body)
    assert isinstance(conv, torch.nn.Conv2d)
    assert close(y, F.conv2d(x, conv.weight, conv.bias, **kw))


def test_conv_square_pair_is_the_int(built):
    spec, *_ = built("conv(8, (3, 3), stride: (1, 1), padding: (1, 1))")
    a = spec.children[1].children[0].children[0].attrs
    assert (a.k, a.stride, a.padding) == (3, 1, 1)
    assert a == REGISTRY["conv"].attrs(out=8, k=3, padding=1)


@pytest.mark.parametrize("k,stride", [((2, 3), (2, 1)), ((1, 4), (1, 3)), ((3, 2), 2)])
def test_conv_tensorflow_same_padding_per_axis(built, k, stride):
    from timm.layers import Conv2dSame

    spec, net, conv, x, y = built(f'conv(6, {k}, stride: {stride}, padding: "same")')
    sh, sw = (stride, stride) if isinstance(stride, int) else stride
    assert tuple(y.shape[2:]) == (math.ceil(SHAPE[1] / sh), math.ceil(SHAPE[2] / sw))
    ref = Conv2dSame(4, 6, k, stride=stride, bias=False)
    ref.weight.data.copy_(conv.weight.data)
    assert close(y, ref(x))


def test_ws_conv_takes_per_axis_geometry(built):
    spec, net, conv, x, y = built("ws_conv(8, (1, 3), stride: (2, 1))")
    assert conv.kernel_size == (1, 3) and conv.stride == (2, 1) and conv.padding == (0, 1)
    assert close(y, F.conv2d(x, conv.standardized_weight(conv.weight), conv.bias, stride=(2, 1), padding=(0, 1)))


def test_non_square_convs_deploy_to_the_same_function(built):
    body = """conv(8, (1, 3)) bn relu
    parallel sum { branch { conv(8, (1, 3)) bn } branch { conv(8, (3, 1)) bn } branch { bn } }
    residual { conv(8, (3, 1), padding: (1, 0)) bn }"""
    spec, net, conv, x, y = built(body)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
        d = archdsl.deploy(net, channels_last=False, prepack=False)
        assert close(d.forward_features(x), net.forward_features(x))
    # Each BN after a conv folds into it; kernels on non-square grids are not
    # fused, so the BN of the sum's identity branch stays.
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in d.modules()) == 1
    assert sorted(m.kernel_size for m in d.modules() if isinstance(m, torch.nn.Conv2d)) == [
        (1, 3), (1, 3), (3, 1), (3, 1)]


# --- max_pool / avg_pool -------------------------------------------------------

@pytest.mark.parametrize("body,ref", [
    ("max_pool((1, 3), stride: (1, 2), padding: (0, 1))",
     lambda x: F.max_pool2d(x, (1, 3), (1, 2), (0, 1))),
    ("max_pool((3, 2))", lambda x: F.max_pool2d(x, (3, 2))),
    ("max_pool(3, stride: (2, 1), padding: 1, ceil_mode: true)",
     lambda x: F.max_pool2d(x, 3, (2, 1), 1, ceil_mode=True)),
    ("avg_pool((2, 3), stride: 1)", lambda x: F.avg_pool2d(x, (2, 3), 1)),
    ("avg_pool((3, 1), stride: (2, 1), padding: (1, 0), ceil_mode: true, count_include_pad: false)",
     lambda x: F.avg_pool2d(x, (3, 1), (2, 1), (1, 0), ceil_mode=True, count_include_pad=False)),
])
def test_pool_per_axis_geometry(built, body, ref):
    spec, net, pool, x, y = built(body)
    assert close(y, ref(x))


# --- pad, shift, upsample --------------------------------------------------------

@pytest.mark.parametrize("body,pads", [("pad(1)", (1, 1, 1, 1)), ("pad((1, 2, 0, 3))", (1, 2, 0, 3)),
                                       ("pad(padding: [0, 0, 2, 0])", (0, 0, 2, 0))])
def test_pad(built, body, pads):
    spec, net, m, x, y = built(body)
    assert isinstance(m, torch.nn.ZeroPad2d)
    assert torch.equal(y, F.pad(x, pads))


@pytest.mark.parametrize("dy,dx", [(1, -2), (-3, 0), (0, 4), (0, 0)])
def test_shift(built, dy, dx):
    spec, net, m, x, y = built(f"shift({dy}, {dx})")
    _, _, h, w = x.shape
    ref = torch.zeros_like(x)
    ref[..., max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = \
        x[..., max(-dy, 0):h - max(dy, 0), max(-dx, 0):w - max(dx, 0)]
    assert torch.equal(y, ref)


@pytest.mark.parametrize("body,kw", [
    ("upsample", dict(scale_factor=2.0, mode="nearest")),
    ("upsample(2, \"bilinear\")", dict(scale_factor=2.0, mode="bilinear", align_corners=False)),
    ("upsample(2, \"bilinear\", align_corners: true)", dict(scale_factor=2.0, mode="bilinear", align_corners=True)),
    ("upsample(1.5, \"bicubic\")", dict(scale_factor=1.5, mode="bicubic", align_corners=False)),
    ("upsample(3, \"nearest-exact\")", dict(scale_factor=3.0, mode="nearest-exact")),
    ("upsample(0.5)", dict(scale_factor=0.5, mode="nearest")),
    ("upsample(size: (12, 10), mode: \"bilinear\")", dict(size=(12, 10), mode="bilinear", align_corners=False)),
    ("upsample(size: 16)", dict(size=(16, 16), mode="nearest")),
])
def test_upsample(built, body, kw):
    spec, net, m, x, y = built(body)  # no params, and FlopCounterMode counts no MACs
    assert isinstance(m, torch.nn.Upsample)
    assert torch.equal(y, F.interpolate(x, **kw))


def test_upsample_counts_no_macs():
    # The convention the cost rule follows, checked on torch itself.
    for mode in ("nearest", "bilinear", "bicubic"):
        with FlopCounterMode(display=False) as fc:
            F.interpolate(torch.randn(1, 3, 8, 8), scale_factor=2, mode=mode)
        assert fc.get_total_flops() == 0


# --- group_norm ---------------------------------------------------------------------

@pytest.mark.parametrize("body,groups,eps,affine", [
    ("group_norm(2)", 2, 1e-5, True), ("group_norm(4, eps: 1e-3, affine: false)", 4, 1e-3, False),
    ("group_norm(1)", 1, 1e-5, True),
])
def test_group_norm(built, body, groups, eps, affine):
    spec, net, m, x, y = built(body)
    assert isinstance(m, torch.nn.GroupNorm) and n_params(net) == (2 * SHAPE[0] if affine else 0)
    assert close(y, F.group_norm(x, groups, m.weight, m.bias, eps))


# --- activations ---------------------------------------------------------------------

ACTS = [
    ("leaky_relu(0.2)", lambda x: F.leaky_relu(x, 0.2)),
    ("leaky_relu", lambda x: F.leaky_relu(x, 0.01)),
    ('act("leaky_relu")', lambda x: F.leaky_relu(x, 0.01)),
    ("elu(0.5)", lambda x: F.elu(x, 0.5)),
    ('act("elu")', F.elu),
    ("celu(alpha: 2.0)", lambda x: F.celu(x, 2.0)),
    ("selu", F.selu),
    ('act("selu")', F.selu),
    ("mish", F.mish),
    ('act("mish")', F.mish),
    ("gelu", F.gelu),  # exact, as before
    ('act("gelu")', F.gelu),
    ('gelu(approximate: "tanh")', lambda x: F.gelu(x, approximate="tanh")),
    ('gelu("tanh")', lambda x: F.gelu(x, approximate="tanh")),
    ("gelu_tanh", lambda x: F.gelu(x, approximate="tanh")),
    ('act("gelu_tanh")', lambda x: F.gelu(x, approximate="tanh")),
    ("hard_tanh", F.hardtanh),
    ("hard_tanh(min: 0, max: 6)", lambda x: F.hardtanh(x, 0.0, 6.0)),
    ("hard_tanh(-0.5, 0.5)", lambda x: F.hardtanh(x, -0.5, 0.5)),
    ("softplus", F.softplus),
    ("softplus(beta: 2, threshold: 1)", lambda x: F.softplus(x, 2.0, 1.0)),
    ('act("softplus")', F.softplus),
    ("relu", F.relu),
    ('act("silu")', F.silu),
    ("swish", F.silu),
    ("hard_swish", F.hardswish),
]


@pytest.mark.parametrize("body,ref", ACTS, ids=[b for b, _ in ACTS])
def test_activation(built, body, ref):
    spec, net, m, x, y = built(body)
    assert n_params(net) == 0
    assert torch.equal(y, ref(x))


@pytest.mark.parametrize("body,params,init", [("prelu", 1, 0.25), ('act("prelu")', 1, 0.25),
                                              ("prelu(per_channel: true, init: 0.1)", SHAPE[0], 0.1),
                                              ("prelu(true)", SHAPE[0], 0.25)])
def test_prelu(program_of, built, body, params, init):
    spec = elaborate(program_of(spec_text(body)), {})
    fresh = build_module(spec)
    assert all(torch.all(p == init) for p in fresh.parameters())
    spec, net, m, x, y = built(body)
    assert isinstance(m, torch.nn.PReLU) and n_params(net) == params
    assert torch.equal(y, F.prelu(x, m.weight))


def test_parametric_activation_runs_in_place_after_a_conv_and_trains(built):
    spec, net, conv, x, y = built("conv(4, 1) leaky_relu(0.2) conv(4, 1) elu conv(4, 1) hard_tanh(min: 0, max: 2)")
    blocks = net.stages[0].blocks
    assert blocks[1].inplace and blocks[3].inplace and blocks[5].inplace
    with torch.no_grad():
        ref = F.hardtanh(blocks[4](F.elu(blocks[2](F.leaky_relu(conv(x), 0.2)))), 0.0, 2.0)
    assert close(y, ref)
    net.train()
    net.forward_features(x).sum().backward()
    assert conv.weight.grad is not None


def test_gelu_kind_and_act_choices_keep_their_meaning(built):
    spec, *_ = built('gelu act("relu") relu6 silu')
    kinds = [n.kind for n in spec.children[1].children[0].children]
    assert kinds == ["gelu", "act", "act", "act"]
    assert REGISTRY["relu"].canonical == "act"


# --- global_pool, softmax -------------------------------------------------------------

@pytest.mark.parametrize("kind,ref", [
    ("avgmax", lambda x: 0.5 * (x.mean((2, 3), keepdim=True) + x.amax((2, 3), keepdim=True))),
    ("avg", lambda x: x.mean((2, 3), keepdim=True)),
    ("max", lambda x: x.amax((2, 3), keepdim=True)),
])
def test_global_pool_kinds(built, kind, ref):
    spec, net, m, x, y = built(f'global_pool("{kind}")')
    assert spec.out_shape == (SHAPE[0], 1, 1)
    assert close(y, ref(x))


def test_global_pool_avgmax_matches_timm(built):
    from timm.layers import SelectAdaptivePool2d

    spec, net, m, x, y = built('conv(8, 3) global_pool(kind: "avgmax")')
    ref = SelectAdaptivePool2d(pool_type="avgmax", flatten=False)
    with torch.no_grad():
        assert close(y, ref(m(x)))


def test_global_pool_avgmax_in_the_head_feeds_the_classifier(built):
    spec, net, m, x, y = built("conv(8, 3)", head='global_pool("avgmax") linear(10)')
    assert tuple(y.shape) == (2, 10) and net.num_features == 8


@pytest.mark.parametrize("body,dim", [("softmax", 1), ("softmax(dim: 3)", 3), ("softmax(-2)", -2),
                                      ("softmax(2)", 2)])
def test_softmax(built, body, dim):
    spec, net, m, x, y = built(body)
    assert torch.equal(y, F.softmax(x, dim))


# --- attribute and shape errors: ArchError at the op's file:line ------------------------

ERRORS = [
    ("conv(8, (1, 0))", "argument 'k' = (1, 0): input should be greater than 0"),
    ("conv(8, (1, 2, 3))", "expected an int or a pair (h, w), got 3 values"),
    ("conv(8, 3, stride: (0, 1))", "argument 'stride'"),
    ("conv(8, 3, dilation: (1, \"x\"))", "argument 'dilation'"),
    ("conv(8, 3, padding: (1, -1))", "greater than or equal to 0"),
    ("conv(8, (1, 13), padding: 0)", "a 1x13 kernel with stride 1 leaves no output on a 9x11 input"),
    ("conv(8, (11, 1), stride: (2, 1), padding: 0)", "a 11x1 kernel with stride (2, 1) leaves no output"),
    ("max_pool((1, 3), padding: (1, 0))", "padding (1, 0) must be at most half the kernel (1, 3)"),
    ("max_pool(3, padding: 2)", "padding (2) must be at most half the kernel (3)"),
    ("avg_pool((2, 0))", "argument 'k'"),
    ("max_pool(3, stride: (1, 0))", "argument 'stride'"),
    ("avg_pool((10, 1))", "a 10x1 pool leaves no output on a 9x11 input"),
    ('upsample(mode: "cubic_x")', "argument 'mode' = 'cubic_x'"),
    ("upsample(align_corners: true)", "applies only to the bilinear and bicubic modes"),
    ("upsample(2, size: (4, 4))", "give a scale or a size, not both"),
    ("upsample(0)", "argument 'scale' = 0: input should be greater than 0"),
    ("upsample(0.1)", "a scale of 0.1 leaves no output on a 9x11 input"),
    ("upsample(size: (4, 0))", "argument 'size'"),
    ("pad(-1)", "argument 'padding' = -1"),
    ("pad((1, 2))", "expected an int or (left, right, top, bottom), got 2 values"),
    ("shift(9, 0)", "a shift by (9, 0) moves every pixel out of a 9x11 input"),
    ("shift(0, -11)", "moves every pixel out"),
    ("shift(0.5)", "argument 'dy'"),
    ("group_norm(3)", "groups (3) must divide the channels (4)"),
    ("group_norm(0)", "argument 'groups' = 0"),
    ("group_norm(2, eps: 0)", "argument 'eps'"),
    ("leaky_relu(-0.1)", "argument 'slope' = -0.1"),
    ("elu(0)", "argument 'alpha' = 0"),
    ("celu(alpha: -1)", "argument 'alpha'"),
    ("hard_tanh(min: 1, max: 0)", "argument 'max' = 0: value error, must be greater than min (1.0)"),
    ('gelu(approximate: "fast")', "argument 'approximate' = 'fast'"),
    ("softplus(beta: 0)", "argument 'beta'"),
    ("prelu(per_channel: 2)", "argument 'per_channel'"),
    ('act("swishy")', "argument 'fn' = 'swishy'"),
    ('global_pool("mean")', "argument 'kind' = 'mean'"),
    ("softmax(0)", "argument 'dim' = 0"),
    ("softmax(dim: 4)", "argument 'dim' = 4"),
]


@pytest.mark.parametrize("body,message", ERRORS, ids=[b for b, _ in ERRORS])
def test_bad_attributes_are_arch_errors_at_the_op(program_of, tmp_path, body, message):
    with pytest.raises(ArchError) as info:
        elaborate(program_of(spec_text(body)), {})
    e = info.value
    assert message in e.message
    assert e.loc is not None and e.loc.line == 4 and e.loc.file.endswith("spec.arch")
    assert f"spec.arch:4:" in str(e)


def test_no_activation_overwrites_an_output_autograd_keeps(tmp_path):
    # sigmoid, ELU and the like keep their output for backward: the next
    # activation must not run in place on it (after conv/bn it may).
    import torch as _torch

    from archdsl.backends.torch.lower import build_module as _build
    from archdsl.compiler.elaborate import elaborate as _elaborate
    from archdsl.language.program import load_program as _load

    f = tmp_path / "n.arch"
    f.write_text("network n() { input(3, 8, 8) stage { conv(8, 3) bn relu conv(8, 1) sigmoid relu elu "
                 "hard_tanh leaky_relu } }\n")
    net = _build(_elaborate(_load(f), {}))
    x = _torch.randn(2, 3, 8, 8, requires_grad=True)
    net(x).sum().backward()  # raised "modified by an inplace operation" when they did
    mods = list(net.stages[0].blocks)
    assert mods[2].inplace and not any(getattr(m, "inplace", False) for m in mods[5:])
