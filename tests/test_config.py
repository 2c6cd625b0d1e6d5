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


PLAIN_OVERRIDES = ["params.depth=13", "params.wm=2.5", "params.wa=1e3", "params.x=-0.5", "params.x=+3", "a.b=.5",
                   "a.b=5.", "a=true", "a=false", "a=[1,2,3]", "a=[1, 2.5, -3]", "a=[]", "a=1e-3", "a=-1E+2", "a=0",
                   "a=-0.0", "a=[ 1 ,2 ]", "+a=1", "++params.depth=2", "recipe=mbnet",
                   "a=None", "a=inf_x", "a=True_", "a=[relu,silu]", "a=infinity"]
OTHER_OVERRIDES = ["a=007", "a=True", "a=1_000", "a=[1,[2]]", "a=null", "a=NaN", "a=TRUE", "a=nUll", "a=[inf, 1]",
                   "a=resnet-50", "a=nan", "a=inf", "a=1,2", "a= 1", "+++a=1", "~a=1", "a.b-c=1", "a=" + "9" * 50, "a=${b}", "a=range(1,3)"]


def test_plain_overrides_read_as_hydra_reads_them():
    """quick_compose reads the plainest overrides itself (Hydra's parser takes ~1 ms each):
    each must come out exactly as Hydra's own parser reads it; the rest are Hydra's."""
    import math

    from archdsl.configs.quick_compose import _overrides_parser, _parse_overrides, _plain

    hydra = _overrides_parser()
    for line in PLAIN_OVERRIDES:
        mine, theirs = _plain(line), hydra.parse_overrides([line])[0]
        assert mine is not None, line
        assert mine.key_or_group == theirs.key_or_group and not theirs.is_sweep_override(), line
        assert (mine.is_add(), mine.is_force_add()) == (theirs.is_add(), theirs.is_force_add()), line
        a, b = mine.value(), theirs.value()
        assert type(a) is type(b) and a == b, line
        for x, y in zip(a if isinstance(a, list) else [a], b if isinstance(b, list) else [b]):
            assert type(x) is type(y) and (not isinstance(x, float) or math.copysign(1, x) == math.copysign(1, y))
    assert all(_plain(line) is None for line in OTHER_OVERRIDES)
    mixed = ["x=1", "y=resnet-50", "z=[1,2]", "w=a/b"]  # plain and Hydra's, each in its place
    assert [(o.key_or_group, o.value()) for o in _parse_overrides(mixed)] == [
        ("x", 1), ("y", "resnet-50"), ("z", [1, 2]), ("w", "a/b")]


def test_a_preset_with_an_op_class_of_old_says_rerun_calibrate():
    from pydantic import ValidationError

    from archdsl.configs.schema import HardwareConfig
    with pytest.raises(ValidationError) as info:
        HardwareConfig.model_validate({"peak_macs": 1e10, "mem_bw": 1e10, "efficiency": {"max_pool": 0.1}})
    assert "max_pool" in str(info.value) and "archc calibrate" in str(info.value)
    HardwareConfig.model_validate({"peak_macs": 1e10, "mem_bw": 1e10, "efficiency": {"window_pool": 0.1}})
