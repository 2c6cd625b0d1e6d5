"""The cheaper construction paths (archdsl.construct) make the same modules as
torch's plain constructors: same classes, attributes, repr, state dict and,
seeded alike, the same initial weights."""
import pytest
import torch
from torch import nn
from torch.nn.modules import module as torch_module

import archdsl
from archdsl import construct
from archdsl.ops.conv import SamePadConv2d
from archdsl.ops.linear import FlatLinear
from archdsl.ops.ws_conv import SamePadWsConv2d, WsConv2d

# Shuffle units, ghost modules (concat, split), SE gates, residuals with zero-init
# BN, TF "same" padding, weight-standardized convs with gains.
PRESETS = ["shufflenet_v2_x0_5", "ghostnet_100", "mobilenetv3_small_075", "resnet50",
           "tf_efficientnet_lite0", "nf_resnet50", "convnextv2_atto"]


@pytest.fixture
def plain_only(monkeypatch):
    """Every shortcut off: what torch's constructors alone build."""
    monkeypatch.setattr(construct, "plain_registration", lambda: False)


def build(preset, seed):
    torch.manual_seed(seed)
    return archdsl.compile(preset).module()


def non_tensor_state(m: nn.Module) -> dict:
    skip = {"_parameters", "_buffers", "_modules"}
    return {k: v for k, v in vars(m).items() if k not in skip}


def assert_same_modules(fast: nn.Module, plain: nn.Module) -> None:
    assert repr(fast) == repr(plain)
    pairs = list(zip(fast.named_modules(), plain.named_modules(), strict=True))
    for (name, a), (name_b, b) in pairs:
        assert name == name_b and type(a) is type(b), name
        assert non_tensor_state(a) == non_tensor_state(b), name
        assert list(a._parameters) == list(b._parameters) and list(a._buffers) == list(b._buffers), name
    sa, sb = fast.state_dict(), plain.state_dict()
    assert list(sa) == list(sb)
    for k in sa:
        assert sa[k].shape == sb[k].shape and sa[k].dtype == sb[k].dtype, k
        assert torch.equal(sa[k], sb[k]), k  # same seed, same draws in the same order
    for (_, p), (_, q) in zip(fast.named_parameters(), plain.named_parameters(), strict=True):
        assert p.requires_grad == q.requires_grad and type(p) is type(q)


@pytest.mark.parametrize("preset", PRESETS)
def test_networks_equal_plainly_constructed_ones(preset, monkeypatch):
    fast = build(preset, seed=7)
    with monkeypatch.context() as m:
        m.setattr(construct, "plain_registration", lambda: False)
        plain = build(preset, seed=7)
    assert_same_modules(fast, plain)
    # Forward: the same function, checked with one set of weights copied into both.
    plain.load_state_dict(fast.state_dict())
    x = torch.randn(2, *fast.input_shape)
    fast.eval(), plain.eval()
    with torch.no_grad():
        assert torch.equal(fast(x), plain(x))


def test_the_shortcuts_are_taken():
    """A control for the test above: the fast build really used replicas."""
    made = []
    real = construct._Snapshot.replica
    make = construct.Replicator()
    construct._Snapshot.replica = lambda self, cls: made.append(cls) or real(self, cls)
    try:
        first, second = make(nn.Conv2d, 8, 8, 3, padding=1), make(nn.Conv2d, 8, 8, 3, padding=1)
        make(nn.BatchNorm2d, 8), make(nn.BatchNorm2d, 8), make(nn.BatchNorm2d, 4)
    finally:
        construct._Snapshot.replica = real
    assert made == [nn.Conv2d, nn.BatchNorm2d] and second is not first


@pytest.mark.parametrize("cls,args,kwargs", [
    (nn.Conv2d, (8, 16, 3), dict(stride=2, padding=1, groups=2, bias=False)),
    (nn.Conv2d, (8, 8, 1), dict(bias=True)),
    (SamePadConv2d, (8, 8, 3), dict(stride=2, padding=0)),
    (nn.BatchNorm2d, (16,), dict(eps=1e-3, momentum=0.01)),
    (FlatLinear, (32, 10), dict(bias=True)),
])
def test_a_replica_is_an_independent_freshly_initialized_module(cls, args, kwargs):
    make = construct.Replicator()
    torch.manual_seed(0)
    first, replica = make(cls, *args, **kwargs), make(cls, *args, **kwargs)
    torch.manual_seed(0)
    plain_first, plain_second = cls(*args, **kwargs), cls(*args, **kwargs)
    assert_same_modules(first, plain_first)
    assert_same_modules(replica, plain_second)
    # Nothing shared with the first: tensors, hook registries, parameter dicts.
    for (_, a), (_, b) in zip(first.state_dict(keep_vars=True).items(), replica.state_dict(keep_vars=True).items()):
        assert a.data_ptr() != b.data_ptr()
    replica.register_forward_hook(lambda *a: None)
    assert not first._forward_hooks and replica._forward_hooks
    replica.extra = nn.Parameter(torch.zeros(1))
    assert "extra" not in first._parameters


def test_a_build_on_another_device_or_dtype_replicates_there():
    assert all(t.is_meta for t in archdsl.compile("shufflenet_v2_x0_5").module(device="meta").state_dict().values())
    make = construct.Replicator()
    make(nn.Conv2d, 4, 4, 3)
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        assert make(nn.Conv2d, 4, 4, 3).weight.dtype == torch.float64
    finally:
        torch.set_default_dtype(old)


