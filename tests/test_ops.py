"""Primitive ops whose lowering is ours: compared with timm's layers of the same name."""
import pytest
import torch
from timm.layers import Conv2dSame, LayerNorm2d
from timm.layers.grn import GlobalResponseNorm as TimmGRN

from archdsl.ops import REGISTRY, LowerContext


def lowered(op, x_shape, **attrs):
    d = REGISTRY[op]
    a = d.attrs.model_validate(attrs)
    y = d.shape(a, x_shape)
    return a, y, d.lower(a, x_shape, y, LowerContext())


@pytest.mark.parametrize("size,k,stride", [(224, 3, 2), (225, 3, 2), (15, 5, 2), (16, 5, 1), (7, 4, 1), (9, 1, 2)])
def test_same_padding_matches_tensorflow_rule(size, k, stride):
    a, y, conv = lowered("conv", (4, size, size), out=6, k=k, stride=stride, padding="same")
    ref = Conv2dSame(4, 6, k, stride=stride, bias=False)
    ref.weight.data.copy_(conv.weight.data)
    x = torch.randn(1, 4, size, size)
    out = conv(x)
    assert tuple(out.shape[1:]) == y == (6, -(-size // stride), -(-size // stride))
    assert torch.allclose(out, ref(x), atol=1e-5)


def test_layer_norm_over_channels():
    a, y, m = lowered("layer_norm", (8, 5, 5))
    ref = LayerNorm2d(8, eps=1e-6)
    with torch.no_grad():
        m.weight.uniform_(); m.bias.uniform_()
        ref.weight.copy_(m.weight); ref.bias.copy_(m.bias)
    x = torch.randn(2, 8, 5, 5)
    assert torch.allclose(m(x), ref(x), atol=1e-5)
    assert REGISTRY["layer_norm"].cost(a, (8, 5, 5), y).params == 16


def test_grn_matches_timm():
    a, y, m = lowered("grn", (8, 5, 5))
    ref = TimmGRN(8, channels_last=False)
    with torch.no_grad():
        m.weight.uniform_(); m.bias.uniform_()
        ref.weight.copy_(m.weight); ref.bias.copy_(m.bias)
    x = torch.randn(2, 8, 5, 5)
    assert torch.allclose(m(x), ref(x), atol=1e-5)


def test_layer_scale_and_slice():
    a, y, m = lowered("layer_scale", (3, 2, 2), init=0.5)
    x = torch.randn(1, 3, 2, 2)
    assert torch.allclose(m(x), 0.5 * x) and sum(p.numel() for p in m.parameters()) == 3
    a, y, m = lowered("slice_channels", (6, 2, 2), c=4, start=1)
    assert y == (4, 2, 2) and torch.equal(m(torch.arange(24.).view(1, 6, 2, 2)), torch.arange(4., 20.).view(1, 4, 2, 2))


def test_port_fills_a_1x1_conv_from_a_linear_and_rejects_mismatches():
    from archdsl.port import PortError, from_reference

    ours = torch.nn.Sequential(torch.nn.Conv2d(4, 6, 1))
    ref = torch.nn.Sequential(torch.nn.Linear(4, 6))
    from_reference(ours, ref.state_dict())
    x = torch.randn(3, 4)
    assert torch.allclose(ours(x[:, :, None, None]).flatten(1), ref(x), atol=1e-6)
    with pytest.raises(PortError, match="shape"):
        from_reference(torch.nn.Sequential(torch.nn.Conv2d(4, 6, 3)), ref.state_dict())
    with pytest.raises(PortError, match="more tensors"):
        from_reference(torch.nn.Sequential(torch.nn.Conv2d(4, 6, 1), torch.nn.BatchNorm2d(6)), ref.state_dict())
