"""Every bundled preset against its reference model.

Counts (params, MACs) are compared three ways: archc's analytic report, the
compiled module under FlopCounterMode, and the reference module — on the meta
device, so even the largest presets are cheap. For at least one preset per
family the outputs are compared after porting the reference's weights.
"""
from pathlib import Path

import pytest
from reference import max_output_difference, parity_counts, reference_input_size

REGNET_SIZES = ["002", "004", "006", "008", "016", "032", "040", "064", "080", "120", "160", "320"]

# family -> ({preset: reference}, presets whose outputs are compared)
FAMILIES = {
    "resnet": ({p: p for p in ["resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "resnet50d",
                               "resnext50_32x4d", "resnext101_32x8d"]},
               ["resnet18", "resnet50d", "resnext50_32x4d"]),
    "regnet": ({**{f"regnet{f}_{s}": f"regnet{f}_{s}" for f in "xy" for s in REGNET_SIZES},
                "regnety_8gf": "regnety_080"},
               ["regnetx_002", "regnety_002", "regnetx_004", "regnety_004"]),
    "mobilenetv2": ({p: p for p in ["mobilenetv2_100", "mobilenetv2_140"]},
                    ["mobilenetv2_100", "mobilenetv2_140"]),
    "efficientnet": ({f"efficientnet_b{i}": f"efficientnet_b{i}" for i in range(8)},
                     ["efficientnet_b0", "efficientnet_b1"]),
    "shufflenetv2": ({f"shufflenet_v2_{m}": f"torchvision:shufflenet_v2_{m}"
                      for m in ["x0_5", "x1_0", "x1_5", "x2_0"]},
                     ["shufflenet_v2_x1_0", "shufflenet_v2_x0_5"]),
    "repvgg": ({p: p for p in ["repvgg_a0", "repvgg_a1", "repvgg_a2", "repvgg_b0"]}, ["repvgg_a0"]),
}
REFERENCES = {p: r for refs, _ in FAMILIES.values() for p, r in refs.items()}
PORTED = [p for _, ported in FAMILIES.values() for p in ported]


def test_every_bundled_preset_has_a_reference():
    conf = Path(__file__).resolve().parent.parent / "conf"
    bundled = {f.stem for f in conf.glob("*.yaml")} - {"base"}
    assert bundled == set(REFERENCES)


@pytest.mark.parametrize("preset", list(REFERENCES))
def test_counts_match_reference(preset):
    ref = REFERENCES[preset]
    c = parity_counts(preset, ref)
    assert c["input_shape"] == reference_input_size(ref)
    assert c["report_params"] == c["module_params"] == c["ref_params"]
    assert c["report_macs"] == c["module_macs"] == c["ref_macs"]


@pytest.mark.parametrize("preset", PORTED)
def test_outputs_match_reference_after_port(preset):
    assert max_output_difference(preset, REFERENCES[preset]) <= 1e-4