def test_only_classes_whose_initialization_it_can_redo_are_replicated():
    assert construct.replicable(nn.Conv2d) and construct.replicable(SamePadConv2d)
    assert construct.replicable(nn.BatchNorm2d) and construct.replicable(FlatLinear)
    # Their own __init__ / reset_parameters: always built by their constructor.
    assert not construct.replicable(WsConv2d) and not construct.replicable(SamePadWsConv2d)
    assert not construct.replicable(nn.LayerNorm)
    # torch's parameterless leaves are copied as they are; a subclass may do more in __init__
    assert construct.replicable(nn.ReLU) and construct.replicable(nn.AdaptiveAvgPool2d)

    class Counted(nn.ReLU):
        pass
    assert not construct.replicable(Counted)


def test_global_registration_hooks_see_every_module():
    seen = []
    handle = torch_module.register_module_module_registration_hook(lambda m, name, sub: seen.append(name))
    try:
        net = archdsl.compile("shufflenet_v2_x0_5").module()
    finally:
        handle.remove()
    assert len(seen) == sum(1 for _ in net.modules()) - 1  # every module but the root


@pytest.fixture
def fresh_templates(monkeypatch):
    """No class templates learnt yet (they are kept per process)."""
    monkeypatch.setattr(construct, "_TEMPLATES", {})


CONV_ARGS = [((8, 16, 3), dict(stride=2, padding=1, dilation=1, groups=1, bias=False)),
             ((16, 16, 5), dict(stride=1, padding=4, dilation=2, groups=16, bias=True)),
             ((12, 24, 1), dict(stride=1, padding=0, groups=3, bias=False)),
             ((6, 4, 7), dict(padding=3)),
             ((10, 20, 3), dict(bias=True, groups=5))]
BN_ARGS = [((8,), dict(eps=1e-5, momentum=0.1)), ((24,), dict(eps=1e-3, momentum=0.01)), ((5,), {})]


def assert_same_layer(a: nn.Module, b: nn.Module) -> None:
    assert type(a) is type(b) and repr(a) == repr(b)
    assert non_tensor_state(a) == non_tensor_state(b)
    assert {k: repr(v) for k, v in non_tensor_state(a).items()} == {k: repr(v) for k, v in non_tensor_state(b).items()}
    for d in ("_parameters", "_buffers"):
        ta, tb = getattr(a, d), getattr(b, d)
        assert list(ta) == list(tb)
        for k in ta:
            assert (ta[k] is None) == (tb[k] is None), k
            if ta[k] is not None:
                assert type(ta[k]) is type(tb[k]) and ta[k].requires_grad == tb[k].requires_grad
                assert ta[k].dtype == tb[k].dtype and ta[k].stride() == tb[k].stride()
                assert torch.equal(ta[k], tb[k]), k  # seeded alike: the same draws


def assert_made_like_constructors(make, cls, calls, seed) -> None:
    """make(cls, ...) for each call equals cls(...) for it, seeded alike."""
    torch.manual_seed(seed)
    fast = [make(cls, *args, **kwargs) for args, kwargs in calls]
    torch.manual_seed(seed)
    plain = [cls(*args, **kwargs) for args, kwargs in calls]
    for a, b in zip(fast, plain, strict=True):
        assert_same_layer(a, b)


@pytest.mark.parametrize("cls, calls", [(nn.Conv2d, CONV_ARGS), (SamePadConv2d, CONV_ARGS),
                                        (nn.BatchNorm2d, BN_ARGS)])
def test_layers_with_new_arguments_equal_their_constructors(cls, calls, fresh_templates, monkeypatch):
    made = []
    real = construct._Template.make
    monkeypatch.setattr(construct._Template, "make",
                        lambda self, *a, draw: made.append(draw) or real(self, *a, draw=draw))
    assert_made_like_constructors(construct.Replicator(), cls, calls, seed=3)
    # The first is built plainly, the second plainly and checked against the
    # template (a dry make), the rest are made from it.
    assert made == [False] + [True] * (len(calls) - 2)


def test_a_template_that_disagrees_with_the_constructor_is_dropped(fresh_templates, monkeypatch):
    def wrong(args, kwargs):
        plain, shapes = real_rule(args, kwargs)
        return {**plain, "padding": list(plain["padding"])}, shapes  # a list where torch keeps a tuple
    real_rule = construct._conv_fields
    monkeypatch.setattr(construct, "_RULES", {nn.Conv2d: wrong, nn.BatchNorm2d: construct._bn_fields})
    construct._rule_of.cache_clear()
    try:
        assert_made_like_constructors(construct.Replicator(), nn.Conv2d, CONV_ARGS, seed=5)
        assert construct._TEMPLATES[construct._template_key(nn.Conv2d)] is None
    finally:
        construct._rule_of.cache_clear()


def test_unusual_arguments_go_to_the_constructor(fresh_templates):
    make = construct.Replicator()
    for args, kwargs in CONV_ARGS[:2]:
        make(nn.Conv2d, *args, **kwargs)
    odd = [((4, 8, (3, 1)), {}), ((4, 8, 3), dict(padding="same")), ((4, 8, 3), dict(padding_mode="reflect"))]
    assert_made_like_constructors(make, nn.Conv2d, odd, seed=1)
    assert construct._conv_fields(*odd[0]) is None and construct._conv_fields(*odd[2]) is None
