"""Reports give fvcore's count (the GMACs timm's model cards quote) beside the
FlopCounterMode-equal MACs; fvcore itself, run on the built module, is the reference."""
import warnings

import pytest
import torch

import archdsl

# One per kind of counting rule: batch norm and SE pooling; plain convs;
# fused attention and its strided key/value BNs; layer norm.
PRESETS = [("efficientnet_b0", 128), ("resnet50", 96), ("mobilenetv4_hybrid_medium", 96),
           ("convnext_tiny", 64)]


def fvcore_count(model: torch.nn.Module, shape) -> int:
    from fvcore.nn import FlopCountAnalysis

    with warnings.catch_warnings():  # tracing warnings: not ours to judge here
        warnings.simplefilter("ignore")
        f = FlopCountAnalysis(model.eval(), torch.randn(1, *shape))
        f.unsupported_ops_warnings(False)
        f.uncalled_modules_warnings(False)
        return int(f.total())


@pytest.mark.parametrize("preset, res", PRESETS)
def test_fvcore_convention_equals_fvcore(preset, res, one_thread):
    ov = [f"params.res={res}"]
    rep = archdsl.cost(preset, ov)
    assert rep.total.fvcore_macs == fvcore_count(archdsl.load(preset, ov), rep.input_shape)
    assert rep.total.fvcore_macs != rep.total.macs  # the headline stays FlopCounterMode's
    assert f"counts {rep.total.fvcore_macs / 1e9:.3f} GMACs" in rep.to_markdown()
    assert rep.to_dict(layers=False)["total"]["fvcore_macs"] == rep.total.fvcore_macs


def test_why_efficientnet_b0_reads_0_386_here_and_0_40_on_its_card(one_thread):
    import timm

    rep = archdsl.cost("efficientnet_b0")
    card = fvcore_count(timm.create_model("efficientnet_b0"), rep.input_shape)  # timm's own figure
    assert f"{rep.total.macs / 1e9:.3f}" == "0.386" and f"{card / 1e9:.2f}" == "0.40"
    assert f"{rep.total.fvcore_macs / 1e9:.2f}" == "0.40"
    # The rest: timm's squeeze-excite pools with a mean, which fvcore skips; ours is
    # adaptive average pooling, one count per element pooled.
    se_pooled = sum(l.in_shape[0] * l.in_shape[1] * l.in_shape[2] for l in rep.layers
                    if l.kind == "global_pool" and not l.name.startswith("head"))
    assert rep.total.fvcore_macs - card == se_pooled
