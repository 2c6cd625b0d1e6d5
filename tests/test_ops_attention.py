"""Token and attention ops: tokens, unflatten, class_token, pos_embed,
take_token, mean_tokens, mhsa, and the primitives reshape, transpose, matmul.

Each is written as a spec, elaborated and built, and checked: output shape
against the IR, params (module = report), MACs (report = FlopCounterMode / 2,
on the CPU with a random input and on the meta device), and values against a
direct torch computation or timm's module with the weights ported by position.
"""
import math

import pytest
import torch
import torch.nn.functional as F
from op_harness import SHAPE, built, counted, spec_text  # noqa: F401 (built: a fixture)
from reference import n_params
from torch.utils.flop_counter import FlopCounterMode

import archdsl
from archdsl.backends.cost import report
from archdsl.backends.torch.lower import build_module
from archdsl.compiler import ir
from archdsl.compiler.elaborate import elaborate
from archdsl.language.errors import ArchError
from archdsl.port import from_reference

pytestmark = pytest.mark.usefixtures("one_thread")


def close(a, b, tol=1e-5):
    return (a - b).abs().max().item() <= tol * max(1.0, b.abs().max().item())


# --- tokens, unflatten ------------------------------------------------------------------

def test_tokens_flatten_row_by_row(built):
    spec, net, m, x, y = built("tokens")
    assert spec.out_shape == (4, 99, 1)
    assert torch.equal(y, x.flatten(2).unsqueeze(-1))


def test_unflatten_undoes_tokens(built):
    spec, net, m, x, y = built("tokens unflatten(9, 11)")
    assert torch.equal(y, x)
    spec, net, m, x, y = built("tokens unflatten(3, 33)")
    assert torch.equal(y, x.reshape(2, 4, 3, 33))


def test_token_views_are_not_overwritten_in_place(program_of):
    # tokens, reshape, transpose and take_token may return views of their
    # input: an in-place op after one would change the tensor before it,
    # which autograd keeps here (softmax's output).
    spec = elaborate(program_of(spec_text("conv(4, 1) softmax(3) transpose(2, 3) relu tokens relu "
                                          "reshape(4, 99, 1) relu take_token relu")), {})
    net = build_module(spec)
    assert not any(getattr(m, "inplace", False) for m in net.modules())
    x = torch.randn(2, *SHAPE, requires_grad=True)
    net(x).sum().backward()
    assert x.grad is not None


# --- class_token, pos_embed ---------------------------------------------------------------

@pytest.mark.parametrize("count", [1, 3])
def test_class_token(built, count):
    body = "tokens" + (" class_token" if count == 1 else f" class_token({count})")
    spec, net, m, x, y = built(body)
    tok = net.stages[0].blocks[1].cls_token
    assert tuple(tok.shape) == (1, count, 4) and n_params(net) == 4 * count
    assert spec.out_shape == (4, 99 + count, 1)
    ref = torch.cat([tok.transpose(1, 2).unsqueeze(-1).expand(2, -1, -1, -1), x.flatten(2).unsqueeze(-1)], 2)
    assert torch.equal(y, ref)


def test_learned_pos_embed_on_tokens_has_timm_vit_layout(built):
    spec, net, m, x, y = built("tokens class_token pos_embed")
    pe = net.stages[0].blocks[2].pos_embed
    assert tuple(pe.shape) == (1, 100, 4) and n_params(net) == 4 + 400
    before = net.stages[0].blocks[1](x.flatten(2).unsqueeze(-1))
    assert torch.equal(y, before + pe.transpose(1, 2).unsqueeze(-1))


def test_learned_pos_embed_on_a_map(built):
    spec, net, m, x, y = built('pos_embed("learned")')
    assert tuple(m.pos_embed.shape) == (1, 4, 9, 11) and n_params(net) == 4 * 99
    assert torch.equal(y, x + m.pos_embed)


def test_sincos_pos_embed_is_timms_table_and_no_parameter(built):
    from timm.layers import build_sincos2d_pos_embed

    spec, net, m, x, y = built('pos_embed("sincos")', shape=(8, 5, 7))
    assert n_params(net) == 0 and not any("pos_embed" in k for k in net.state_dict())
    table = build_sincos2d_pos_embed([5, 7], dim=8)  # (H*W, C)
    assert close(y, x + table.T.reshape(1, 8, 5, 7), 1e-6)


