"""ShuffleNetV2 presets against torchvision, RepVGG (train-time form) against timm."""
import pytest
from reference import max_output_difference, parity_counts, reference_input_size

# preset -> reference model name
REFERENCES = {
    "shufflenet_v2_x0_5": "torchvision:shufflenet_v2_x0_5",
    "shufflenet_v2_x1_0": "torchvision:shufflenet_v2_x1_0",
    "shufflenet_v2_x1_5": "torchvision:shufflenet_v2_x1_5",
    "shufflenet_v2_x2_0": "torchvision:shufflenet_v2_x2_0",
    "repvgg_a0": "repvgg_a0",
    "repvgg_a1": "repvgg_a1",
    "repvgg_a2": "repvgg_a2",
    "repvgg_b0": "repvgg_b0",
}


@pytest.mark.parametrize("preset", list(REFERENCES))
def test_counts_match_reference(preset):
    ref = REFERENCES[preset]
    c = parity_counts(preset, ref)
    assert c["input_shape"] == reference_input_size(ref)
    assert c["report_params"] == c["module_params"] == c["ref_params"]
    assert c["report_macs"] == c["module_macs"] == c["ref_macs"]


@pytest.mark.parametrize("preset", ["shufflenet_v2_x1_0", "shufflenet_v2_x0_5", "repvgg_a0"])
def test_outputs_match_reference_after_port(preset):
    assert max_output_difference(preset, REFERENCES[preset]) <= 1e-4
