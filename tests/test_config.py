"""Config composition: archc's quick path gives exactly what Hydra composes."""

import pytest

from archdsl.configs.compose import hydra_compose, locate, open_params
from archdsl.configs.quick_compose import quick_compose
from archdsl.language.resources import conf_dir

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


YAML_SNIPPETS = [
    "a: 1e-3\nb: 1_000\nc: .inf\nd: -.5\ne: 1.0\nf: 10\ng: 0x1f\n",   # YAML 1.2 floats, as OmegaConf reads them
    "day: 2001-12-14\nwhen: 2001-12-14t21:59:43.10-05:00\n",          # no timestamps: strings
    "t: yes\nu: off\nv: ~\nw: null\nx: 'quoted: 1'\ny: [1, 2.5, z]\n",
    "base: &b {p: 1, q: [1, 2]}\nderived:\n  <<: *b\n  q: 3\n",         # anchors and merge keys
    "nested: {a: {b: {c: [{d: 1}, {e: 2.0}]}}}\nempty: {}\nnone:\n",
    "# only a comment\n", "",
]


@pytest.mark.parametrize("text", YAML_SNIPPETS + [f.read_text() for f in sorted(conf_dir().rglob("*.yaml"))])
def test_the_fast_yaml_loader_reads_as_omegaconfs(text):
    import yaml
    from omegaconf._utils import get_yaml_loader

    from archdsl.configs.quick_compose import _parse_yaml, _yaml_loader

    expected = yaml.load(text, Loader=get_yaml_loader())
    assert repr(_parse_yaml(text)) == repr(expected)  # values and their types
    if hasattr(yaml, "CSafeLoader"):
        assert issubclass(_yaml_loader(), yaml.CSafeLoader)


def test_a_duplicate_key_is_refused_as_omegaconf_refuses_it(tmp_path):
    import yaml

    from archdsl.configs.quick_compose import _parse_yaml
    with pytest.raises(yaml.constructor.ConstructorError, match="duplicate key"):
        _parse_yaml("params: {res: 1}\nrecipe: a\nrecipe: b\n")
    (tmp_path / "dup.yaml").write_text("defaults: [resnet18, _self_]\nname: a\nname: b\n")
    from archdsl.language.errors import ArchError
    with pytest.raises(ArchError, match="duplicate key name") as e:  # located at the second one
        quick_compose(tmp_path, "dup", [], conf_dir().resolve())
    assert str(e.value.loc).endswith("dup.yaml:3:1")
