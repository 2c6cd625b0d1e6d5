"""The report's activations (the RegNet paper's count: elements of every conv
and linear output, per image) against the built module, measured with
forward hooks on each Conv2d and Linear — including the convs that ops such
as mqa hold inside."""
import pytest
import torch
from conftest import small_res

import archdsl

PRESETS = ["resnet50", "regnety_002", "efficientnet_b0", "mobilenetv3_small_100", "ghostnet_050",
           "mobilenetv4_conv_small", "mobilenetv4_hybrid_medium", "shufflenet_v2_x0_5", "convnextv2_atto",
           "dm_nfnet_f0", "repvgg_a0"]


def measured_activations(net: torch.nn.Module, shape) -> int:
    seen = []
    hooks = [m.register_forward_hook(lambda m, i, o: seen.append(o.numel()))
             for m in net.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    try:
        with torch.no_grad():
            net.eval()(torch.zeros(1, *shape))
    finally:
        for h in hooks:
            h.remove()
    return sum(seen)


@pytest.mark.parametrize("preset", PRESETS)
def test_report_activations_equal_the_modules_conv_and_linear_outputs(preset):
    overrides = [f"params.res={small_res(preset)}"]
    compiled = archdsl.compile(preset, overrides)
    net = compiled.module()
    assert compiled.report().total.activations == measured_activations(net, net.input_shape)
