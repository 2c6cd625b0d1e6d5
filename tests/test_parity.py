"""Every bundled preset against its reference model.

tests/parity/<family>.yaml lists each family's presets with their reference
(`references`) and presets checked against published figures by a family's
own test instead (`published`). Every preset with a reference is also
compared on outputs after a weight port (`archdsl.port.from_reference`): at
its own input size, or at PORT_RES when the model is large (building and
running the largest at full size would take minutes; a CNN computes the same
function at any size, and the counts above are checked at full size).

Counts (params, MACs) are compared three ways: archc's analytic report, the
compiled module under FlopCounterMode, and the reference module — on the meta
device, so even the largest presets are cheap.
"""
from pathlib import Path

import pytest
import yaml

import archdsl
from reference import max_output_difference, parity_counts, reference_input_size

HERE = Path(__file__).resolve().parent
FAMILIES = {f.stem: yaml.safe_load(f.read_text()) for f in sorted((HERE / "parity").glob("*.yaml"))}
REFERENCES = {p: r for fam in FAMILIES.values() for p, r in (fam.get("references") or {}).items()}
PUBLISHED = {p for fam in FAMILIES.values() for p in fam.get("published") or []}


def test_every_bundled_preset_is_checked():
    bundled = {f.stem for f in (HERE.parent / "conf").glob("*.yaml")} - {"base"}
    assert bundled == set(REFERENCES) | PUBLISHED


@pytest.mark.parametrize("preset", list(REFERENCES))
def test_counts_match_reference(preset):
    ref = REFERENCES[preset]
    c = parity_counts(preset, ref)
    assert c["input_shape"] == reference_input_size(ref)
    assert c["report_params"] == c["module_params"] == c["ref_params"]
    assert c["report_macs"] == c["module_macs"] == c["ref_macs"]


PORT_RES = 64
LARGE = 30_000_000  # parameters


@pytest.mark.parametrize("preset", list(REFERENCES))
def test_outputs_match_reference_after_port(preset):
    large = archdsl.cost(preset).total.params > LARGE
    assert max_output_difference(preset, REFERENCES[preset], res=PORT_RES if large else None) <= 1e-4