def test_sincos_pos_embed_on_tokens_takes_a_grid_and_skips_class_tokens(built):
    from timm.layers import build_sincos2d_pos_embed

    spec, net, m, x, y = built('tokens class_token pos_embed(kind: "sincos", grid: (3, 4), temperature: 100)',
                               shape=(8, 3, 4))
    table = build_sincos2d_pos_embed([3, 4], dim=8, temperature=100.0).T.unsqueeze(-1)  # (C, 12, 1)
    before = net.stages[0].blocks[1](x.flatten(2).unsqueeze(-1))
    assert torch.equal(y[:, :, :1], before[:, :, :1])  # the class token has no position
    assert close(y[:, :, 1:], before[:, :, 1:] + table, 1e-6)


# --- take_token, mean_tokens ---------------------------------------------------------------

@pytest.mark.parametrize("index,at", [(None, 0), (5, 5), (-1, 98)])
def test_take_token(built, index, at):
    spec, net, m, x, y = built("tokens take_token" + ("" if index is None else f"({index})"))
    assert spec.out_shape == (4, 1, 1)
    assert torch.equal(y, x.flatten(2)[:, :, at].reshape(2, 4, 1, 1))


@pytest.mark.parametrize("start", [0, 1])
def test_mean_tokens(built, start):
    spec, net, m, x, y = built(f"tokens mean_tokens(start: {start})")
    assert close(y, x.flatten(2)[:, :, start:].mean(2).reshape(2, 4, 1, 1), 1e-6)


def test_token_pooling_feeds_the_classifier(built):
    spec, net, m, x, y = built("conv(8, 1) tokens class_token", head="layer_norm take_token linear(10)")
    assert tuple(y.shape) == (2, 10)


# --- reshape, transpose, matmul ------------------------------------------------------------

@pytest.mark.parametrize("body,shape", [("reshape(2, 18, 11)", (2, 18, 11)), ("reshape(12, 3, 11)", (12, 3, 11)),
                                        ("reshape(-1, 1, 1)", (396, 1, 1)), ("reshape(2, -1, 3)", (2, 66, 3))])
def test_reshape_is_row_major_over_chw(built, body, shape):
    spec, net, m, x, y = built(body)
    assert spec.out_shape == shape
    assert torch.equal(y, x.reshape(2, *shape))


def test_reshape_is_row_major_in_channels_last_memory(built):
    spec, net, m, x, y = built("conv(4, 1) reshape(2, 18, 11)")
    x_cl = x.contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        assert close(net.forward_features(x_cl), y, 1e-6)


@pytest.mark.parametrize("a,b", [(2, 3), (1, 2), (3, 1), (-1, -2), (1, -1)])
def test_transpose(built, a, b):
    spec, net, m, x, y = built(f"transpose({a}, {b})")
    assert torch.equal(y, x.transpose(a if a > 0 else a + 4, b if b > 0 else b + 4))


@pytest.mark.parametrize("body,shape", [
    ("-> x  from x { transpose(2, 3) } -> t  matmul(x, t)", (4, 9, 9)),  # (4, 9, 11) @ (4, 11, 9)
    ("-> x  from x { transpose(2, 3) conv(1, 1) } -> t  matmul(x, t)", (4, 9, 9)),  # a C of 1 broadcasts
    ("-> x  from x { conv(1, 1) } -> g  from x { transpose(2, 3) } -> t  matmul(g, t)", (4, 9, 9)),
    ("-> x  from x { reshape(4, 11, 9) } -> t  from (x, t) matmul", (4, 9, 9)),
])
def test_matmul_batched_over_channels(built, body, shape):
    spec, net, m, x, y = built(body)
    assert spec.out_shape == shape
    mm = [r for r in report(spec, "n").layers if r.kind == "matmul"][0]
    (c1, h, k), (c2, _, w) = mm.in_shape
    assert mm.macs == max(c1, c2) * h * k * w


def test_matmul_values(program_of):
    spec = elaborate(program_of(spec_text("-> x  from x { transpose(2, 3) } -> t  matmul(x, t) softmax(3)")), {})
    net = build_module(spec).eval()
    x = torch.randn(2, *SHAPE)
    with torch.no_grad():
        assert close(net.forward_features(x), torch.softmax(x @ x.transpose(2, 3), -1))


