"""MobileOne-S0: train-time form against timm, deployed form against timm's
re-parameterized model and against the train-time form.

Counts and MACs of the train-time form are checked with every preset
(tests/parity/mobileone.yaml). Here: the deploy pass (fold_bn +
fuse_branches) must give timm's re-parameterized parameter count, one conv
and a ReLU per block, and the same function as the train-time module after a
port of timm's weights.

Weights are timm's, with BatchNorm statistics calibrated on a batch (as after
training): with the statistics drawn at random, as the parity and deploy zoo
tests draw them, each block sums six branches of unnormalized scale and the
activations of S0's 43 blocks grow to ~1e15, where float rounding alone
exceeds any absolute tolerance.
"""
import pytest
import torch
from reference import n_params, randomize_small_tensors, reference

import archdsl
from archdsl.backends.torch.modules import ParallelSum, Residual
from archdsl.port import from_reference

PRESET = "mobileone_s0"
TOL = 1e-4


pytestmark = pytest.mark.usefixtures("one_thread")


def count(module: torch.nn.Module, kind: type) -> int:
    return sum(isinstance(m, kind) for m in module.modules())


def calibrated(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Random BN affines, then BN statistics measured on a random batch (each
    BN sees what its branch gives it), so activations keep a trained scale."""
    g = torch.Generator().manual_seed(seed)
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    with torch.no_grad():
        for m in bns:
            m.weight.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
            m.bias.copy_(torch.rand(m.bias.shape, generator=g) - 0.5)
            m.reset_running_stats()
            m.momentum = None  # a cumulative average: one batch gives its statistics
        model.train()
        model(torch.randn((8, 3, 224, 224), generator=g))
    for m in bns:
        m.momentum = 0.1
    return model.eval()


def outputs(*models: torch.nn.Module, seed: int = 1) -> list[torch.Tensor]:
    x = torch.randn((2, 3, 224, 224), generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        return [m(x) for m in models]


@pytest.fixture(scope="module")
def ported():
    """(timm's train-time model, archdsl's train-time module with its weights)."""
    torch.manual_seed(0)
    ref = calibrated(reference(PRESET))
    net = archdsl.compile(PRESET).module().eval()
    from_reference(net, ref.state_dict())
    return ref, net


def test_deployed_params_equal_timms_reparameterized_model():
    import timm
    from timm.utils.model import reparameterize_model

    with torch.device("meta"):  # counts only
        train = timm.create_model(PRESET).eval()
        n_train = n_params(train)
        ref = reparameterize_model(train)
        ours = archdsl.load(PRESET, deploy=True)
    assert n_params(ours) == n_params(ref) == archdsl.cost(PRESET, ["deploy=true"]).total.params
    assert archdsl.cost(PRESET).total.params == n_train > n_params(ref)


def test_deployed_outputs_equal_train_time_outputs_after_port(ported):
    ref, net = ported
    deployed = archdsl.deploy(net)
    assert count(deployed, torch.nn.BatchNorm2d) == 0 and count(deployed, ParallelSum) == 0
    train_out, deployed_out, ref_out = outputs(net, deployed, ref)
    assert ref_out.abs().max().item() > 1.0  # not a degenerate comparison
    assert (deployed_out - train_out).abs().max().item() <= TOL
    assert (train_out - ref_out).abs().max().item() <= TOL


def test_deployed_outputs_equal_timms_reparameterized_model(ported):
    import copy

    from timm.utils.model import reparameterize_model

    ref, net = ported
    ref_deployed = reparameterize_model(copy.deepcopy(ref))
    ours, theirs = outputs(archdsl.deploy(net), ref_deployed)
    assert (ours - theirs).abs().max().item() <= TOL


def test_deployed_form_is_one_conv_and_relu_per_block():
    net = archdsl.load(PRESET, ["params.res=64"], deploy=True)
    blocks = [net.stem[0]] + [b for s in net.stages for b in s.blocks]
    assert len(blocks) == 1 + 2 * (2 + 8 + 10 + 1)  # stem, then a depthwise and a pointwise block per repeat
    for i, b in enumerate(blocks):
        conv, act = list(b)
        assert isinstance(conv, torch.nn.Conv2d) and isinstance(act, torch.nn.ReLU)
        assert conv.bias is not None
        if i == 0:
            assert conv.kernel_size == (3, 3) and conv.groups == 1
        elif i % 2 == 1:  # depthwise
            assert conv.kernel_size == (3, 3) and conv.groups == conv.in_channels == conv.out_channels
        else:  # pointwise
            assert conv.kernel_size == (1, 1) and conv.groups == 1
    assert count(net, torch.nn.BatchNorm2d) == 0
    assert count(net, ParallelSum) == 0 and count(net, Residual) == 0


def test_port_agrees_under_the_parity_tests_statistics():
    """With random statistics (activations ~1e15) the outputs agree to float
    rounding: the spec sums the 1x1 scale branch first and registers it last
    (a branch rank, `@1`), as timm does."""
    torch.manual_seed(0)
    ref = reference(PRESET).eval()
    randomize_small_tensors(ref)
    net = archdsl.compile(PRESET).module().eval()
    from_reference(net, ref.state_dict())
    ours, theirs = outputs(net, ref)
    assert (ours - theirs).abs().max().item() <= 1e-6 * theirs.abs().max().item()
