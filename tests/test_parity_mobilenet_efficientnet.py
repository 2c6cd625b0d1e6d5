"""MobileNetV2 and EfficientNet B0-B7 presets against timm (symmetric-padding variants)."""
import pytest
from reference import max_output_difference, parity_counts, reference_input_size

PRESETS = ["mobilenetv2_100", "mobilenetv2_140"] + [f"efficientnet_b{i}" for i in range(8)]


@pytest.mark.parametrize("preset", PRESETS)
def test_counts_match_timm(preset):
    c = parity_counts(preset, preset)
    assert c["input_shape"] == reference_input_size(preset)
    assert c["report_params"] == c["module_params"] == c["ref_params"]
    assert c["report_macs"] == c["module_macs"] == c["ref_macs"]


@pytest.mark.parametrize("preset", ["mobilenetv2_100", "mobilenetv2_140", "efficientnet_b0",
                                    "efficientnet_b1"])
def test_outputs_match_timm_after_port(preset):
    assert max_output_difference(preset, preset) <= 1e-4