# --- mhsa ------------------------------------------------------------------------------------

def tokens_of(x):
    return x.flatten(2).transpose(1, 2)  # (B, N, C), timm's layout


# (channels, N tokens, heads, head_dim, out, qkv_bias, proj_bias)
VIT_CASES = [
    (48, 17, 3, None, None, True, True),  # ViT-like: head_dim = C // heads, class token
    (32, 10, 4, None, None, False, True),  # timm's defaults
    (24, 9, 2, 16, 40, True, False),  # head_dim * heads != C, out != C
]


@pytest.mark.parametrize("case", VIT_CASES)
def test_mhsa_matches_timm_attention_after_port(built, case):
    from timm.models.vision_transformer import Attention

    c, n, heads, hd, out, qkv_bias, proj_bias = case
    args = [f"{heads}", f"qkv_bias: {str(qkv_bias).lower()}", f"proj_bias: {str(proj_bias).lower()}"]
    args += [f"head_dim: {hd}"] if hd else []
    args += [f"out: {out}"] if out else []
    spec, net, m, x, y = built(f"mhsa({', '.join(args)})", shape=(c, n, 1))
    torch.manual_seed(1)
    ref = Attention(c, heads, attn_head_dim=hd, dim_out=out, qkv_bias=qkv_bias, proj_bias=proj_bias).eval()
    with torch.no_grad():
        for p in ref.parameters():
            p.normal_(0, 0.3)  # sharp enough that the attention is far from uniform
    pairs = from_reference(m, ref.state_dict())
    assert [r for _, r in pairs] == list(ref.state_dict())
    assert [o for o, _ in pairs] == [k for k in ["qkv.weight", "qkv.bias", "proj.weight", "proj.bias"]
                                     if k in m.state_dict()]
    with torch.no_grad():
        got = net.forward_features(x)
        want = ref(tokens_of(x)).transpose(1, 2).unsqueeze(-1)
    assert got.shape == want.shape and close(got, want)
    assert n_params(m) == n_params(ref)


def test_mhsa_on_a_map_is_mhsa_on_its_tokens(built):
    spec, net, m, x, y = built("mhsa(2)")
    with torch.no_grad():
        assert close(m(x.flatten(2).unsqueeze(-1)), y.flatten(2).unsqueeze(-1))


