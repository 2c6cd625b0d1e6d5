"""RegNetX and RegNetY presets (the pycls zoo, 200MF to 32GF) against timm."""
import pytest
from reference import max_output_difference, parity_counts, reference_input_size

SIZES = ["002", "004", "006", "008", "016", "032", "040", "064", "080", "120", "160", "320"]
PRESETS = [(f"regnet{f}_{s}", f"regnet{f}_{s}") for f in "xy" for s in SIZES]
ALIASES = [("regnety_8gf", "regnety_080")]


@pytest.mark.parametrize("preset,ref", PRESETS + ALIASES)
def test_counts_match_timm(preset, ref):
    c = parity_counts(preset, ref)
    assert c["input_shape"] == reference_input_size(ref)
    assert c["report_params"] == c["module_params"] == c["ref_params"]
    assert c["report_macs"] == c["module_macs"] == c["ref_macs"]


@pytest.mark.parametrize("preset", ["regnetx_002", "regnety_002", "regnetx_004", "regnety_004"])
def test_outputs_match_timm_after_port(preset):
    assert max_output_difference(preset, preset) <= 1e-4
