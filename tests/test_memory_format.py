"""Memory formats: each op's declared layout rule (ops.registry.LAYOUTS)
against what its lowered module does, and the cost report's channels-last
flag per layer against the input each layer's module meets in the built
network, in a plain and a channels-last build."""
import pytest
import torch
from torch._prims_common import suggest_memory_format

from archdsl.api import compile
from archdsl.backends.cost import OP_CLASSES, channels_last_class, plain_class
from archdsl.ops import REGISTRY, LowerContext
from archdsl.ops.registry import LAYOUTS

MAP = (8, 5, 6)  # C, H, W: both formats distinct
TOKENS = (8, 30, 1)  # a token op's (C, N, 1)
# arguments an op needs, and the input shape of those taking tokens
ARGS = {"act": dict(fn="relu"), "conv": dict(out=8, k=3), "ws_conv": dict(out=8, k=3), "linear": dict(out=8),
        "avg_pool": dict(k=2), "max_pool": dict(k=2), "channel_shuffle": dict(groups=2), "group_norm": dict(groups=2),
        "slice_channels": dict(c=4), "pad": dict(padding=1), "shift": dict(dy=1, dx=1), "upsample": dict(scale=2),
        "reshape": dict(c=4, h=10, w=6), "transpose": dict(a=1, b=2), "mhsa": dict(heads=2),
        "mqa": dict(heads=2, key_dim=4), "chunk": dict(parts=2), "unflatten": dict(h=5, w=6), "scale": dict(value=2.0)}
ON_TOKENS = {"class_token", "mean_tokens", "take_token", "unflatten"}


def _channels_last(t: torch.Tensor) -> bool:
    """Strided as channels-last (a slice of channels of such a tensor too): what
    torch's kernels go by (and choose their output's format by)."""
    return t.dim() == 4 and not t.is_contiguous() and suggest_memory_format(t) == torch.channels_last


def _expected(rule: str, inputs: list[bool], weights: bool) -> bool:
    return {"keep": inputs[0], "channels_last": True, "contiguous": False, "all_inputs": all(inputs),
            "weights": inputs[0] or weights}[rule]


@pytest.mark.parametrize("name", sorted(n for n in REGISTRY if n != "matmul"))
def test_each_op_declares_what_its_module_does(name):
    d = REGISTRY[name]
    assert d.layout in LAYOUTS
    a = d.attrs.model_validate({**dict(d.preset), **ARGS.get(d.canonical or name, {})})
    shape = TOKENS if (d.canonical or name) in ON_TOKENS else MAP
    ins = (shape, shape) if d.joins else shape
    y = d.shape(a, ins)
    for weights in (False, True):
        if weights and d.layout != "weights":
            continue
        formats = [(f,) * 2 for f in (False, True)] + ([(False, True), (True, False)] if d.joins else [])
        for fmt in formats:
            m = d.lower(a, ins, y, LowerContext()).eval()
            if weights:
                m = m.to(memory_format=torch.channels_last)
            xs = [torch.randn(2, *shape).contiguous(memory_format=torch.channels_last if f else torch.contiguous_format)
                  for f in fmt]
            with torch.no_grad():
                out = m(tuple(xs)) if d.joins else m(xs[0])
            out = out[0] if isinstance(out, (tuple, list)) else out
            given = list(fmt) if d.joins else [fmt[0]]
            if shape == TOKENS and out.dim() == 4 and out.shape[2:] == (30, 1):
                continue  # tokens kept as tokens: either format is one layout of (C, N, 1) for such ops' users
            assert _channels_last(out) == _expected(d.layout, given, weights), (name, fmt, weights)


