"""ws_conv and scale against timm's ScaledStdConv2d(Same) / StdConv2d after copying weights."""
import pytest
import torch
from timm.layers import ScaledStdConv2d, ScaledStdConv2dSame, StdConv2d
from torch.utils.flop_counter import FlopCounterMode

from archdsl.ops import REGISTRY, LowerContext


def lowered(op, x_shape, **attrs):
    d = REGISTRY[op]
    a = d.attrs.model_validate(attrs)
    y = d.shape(a, x_shape)
    return a, y, d.lower(a, x_shape, y, LowerContext())


def randomize(*modules):
    """Nonzero biases and gains, so a swapped tensor cannot go unnoticed."""
    with torch.no_grad():
        for m in modules:
            for p in m.parameters():
                p.uniform_(0.5, 1.5) if p.ndim != 4 or p.shape[1:] == (1, 1, 1) else p.normal_()


CASES = [  # (size, k, stride, groups, padding)
    (17, 3, 1, 1, None), (17, 3, 2, 4, None), (16, 1, 1, 1, None), (15, 7, 2, 1, None),
    (16, 3, 2, 1, "same"), (17, 3, 2, 2, "same"), (16, 3, 1, 4, "same"), (16, 1, 1, 1, "same"),
]


@pytest.mark.parametrize("size,k,stride,groups,padding", CASES)
def test_matches_timm_scaled_std_conv(size, k, stride, groups, padding):
    gamma, eps = 1.7139588594436646, 1e-5
    a, y, ours = lowered("ws_conv", (8, size, size), out=12, k=k, stride=stride, groups=groups,
                         padding=padding, gamma=gamma, eps=eps)
    if padding == "same":
        ref = ScaledStdConv2dSame(8, 12, k, stride=stride, groups=groups, gamma=gamma, eps=eps)
    else:
        ref = ScaledStdConv2d(8, 12, k, stride=stride, groups=groups, gamma=gamma, eps=eps)
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in ref.named_parameters()] == ["weight", "bias", "gain"]
    randomize(ref)
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(2, 8, size, size)
    out = ours(x)
    assert tuple(out.shape[1:]) == y
    torch.testing.assert_close(out, ref(x), rtol=1e-5, atol=1e-5)
    # cost rule: the conv's MACs (FlopCounterMode sees the same conv), params incl. gain
    c = REGISTRY["ws_conv"].cost(a, (8, size, size), y)
    assert c.params == sum(p.numel() for p in ref.parameters())
    with FlopCounterMode(display=False) as fc:
        ours(x[:1])
    assert c.macs == fc.get_total_flops() // 2


def test_standardizes_each_filter():
    # With gain g and gamma, the effective weight has per-filter mean 0 and std g * gamma / sqrt(fan_in).
    _, _, m = lowered("ws_conv", (6, 5, 5), out=4, k=3, gamma=2.0, gain_init=0.5)
    with torch.no_grad():
        m.weight.normal_(3.0, 2.0)  # variance far above eps
    w = m.standardized_weight(m.weight).flatten(1)
    assert torch.allclose(w.mean(1), torch.zeros(4), atol=1e-6)
    assert torch.allclose(w.std(1, unbiased=False), torch.full((4,), 0.5 * 2.0 / 54 ** 0.5), rtol=1e-4)
    assert torch.equal(m.gain.flatten(), torch.full((4,), 0.5))


def test_without_gain_is_timm_std_conv():
    a, y, ours = lowered("ws_conv", (8, 9, 9), out=6, k=3, stride=2, gain=False, bias=False)
    ref = StdConv2d(8, 6, 3, stride=2, eps=1e-6)
    assert [n for n, _ in ours.named_parameters()] == ["weight"]
    randomize(ref)
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(2, 8, 9, 9)
    torch.testing.assert_close(ours(x), ref(x), rtol=1e-5, atol=1e-5)
    assert REGISTRY["ws_conv"].cost(a, (8, 9, 9), y).params == 6 * 8 * 9
    with pytest.raises(ValueError, match="gain: true"):
        REGISTRY["ws_conv"].attrs.model_validate(dict(out=6, k=3, gain=False, gamma=1.7))


def test_scale_multiplies_without_cost():
    a, y, m = lowered("scale", (3, 2, 2), value=1.7015043497085571)
    x = torch.randn(1, 3, 2, 2)
    assert torch.equal(m(x), x * 1.7015043497085571) and list(m.parameters()) == []
    assert REGISTRY["scale"].cost(a, (3, 2, 2), y) == REGISTRY["identity"].cost(None, (3, 2, 2), y)
