"""ResNet, ResNet-D and ResNeXt presets against timm."""
import pytest
from reference import max_output_difference, parity_counts, reference_input_size

PRESETS = ["resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "resnet50d",
           "resnext50_32x4d", "resnext101_32x8d"]


@pytest.mark.parametrize("preset", PRESETS)
def test_counts_match_timm(preset):
    c = parity_counts(preset, preset)
    assert c["input_shape"] == reference_input_size(preset)
    assert c["report_params"] == c["module_params"] == c["ref_params"]
    assert c["report_macs"] == c["module_macs"] == c["ref_macs"]


@pytest.mark.parametrize("preset", ["resnet18", "resnet50d", "resnext50_32x4d"])
def test_outputs_match_timm_after_port(preset):
    assert max_output_difference(preset, preset) <= 1e-4
