"""FastViT-T8's deployed form, and the linear algebra behind it.

RepMixer computes x + gamma * (dw_k(x) + bn(x) - bn'(x)) (dw_1 too, in
timm's train form); the deploy passes turn the whole residual into one
depthwise conv: branches made of a conv followed by per-channel ops (BN,
constant `scale`, `layer_scale`) fuse, and so does the identity around them.

timm's re-parameterized FastViT keeps the BatchNorm after each ConvMlp's
depthwise conv; archc folds it (as every BN after a conv), which saves its
channels' worth of parameters (2C for the BN, C for the bias the conv
gains) and changes no output. The reference count is therefore timm's
re-parameterized model with that fold applied by torch's own
fuse_conv_bn_eval.
"""
import copy

import pytest
import torch
from reference import n_params

import archdsl
from archdsl.backends.torch.lower import build_module
from archdsl.backends.torch.modules import ParallelSum, Residual
from archdsl.compiler.elaborate import elaborate
from archdsl.language.program import load_program
from archdsl.port import from_reference

pytestmark = pytest.mark.usefixtures("one_thread")

PRESET = "fastvit_t8"


def _fold_remaining_conv_bn(model: torch.nn.Module) -> torch.nn.Module:
    """Fold every BatchNorm that directly follows a conv in a timm ConvNormAct (torch's fusion)."""
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    for m in list(model.modules()):
        conv, bn = getattr(m, "conv", None), getattr(m, "bn", None)
        if isinstance(conv, torch.nn.Conv2d) and isinstance(bn, torch.nn.BatchNorm2d):
            assert isinstance(getattr(bn, "act", torch.nn.Identity()), torch.nn.Identity)
            m.conv, m.bn = fuse_conv_bn_eval(conv.eval(), bn.eval()), torch.nn.Identity()
    return model


def test_deployed_params_equal_timms_reparameterized_model_with_bns_folded():
    import timm
    from timm.utils.model import reparameterize_model

    torch.manual_seed(0)
    ref = reparameterize_model(timm.create_model(PRESET).eval())
    n_reparam = n_params(ref)
    folded = _fold_remaining_conv_bn(ref)
    ours = archdsl.load(PRESET, ["params.res=64"], deploy=True)
    assert n_params(ours) == n_params(folded) == archdsl.cost(PRESET, ["deploy=true"]).total.params
    assert n_params(folded) < n_reparam  # timm's leaves BNs to fold


def test_deployed_outputs_equal_timm_after_port():
    import timm

    torch.manual_seed(0)
    ref = timm.create_model(PRESET).eval()
    with torch.no_grad():  # statistics and scales away from their initial values
        for m in ref.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
        for name, p in ref.named_parameters():
            if name.endswith("layer_scale") or name.endswith("gamma"):
                p.uniform_(0.1, 1.0)
    net = archdsl.load(PRESET, ["params.res=128"]).eval()
    from_reference(net, ref.state_dict())
    deployed = archdsl.deploy(net)
    x = torch.randn(2, 3, 128, 128, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        theirs, train, ours = ref(x), net(x), deployed(x)
    assert theirs.abs().max().item() > 0.1
    assert (train - theirs).abs().max().item() <= 1e-4
    assert (ours - theirs).abs().max().item() <= 1e-4


SPEC = """
network mixer() {
  input(8, 12, 12)
  stage {
    residual {
      parallel sum {
        branch { conv(in.c, 1, groups: in.c) bn }
        branch { bn }
        branch { conv(in.c, 3, groups: in.c) bn }
        branch { bn scale(-1.0) }
      }
      layer_scale(0.5)
    }
    relu
  }
}
"""


def test_residual_of_scaled_branches_fuses_to_one_conv(tmp_path):
    f = tmp_path / "mixer.arch"
    f.write_text(SPEC)
    torch.manual_seed(0)
    net = build_module(elaborate(load_program(f), {})).eval()
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-1, 1)
                m.running_var.uniform_(0.5, 2)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
            elif hasattr(m, "gamma"):
                m.gamma.uniform_(-1, 1)
    deployed = archdsl.deploy(net)
    convs = [m for m in deployed.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 1 and convs[0].kernel_size == (3, 3) and convs[0].groups == 8
    assert not any(isinstance(m, (torch.nn.BatchNorm2d, ParallelSum, Residual)) for m in deployed.modules())
    x = torch.randn(3, 8, 12, 12)
    with torch.no_grad():
        assert (deployed(x) - net(x)).abs().max().item() <= 1e-5
