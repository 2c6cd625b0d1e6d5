"""Memory and training cost read from the IR (archdsl.backends.memory),
checked against torch on the built module: the peak of live tensor bytes in a
forward pass, the bytes autograd saves (saved_tensors_hooks) and
FlopCounterMode's count over a training step, one preset per family."""
import pytest
import torch

from archdsl.api import compile
from archdsl.backends import memory
from archdsl.compiler import ir
from conftest import small_res
from memory_probe import inference_peak, saved_bytes, training_macs

# One preset per recipe (family): the smallest.
FAMILIES = ["convnextv2_atto", "cspdarknet53", "densenet121", "dla34", "nf_resnet50", "efficientformer_l1",
            "efficientnet_b0", "fastvit_t8", "ghostnet_050", "hrnet_w18_small", "inception_v3", "mnasnet_100",
            "mobilenetv1_025", "mobilenetv2_100", "mobilenetv3_small_075", "mobilenetv4_conv_small",
            "mobilenetv4_hybrid_medium", "mobileone_s0", "mobilevit_s", "regnetx_002", "repvgg_a0",
            "res2net50_26w_4s", "resnest14d", "resnet18", "shufflenet_v2_x0_5", "shufflenetv1_g3_050",
            "tf_efficientnet_lite0", "tf_efficientnetv2_s", "vit_small_patch16_224"]

ATTENTION = {"mobilenetv4_hybrid_medium", "mobilevit_s", "vit_small_patch16_224"}


@pytest.mark.parametrize("preset", FAMILIES)
def test_memory_and_training_macs_match_torch(preset, one_thread):
    # 32x32 inputs; 64x64 where attention needs a few tokens more to take torch's usual kernels
    res = small_res(preset, 64 if preset in ATTENTION else 32)
    c = compile(preset, [f"params.res={res}"])
    torch.manual_seed(0)
    net = c.module()
    # exact, with the convention in archdsl/backends/memory.py
    assert memory.inference_peak(c.spec, batch=1).bytes == inference_peak(net, c.spec, 1)
    assert memory.saved_bytes(c.spec, batch=2) == saved_bytes(net, c.spec, 2)
    # attention on the meta device runs unfused: CPU's fused kernel also recomputes q·kᵀ in its backward
    rows = memory.training_macs(c.spec)
    assert 2 * sum(r.total for r in rows) == training_macs(net.to("meta") if preset in ATTENTION else net,
                                                           c.spec, 2)


def test_training_macs_per_layer_by_hand():
    # resnet18's stem conv sees the image (no input gradient); later convs get all three terms
    rows = memory.training_macs(compile("resnet18", ["params.res=64"]).spec)
    stem, nxt = rows[0], rows[1]
    assert (stem.name, stem.input_grad, stem.weight_grad) == ("stem.0", 0, stem.forward)
    assert nxt.input_grad == nxt.weight_grad == nxt.forward
    assert stem.forward == 64 * 32 * 32 * 3 * 7 * 7  # 64 filters of 3x7x7 on a 32x32 output


def test_training_memory_and_fit():
    c = compile("resnet18", ["params.res=64"])
    params = c.report().total.params
    sgd = memory.training_memory(c.spec, params, batch=4, optimizer="sgd")
    adamw = memory.training_memory(c.spec, params, batch=4, optimizer="adamw")
    assert sgd.weights == sgd.grads == sgd.optimizer_state == 4 * params
    assert adamw.optimizer_state == 8 * params
    # BN buffers: running mean and var per channel (fp32) and an int64 counter per BN
    bns = [o for o in ir.ops(c.spec) if o.kind == "bn"]
    assert sgd.buffers == sum(8 * o.in_shape[0] + 8 for o in bns)
    budget = sgd.fixed + 10 * (memory.saved_bytes(c.spec, batch=3) - memory.saved_bytes(c.spec, batch=2))
    b, m = memory.fit_batch(c.spec, params, budget)
    assert m.total <= budget < memory.training_memory(c.spec, params, batch=b + 1).total


def _tables(md: str) -> list[list[list[str]]]:
    """The markdown tables of `md` after its '## Memory' heading: rows of cells, header rows dropped."""
    section = md.split("\n## Memory\n", 1)[1].split("\n## ", 1)[0]
    tables, rows = [], []
    for line in section.splitlines() + [""]:
        if line.startswith("|"):
            rows.append([c.strip() for c in line.strip("|").split("|")])
        elif rows:
            tables.append(rows[2:])
            rows = []
    return tables


@pytest.mark.parametrize("preset", ["resnet18", "mobilevit_s"])
def test_report_md_memory_section_matches_torch(preset, tmp_path, one_thread):
    from archdsl.build import write_outputs

    c = compile(preset, ["params.res=64"])
    write_outputs(c, tmp_path)
    (fixed,), per_batch = _tables((tmp_path / "report.md").read_text())
    mb = lambda cell: float(cell.replace(",", "")) * 1e6  # noqa: E731
    # What torch holds: parameters and buffers of the built module, the
    # gradients of a training step, the optimizer state after its first step.
    torch.manual_seed(0)
    net = c.module()
    weights = sum(p.numel() * p.element_size() for p in net.parameters())
    buffers = sum(b.numel() * b.element_size() for b in net.buffers())
    net.train()
    net(torch.randn((2,) + tuple(c.spec.in_shape))).sum().backward()
    grads = sum(p.grad.numel() * p.grad.element_size() for p in net.parameters())
    state = {}
    for name, opt in (("sgd", torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)),
                      ("adamw", torch.optim.AdamW(net.parameters()))):
        opt.step()
        # the tensors shaped as their weight (AdamW's step counter is a scalar)
        state[name] = sum(t.numel() * t.element_size() for p, s in opt.state.items() for t in s.values()
                          if torch.is_tensor(t) and t.shape == p.shape)
    assert len(fixed) == 5 and all(len(r) == 5 for r in per_batch)
    for shown, want in zip(fixed, [weights, buffers, grads, state["sgd"], state["adamw"]]):
        assert mb(shown) == pytest.approx(want, rel=5e-4)  # 4 significant digits
    assert [int(r[0]) for r in per_batch] == [1, 32, 256]
    for row in per_batch[:2]:  # batch 1 and 32
        b = int(row[0])
        saved = saved_bytes(net, c.spec, b)
        want = [inference_peak(net, c.spec, b), saved, weights + buffers + grads + state["sgd"] + saved,
                weights + buffers + grads + state["adamw"] + saved]
        for shown, w in zip(row[1:], want):
            assert mb(shown) == pytest.approx(w, rel=5e-4)