def test_mhsa_runs_sdpa_and_torch_counts_it_on_the_cpu(built):
    # Without a bias table the op is F.scaled_dot_product_attention, whose
    # fused CPU kernel FlopCounterMode counts once archdsl.ops is imported.
    spec, net, m, x, y = built("mhsa(2)")
    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        m(x)
    counts = {str(k): v // 2 for k, v in fc.get_flop_counts()["Global"].items()}
    sdpa = [k for k in counts if "scaled_dot_product" in k]
    assert sdpa and sum(counts[k] for k in sdpa) == 2 * 2 * 99 * 99 * (2 + 2)  # B*heads*N*N*(hd+vd)
    q = torch.randn(1, 2, 7, 8)
    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        F.scaled_dot_product_attention(q, q, q)
    assert fc.get_total_flops() // 2 == 2 * 7 * 7 * 16


def explicit_mhsa(m, x, q_stride=(1, 1), kv_stride=(1, 1), pool="avg"):
    """The op's function written out: project the whole map, then pick or
    average the positions of the queries and of the keys/values."""
    heads, hd, vd = m.heads, m.head_dim, m.value_dim
    b, _, h, w = x.shape
    t = F.conv2d(x, m.qkv.weight[:, :, None, None], m.qkv.bias)  # the per-token linear as a 1x1 conv
    if m.qkv_order == "head":
        t = t.reshape(b, heads, 2 * hd + vd, h, w)
        q, k, v = t[:, :, :hd], t[:, :, hd:2 * hd], t[:, :, 2 * hd:]
    else:
        q, k, v = t[:, :heads * hd], t[:, heads * hd:2 * heads * hd], t[:, 2 * heads * hd:]

    def at(u, s):
        u = u.reshape(b, -1, h, w)
        if s != (1, 1):
            u = u[:, :, ::s[0], ::s[1]] if pool == "subsample" else F.avg_pool2d(u, s, s, ceil_mode=True)
        return u.reshape(b, heads, -1, u.shape[2] * u.shape[3]).transpose(2, 3), u.shape[2:]

    (q, (hq, wq)), (k, _), (v, _) = at(q, q_stride), at(k, kv_stride), at(v, kv_stride)
    scores = q @ k.transpose(2, 3) / math.sqrt(hd)
    if m.attention_biases is not None:  # |dy| * W + |dx| between window corners
        qy, qx = [g.reshape(-1) for g in torch.meshgrid(torch.arange(0, h, q_stride[0]),
                                                        torch.arange(0, w, q_stride[1]), indexing="ij")]
        ky, kx = [g.reshape(-1) for g in torch.meshgrid(torch.arange(0, h, kv_stride[0]),
                                                        torch.arange(0, w, kv_stride[1]), indexing="ij")]
        idx = (qy[:, None] - ky).abs() * w + (qx[:, None] - kx).abs()
        scores = scores + m.attention_biases[:, idx]
    o = torch.softmax(scores, -1) @ v
    return F.conv2d(o.transpose(2, 3).reshape(b, heads * vd, hq, wq), m.proj.weight[:, :, None, None], m.proj.bias)


MHSA_FORMS = [
    ('mhsa(2, attn_bias: "relative")', SHAPE, (1, 1), (1, 1), "avg"),
    ('mhsa(2, head_dim: 3, value_dim: 5, qkv_bias: true, attn_bias: "relative", qkv_order: "head")',
     SHAPE, (1, 1), (1, 1), "avg"),
    ("mhsa(2, kv_stride: 2)", SHAPE, (1, 1), (2, 2), "avg"),
    ('mhsa(2, q_stride: 2, pool: "subsample", qkv_bias: true, out: 6)', SHAPE, (2, 2), (1, 1), "subsample"),
    ('mhsa(2, q_stride: (2, 3), kv_stride: 4, attn_bias: "relative", qkv_bias: true)',
     SHAPE, (2, 3), (4, 4), "avg"),
    ('mhsa(2, q_stride: 2, kv_stride: (1, 3), pool: "subsample", attn_bias: "relative", value_dim: 3, '
     'qkv_bias: true, qkv_order: "head")', SHAPE, (2, 2), (1, 3), "subsample"),
    ("mhsa(4, kv_stride: 3, qkv_bias: true)", (8, 13, 1), (1, 1), (3, 1), "avg"),  # tokens: one axis strided
    ('mhsa(1, q_stride: 20, kv_stride: 20, attn_bias: "relative")', SHAPE, (9, 11), (9, 11), "avg"),  # one window
]


@pytest.mark.parametrize("body,shape,qs,ks,pool", MHSA_FORMS, ids=[f[0] for f in MHSA_FORMS])
def test_mhsa_forms_match_the_explicit_formula(built, body, shape, qs, ks, pool):
    spec, net, m, x, y = built(body, shape=shape)
    assert (m.q_stride, m.kv_stride) == (qs, ks)
    assert spec.out_shape[1:] == (-(-shape[1] // qs[0]), -(-shape[2] // qs[1]))
    with torch.no_grad():
        assert close(y, explicit_mhsa(m, x, qs, ks, pool))


def test_mhsa_relative_bias_table_and_index(built):
    spec, net, m, x, y = built('mhsa(2, attn_bias: "relative")')
    assert tuple(m.attention_biases.shape) == (2, 99) and m.attention_bias_idxs.shape == (99, 99)
    assert list(m.state_dict())[:2] == ["attention_biases", "attention_bias_idxs"]
    assert report(spec, "n").total.params == 4 * 12 + 4 * 4 + 4 + 2 * 99


def test_mhsa_matches_efficientformer_attention_after_port(built):
    from timm.models.efficientformer import Attention

    # dim 48, key_dim 8, 3 heads, values 2 * 8 wide, on a 5x5 grid: the op on the map
    spec, net, m, x, y = built('mhsa(3, head_dim: 8, value_dim: 16, qkv_bias: true, attn_bias: "relative", '
                               'qkv_order: "head")', shape=(48, 5, 5))
    torch.manual_seed(2)
    ref = Attention(48, key_dim=8, num_heads=3, attn_ratio=2, resolution=5)
    ref.eval()  # (its train() returns nothing)
    with torch.no_grad():
        for p in ref.parameters():
            p.normal_(0, 0.3)
    pairs = from_reference(m, ref.state_dict())
    assert [o for o, _ in pairs] == [r for _, r in pairs]  # the same names, in the same order
    with torch.no_grad():
        want = ref(tokens_of(x)).transpose(1, 2).reshape(2, 48, 5, 5)
        assert close(m(x), want)
    assert n_params(m) == n_params(ref)


def test_mhsa_trains_and_deploys(built):
    body = 'residual { layer_norm mhsa(2, qkv_bias: true) } residual { layer_norm mhsa(2, attn_bias: "relative") }'
    spec, net, m, x, y = built(body)
    net.train()
    net.forward_features(x).sum().backward()
    assert all(p.grad is not None for p in net.parameters())
    net.eval()
    d = archdsl.deploy(net)  # channels-last memory, prepacked convolutions
    with torch.no_grad():
        assert close(d.forward_features(x), y, 1e-4)
    again = build_module(spec)
    again.load_state_dict(net.state_dict())


# --- attention written with the primitives ------------------------------------------------

PLAIN = """
block attention(heads) {
  let c = in.c
  let d = in.c // heads
  let n = in.h * in.w
  let (h, w) = (in.h, in.w)
  conv(3 * c, 1, bias: true)
  chunk(3) -> (q, k, v)
  from q { reshape(heads, d, n) transpose(2, 3) scale(d ** -0.5) } -> qh
  from k { reshape(heads, d, n) } -> kh
  from v { reshape(heads, d, n) transpose(2, 3) } -> vh
  matmul(qh, kh) softmax(3) -> a
  matmul(a, vh) transpose(2, 3) reshape(c, h, w)
  conv(c, 1, bias: true)
}
"""


@pytest.mark.parametrize("shape,heads", [(SHAPE, 2), ((12, 17, 1), 3)])
def test_attention_from_primitives_equals_mhsa(built, shape, heads):
    spec, net, m, x, y = built(f"attention({heads})", shape=shape, blocks=PLAIN)
    assert {n.kind for n in ir.walk(spec) if isinstance(n, ir.Op)} == {
        "conv", "chunk", "reshape", "transpose", "scale", "matmul", "softmax"}
    spec2, net2, m2, _, y2 = built(f"mhsa({heads}, qkv_bias: true)", shape=shape)
    from_reference(m2, net.state_dict())
    with torch.no_grad():
        assert close(m2(x), y)
    assert report(spec, "n").total.params == report(spec2, "n").total.params
    assert report(spec, "n").total.macs == report(spec2, "n").total.macs


XCA = """
block xca(heads) {
  let c = in.c
  let d = in.c // heads
  let n = in.h * in.w
  let (h, w) = (in.h, in.w)
  conv(3 * c, 1)
  chunk(3) -> (q, k, v)
  from q { reshape(heads, d, n) } -> qh
  from k { reshape(heads, d, n) transpose(2, 3) } -> kh
  from v { reshape(heads, d, n) } -> vh
  matmul(qh, kh) scale(0.1) softmax(3) -> a
  matmul(a, vh) reshape(c, h, w)
  conv(c, 1)
}
"""


def test_cross_covariance_attention_from_primitives(built):
    # XCiT's attention over channels, not positions: a (d, d) map per head
    spec, net, m, x, y = built("xca(2)", blocks=XCA)
    qkv, proj = [mod for mod in m.modules() if isinstance(mod, torch.nn.Conv2d)]
    q, k, v = F.conv2d(x, qkv.weight).reshape(2, 3, 2, 2, 99).unbind(1)  # (B, heads, d, N) each
    a = torch.softmax(q @ k.transpose(2, 3) * 0.1, -1)
    with torch.no_grad():
        assert close(y, F.conv2d((a @ v).reshape(2, 4, 9, 11), proj.weight))


# --- a ViT written in the language, against timm's ------------------------------------------

VIT = """
block vit_block(heads, mlp = 4.0) {
  residual { layer_norm mhsa(heads, qkv_bias: true) }
  residual { layer_norm conv(int(in.c * mlp), 1, bias: true) gelu conv(in.c, 1, bias: true) }
}
network vit(dim = 48, depth = 2, heads = 3, patch = 8) {
  input(3, 32, 32)
  stem { conv(dim, patch, stride: patch, padding: 0, bias: true) @1 tokens class_token pos_embed }
  stage repeat depth { vit_block(heads) }
  head { layer_norm take_token linear(10) }
}
"""


def test_vit_ports_from_timm_and_counts_as_torch_does(program_of):
    from timm.models.vision_transformer import VisionTransformer

    spec = elaborate(program_of(VIT), {})
    net = build_module(spec).eval()
    torch.manual_seed(0)
    ref = VisionTransformer(img_size=32, patch_size=8, embed_dim=48, depth=2, num_heads=3, num_classes=10).eval()
    with torch.no_grad():
        for p in ref.parameters():
            p.normal_(0, 0.2)
    pairs = from_reference(net, ref.state_dict())
    assert pairs[0] == ("stem.2.cls_token", "cls_token") and pairs[1] == ("stem.3.pos_embed", "pos_embed")
    x = torch.randn(2, 3, 32, 32)
    got, macs = counted(net, x)
    want, ref_macs = counted(ref, x)
    assert close(got, want)
    rep = report(spec, "vit").total
    assert rep.params == n_params(ref) == n_params(net)
    assert rep.macs == macs == ref_macs


# --- errors: ArchError at the op's line -----------------------------------------------------

ERRORS = [
    ("mhsa(3)", "heads (3) must divide the channels (4), or give head_dim"),
    ("mhsa(0)", "argument 'heads' = 0"),
    ('mhsa(2, attn_bias: "alibi")', "argument 'attn_bias' = 'alibi'"),
    ('mhsa(2, pool: "max")', "argument 'pool' = 'max'"),
    ("mhsa(2, q_stride: 0)", "argument 'q_stride'"),
    ('mhsa(2, qkv_order: "kvq")', "argument 'qkv_order'"),
    ("reshape(3, 3, 3)", "cannot reshape 4x9x11 (396 elements) to 3x3x3 (27 elements)"),
    ("reshape(-1, -1, 4)", "at most one size may be -1"),
    ("reshape(5, -1, 1)", "396 is not a multiple of 5"),
    ("reshape(0, 4, 99)", "argument 'c' = 0"),
    ("conv(4, 1) -> a  conv(4, 1) -> b  matmul(a, b)",
     "matmul of 4x9x11 and 4x9x11: the first's columns (11) must equal the second's rows (9)"),
    ("conv(4, 1) -> a  conv(2, 1) transpose(2, 3) -> b  matmul(a, b)", "the channels (the batch of matrices)"),
    ("conv(4, 1) -> a  matmul(a, a, a)", "matmul joins exactly two tensors, got 3"),
    ("transpose(2, 2)", "argument 'b' = 2: value error, must name a dimension other than a (2)"),
    ("transpose(3, -1)", "must name a dimension other than a"),
    ("transpose(0, 1)", "argument 'a' = 0"),
    ("class_token", "class_token: takes tokens (C, N, 1), not a 4x9x11 map: flatten it first with `tokens`"),
    ("tokens unflatten(10, 10)", "cannot lay 99 tokens out as a 10x10 map (100 positions)"),
    ("unflatten(9, 11)", "unflatten: takes tokens"),
    ("tokens take_token(99)", "token 99 is out of range for 99 tokens"),
    ("tokens mean_tokens(start: 99)", "start 99 leaves none of the 99 tokens to average"),
    ("take_token", "take_token: takes tokens"),
    ('tokens pos_embed("sincos")', "sin-cos positions of 99 tokens need their 2-D layout: give grid: (h, w)"),
    ('conv(6, 1) pos_embed("sincos")', "a 2-D sin-cos table needs channels divisible by 4, got 6"),
    ('tokens pos_embed("sincos", grid: (10, 10))', "a 10x10 grid has more positions (100) than there are tokens"),
    ("pos_embed(grid: (3, 3))", "argument 'grid' = (3, 3): value error, applies only to kind \"sincos\""),
    ('pos_embed("fourier")', "argument 'kind' = 'fourier'"),
    ("tokens class_token(0)", "argument 'count' = 0"),
]


@pytest.mark.parametrize("body,message", ERRORS, ids=[b for b, _ in ERRORS])
def test_bad_uses_are_arch_errors_at_the_op(program_of, body, message):
    with pytest.raises(ArchError) as info:
        elaborate(program_of(spec_text(body)), {})
    e = info.value
    assert message in e.message
    assert e.loc is not None and e.loc.line == 4 and e.loc.file.endswith("spec.arch")
