"""The `mqa` op and MobileNetV4's blocks against timm's modules, one at a time.

Counts are compared on the meta device, where SDPA decomposes into the two
matmuls FlopCounterMode counts, and on the CPU, whose flash kernel torch's
counter counts once archdsl.ops.mhsa has given it the formula it lacks.
Layer-scale gammas and BN statistics are randomized before comparing
outputs, so a block whose residual branch is wrong cannot hide behind a
1e-5 layer scale.
"""
import pytest
import torch
from timm.layers.attention2d import MultiQueryAttention2d
from timm.models._efficientnet_blocks import MobileAttention, UniversalInvertedResidual
from torch.utils.flop_counter import FlopCounterMode

from archdsl.backends.cost import report
from archdsl.backends.torch.lower import build_module
from archdsl.compiler.elaborate import elaborate
from archdsl.language.program import load_program
from archdsl.ops import REGISTRY, LowerContext
from archdsl.port import from_reference

# (channels, H, W, heads, key_dim, value_dim, out, kv_stride, k)
CASES = [
    (160, 16, 16, 4, 64, 64, 160, 2, 3),  # MobileNetV4-Hybrid-M, stage 2
    (256, 8, 8, 4, 64, 64, 256, 1, 3),  # MobileNetV4-Hybrid-M, stage 3
    (48, 11, 10, 3, 16, 24, 32, 2, 3),  # odd, non-square; value_dim != key_dim; out != in
    (32, 9, 9, 2, 8, 8, 32, 3, 5),
]


def mqa_pair(case, device="cpu"):
    c, h, w, heads, kd, vd, out, s, k = case
    d = REGISTRY["mqa"]
    a = d.attrs.model_validate(dict(heads=heads, key_dim=kd, value_dim=vd, out=out, kv_stride=s, k=k))
    y = d.shape(a, (c, h, w))
    with torch.device(device):
        ours = d.lower(a, (c, h, w), y, LowerContext())
        ref = MultiQueryAttention2d(c, out, num_heads=heads, key_dim=kd, value_dim=vd,
                                    kv_stride=s, dw_kernel_size=k)
    return a, y, ours, ref


def randomize(m: torch.nn.Module) -> None:
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.running_mean.uniform_(-0.5, 0.5)
                mod.running_var.uniform_(0.5, 2.0)
                mod.weight.uniform_(0.5, 1.5)
                mod.bias.uniform_(-0.5, 0.5)
        for name, p in m.named_parameters():
            if name.endswith("gamma"):
                p.uniform_(0.5, 1.5)


def macs(m, shape, device="meta"):
    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        m.eval()(torch.zeros(1, *shape, device=device))
    counts = {str(k): v // 2 for k, v in fc.get_flop_counts()["Global"].items()}
    return fc.get_total_flops() // 2, counts


def n_params(m):
    return sum(p.numel() for p in m.parameters())


@pytest.mark.parametrize("case", CASES)
def test_mqa_op_matches_timm_after_port(case):
    torch.manual_seed(0)
    a, y, ours, ref = mqa_pair(case)
    randomize(ref)
    pairs = from_reference(ours, ref.state_dict())
    assert [o.split(".")[0] for o, _ in pairs] == [r.split(".")[0] for _, r in pairs]
    x = 3 * torch.randn(2, *case[:3])  # sharp enough that the attention is far from uniform
    with torch.no_grad():
        got, want = ours.eval()(x), ref.eval()(x)
    assert tuple(got.shape[1:]) == y == (case[6], case[1], case[2])
    assert (got - want).abs().max().item() <= 1e-5 * want.abs().max().item()


@pytest.mark.parametrize("case", CASES)
def test_mqa_op_cost_equals_flopcounter(case):
    c, h, w, heads, kd, vd, out, s, k = case
    a, y, ours, ref = mqa_pair(case, device="meta")
    cost = REGISTRY["mqa"].cost(a, (c, h, w), y)
    ours_macs, _ = macs(ours, (c, h, w))
    ref_macs, ref_counts = macs(ref, (c, h, w))
    assert cost.params == n_params(ours) == n_params(ref)
    assert cost.macs == ours_macs == ref_macs
    # The attention matmuls are counted, over the reduced key/value grid.
    kv_h, kv_w = [n if s == 1 else (n + 2 * ((s - 1 + k - 1) // 2) - k) // s + 1 for n in (h, w)]
    assert ref_counts["aten.bmm"] == heads * h * w * kv_h * kv_w * (kd + vd)


def one_block(tmp_path, shape, call):
    f = tmp_path / "one.arch"
    f.write_text(f'use "blocks/uib"\nnetwork one() {{\n  input{shape}\n  stage {{ {call} }}\n}}\n')
    return elaborate(load_program(f), {})


@pytest.mark.parametrize("kv_stride,ls", [(2, 1e-5), (1, 0.0)])
def test_mobile_mqa_block_matches_timm(tmp_path, kv_stride, ls):
    torch.manual_seed(0)
    shape = (160, 16, 16)
    spec = one_block(tmp_path, shape, f"mobile_mqa(160, 4, 64, kv_stride: {kv_stride}, ls: {ls})")
    ref_args = dict(num_heads=4, key_dim=64, value_dim=64, use_multi_query=True,
                    kv_stride=kv_stride, layer_scale_init_value=ls or None)
    ref = MobileAttention(160, 160, **ref_args)
    randomize(ref)
    net = build_module(spec)
    from_reference(net, ref.state_dict())
    x = torch.randn(2, *shape)
    with torch.no_grad():
        assert (net.eval()(x) - ref.eval()(x)).abs().max().item() <= 1e-4
    with torch.device("meta"):
        meta_ref = MobileAttention(160, 160, **ref_args)
    rep = report(spec, "one")
    assert rep.total.params == n_params(ref)
    assert rep.total.macs == macs(build_module(spec, device="meta"), shape)[0] == macs(meta_ref, shape)[0]


# (start_k, mid_k, stride): ExtraDW, IB, ConvNeXt-like, FFN; strided where timm allows it.
UIB_FORMS = [(3, 5, 1), (5, 5, 2), (0, 3, 1), (0, 5, 2), (3, 0, 1), (5, 0, 2), (0, 0, 1)]


@pytest.mark.parametrize("start_k,mid_k,stride", UIB_FORMS)
def test_uib_forms_match_timm(tmp_path, start_k, mid_k, stride):
    torch.manual_seed(0)
    shape = (32, 14, 14)
    out = 32 if stride == 1 else 48
    spec = one_block(tmp_path, shape, f"uib({out}, start_k: {start_k}, mid_k: {mid_k}, "
                                      f"stride: {stride}, expand: 3, ls: 1e-5)")
    ref = UniversalInvertedResidual(32, out, dw_kernel_size_start=start_k, dw_kernel_size_mid=mid_k,
                                    stride=stride, exp_ratio=3, layer_scale_init_value=1e-5)
    randomize(ref)
    net = build_module(spec)
    from_reference(net, ref.state_dict())
    x = torch.randn(2, *shape)
    with torch.no_grad():
        got, want = net.eval()(x), ref.eval()(x)
    assert got.shape == want.shape and (got - want).abs().max().item() <= 1e-4
    rep = report(spec, "one")
    assert rep.total.params == n_params(ref)
    assert rep.total.macs == macs(ref, shape, device="cpu")[0]