def _observed(c, channels_last: bool) -> dict[str, bool]:
    """Per layer with a module of its own: does its input arrive channels-last?
    On maps only (H and W over 1): the format of tokens (C, N, 1) or a vector
    is one stride order of a 3-D tensor, which torch's kernels choose by
    differently."""
    rep = c.report()
    names = {l.name for l in rep.layers}
    net = c.module().eval()
    seen: dict[str, bool] = {}

    def hook(name):
        def h(module, inputs, output):
            x = inputs[0] if inputs else None
            x = x[0] if isinstance(x, (tuple, list)) else x
            if isinstance(x, torch.Tensor) and x.dim() == 4 and x.shape[2] > 1 and x.shape[3] > 1:
                seen[name] = _channels_last(x)
        return h
    hooks = [m.register_forward_hook(hook(n)) for n, m in net.named_modules() if n in names]
    with torch.no_grad():
        net(torch.randn((1,) + tuple(c.spec.in_shape)))
    for h in hooks:
        h.remove()
    return seen


@pytest.mark.parametrize("preset", ["convnextv2_atto", "mobilenetv3_small_075", "shufflenet_v2_x0_5",
                                    "efficientformer_l1", "resnet18"])
@pytest.mark.parametrize("channels_last", [False, True])
def test_the_report_knows_each_layers_memory_format(preset, channels_last):
    over = ["params.res=64"] if preset != "efficientformer_l1" else []
    c = compile(preset, over + [f"channels_last={str(channels_last).lower()}"])
    rep = c.report()
    assert rep.channels_last == channels_last
    seen = _observed(c, channels_last)
    layers = {l.name: l for l in rep.layers}
    assert len(seen) > 20
    convs = {"conv", "ws_conv"}
    wrong = [n for n, cl in seen.items()
             if layers[n].channels_last != (cl or (channels_last and layers[n].kind in convs))]
    assert not wrong, wrong[:10]
    # the classes: a channels-last kernel of a class that has a channels-last variant takes it
    for l in rep.layers:
        plain = plain_class(l.op_class)
        assert l.op_class in OP_CLASSES
        assert (l.op_class != plain) == (l.channels_last and channels_last_class(plain, l.kind) != plain)
    assert channels_last_class("norm", "layer_norm") == "norm_cl" and channels_last_class("norm", "softmax") == "norm"
    assert channels_last_class("norm", "grn") == "spatial_norm_cl"
    assert channels_last_class("smooth_act", "act") == "smooth_act_cl"
    assert channels_last_class("elementwise", "add") == "elementwise"  # as fast either way: no class
    if preset.startswith("convnext"):  # its norms over channels turn the network channels-last
        assert sum(l.channels_last for l in rep.layers) > len(rep.layers) // 2


def test_totals_do_not_depend_on_the_memory_format():
    a = compile("convnextv2_atto", ["params.res=64"]).report()
    b = compile("convnextv2_atto", ["params.res=64", "channels_last=true"]).report()
    assert a.total == b.total
    assert [l.op_class for l in a.layers] != [l.op_class for l in b.layers]  # the stem's conv, the first norm


def test_shufflenet_guidelines_count_1x1_convs_in_either_format():
    from archdsl.backends.guidelines import sections
    for cl in (False, True):
        rep = compile("convnextv2_atto", ["params.res=64", f"channels_last={str(cl).lower()}"]).report()
        hw = rep.hardware[0]
        assert any(l.op_class == "conv1x1_cl" for l in rep.layers)
        assert all(s.mac_1x1 > 0 for s in sections(rep, hw) if s.name.startswith("stages."))


@pytest.mark.parametrize("channels_last", [False, True])
def test_a_bounded_point_costs_each_block_body_once(channels_last):
    # the search's section watch costs bodies in the formats the report then meets them in (ConvNeXt turns
    # channels-last after its stem): each body is costed once, whichever walk comes first
    from archdsl.compiler import ir
    from archdsl.explore.points import Base
    from archdsl.language import caches
    caches.forget("elaborated")
    base = Base("convnextv2_atto", ["params.res=64", f"channels_last={str(channels_last).lower()}"])
    assert base.evaluate({}, bounds={"macs": 1e12})["status"] == "ok"
    bodies = {id(n.children): n.children for n in ir.walk(base.compiled({}).spec)
              if isinstance(n, ir.Seq) and n.is_block and n.children}
    assert bodies and all(len(b.costed) == 1 for b in bodies.values())
