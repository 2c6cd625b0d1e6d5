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
