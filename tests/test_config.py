"""Config composition: archc's quick path gives exactly what Hydra composes."""

import pytest

from archdsl.config import hydra_compose, locate, open_params
from archdsl.quick_compose import quick_compose
from archdsl.resources import conf_dir

PRESETS = sorted(f.stem for f in conf_dir().glob("*.yaml") if f.stem != "base")
OVERRIDE_SETS = [[], ["params.res=128"], ["dtype=bf16", "drop_path_rate=0.1"], ["hardware=standard"],
                 ["params.classes=10", "+extra_key=3"], ["save_weights=false", "name=x"],
                 ["hardware.a100.mem_bw=1e12"], ["++params.dropout=0.3"]]


@pytest.mark.parametrize("preset", PRESETS)
def test_quick_composition_equals_hydra_on_every_preset(preset):
    d, name = locate(preset)
    for overrides in OVERRIDE_SETS:
        o = open_params(overrides)
        quick = quick_compose(d, name, o, conf_dir().resolve())
        assert quick is not None, overrides
        assert quick == hydra_compose(d, name, o), overrides


def test_quick_composition_defers_what_it_does_not_handle(tmp_path):
    d, name = locate("resnet18")
    for overrides in (["nope=1"], ["+dtype=fp16"], ["hardware=nope"], ["~dtype"], ["params.res=1,2"],
                      ["hydra.run.dir=x"]):
        assert quick_compose(d, name, open_params(overrides), conf_dir().resolve()) is None, overrides
    (tmp_path / "pkg.yaml").write_text("# @package _global_\ndefaults: [base, _self_]\nrecipe: resnet\n")
    assert quick_compose(tmp_path, "pkg", [], conf_dir().resolve()) is None


def test_user_config_dir_reaches_bundled_base(tmp_path):
    (tmp_path / "mine.yaml").write_text("defaults: [resnet18, _self_]\nparams: {res: 96}\n")
    quick = quick_compose(tmp_path, "mine", [], conf_dir().resolve())
    assert quick == hydra_compose(tmp_path, "mine", []) and quick["params"]["res"] == 96


def test_interpolations_resolve_as_hydra_does(tmp_path):
    (tmp_path / "interp.yaml").write_text(
        "defaults: [resnet18, _self_]\nname: ${recipe}_at_${params.res}\nparams: {res: 96}\n")
    quick = quick_compose(tmp_path, "interp", ["++params.res=128"], conf_dir().resolve())
    assert quick == hydra_compose(tmp_path, "interp", ["++params.res=128"])
    assert quick["name"] == "resnet_at_128"
