"""archc scale: the three rules' arithmetic, the configs they write, and that archc builds them;
the scaling declarations specs make (`scalable`), a user's recipe among them, and their errors."""
import ast
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

import archdsl
from archdsl.compiler import scaling
from archdsl.explore import scale
from archdsl.explore.summary import time_key
from archdsl.language.errors import ArchError
from archdsl.language.parser import parse_text


def test_rule_arithmetic():
    d, w, g, r = scale.fast(4.0, 0.8)  # dWr: exponents 0.1, 0.4 (width and groups), 0.05
    assert (d, w, g, r) == pytest.approx((4 ** 0.1, 4 ** 0.4, 4 ** 0.4, 4 ** 0.05))
    assert d * w * w * r * r == pytest.approx(4.0)  # FLOPs ~ d w^2 r^2 scale by s
    assert scale.fast(8.0, 1 / 3)[:2] == pytest.approx((2.0, 8 ** (1 / 6)))  # uniform compound
    assert scale.compound(2, 1.2, 1.1, 1.15) == pytest.approx((1.44, 1.21, 1.0, 1.3225))
    # ResNeXt's Table 2: at ResNet-50's FLOPs, 2x40d, 4x24d, 8x14d, 32x4d.
    c = {g: scale.iso_flop_group_width(g, 64, 1) for g in (1, 2, 4, 8, 32)}
    assert {g: round(v) for g, v in c.items()} == {1: 64, 2: 40, 4: 24, 8: 14, 32: 4}
    for g, v in c.items():  # the root of 9Gc^2 + 8GCc - 17C^2 = 0
        assert 9 * g * v ** 2 + 8 * g * 64 * v - 17 * 64 ** 2 == pytest.approx(0, abs=1e-6)


def _build(config, tmp_path, name):
    r = subprocess.run([sys.executable, "-m", "archdsl", "build", config, "save_weights=false",
                        f"hydra.run.dir={name}"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return json.loads((tmp_path / name / "report.json").read_text())


def _configs_match_rows(rows):
    for r in rows[1:]:
        if "config" in r:
            rep = archdsl.cost(r["config"])
            assert (rep.total.macs, rep.total.params) == (r["macs"], r["params"])


def test_efficientnet_compound(tmp_path):
    rows = scale.run("efficientnet", "efficientnet_b0", tmp_path, phis=(1, 2))
    assert [r["point"] for r in rows] == ["base", "phi1", "phi2"] and [r["job"] for r in rows] == [0, 1, 2]
    # phi=1 with (1.2, 1.1, 1.15) is B2's depth and width: B2's parameter count.
    assert rows[1]["params.depth_mult"] == 1.2 and rows[1]["params.width_mult"] == 1.1
    assert rows[1]["params"] == archdsl.cost("efficientnet_b2").total.params
    assert rows[1]["params.res"] == 256 and rows[2]["params.res"] == 296  # 224 * 1.15^phi, to 4
    assert 1.8 < rows[1]["macs_x"] < 2.4 and 3.6 < rows[2]["macs_x"] < 4.8
    _configs_match_rows(rows)
    rep = _build(rows[1]["config"], tmp_path, "b")
    assert rep["total"]["macs"] == rows[1]["macs"] and rep["input_shape"] == [3, 256, 256]


def test_efficientnet_coefficient_search(tmp_path):
    rows = scale.run("efficientnet", "efficientnet_b0", tmp_path, search=True, keep=3, tolerance=0.1)
    cands = rows[1:]
    assert cands and all(abs(r["nominal"] / 2 - 1) <= 0.1 for r in cands)
    ranked = sorted((r for r in cands if "rank" in r), key=lambda r: r["rank"])
    assert len(ranked) == 3 and all(abs(r["macs_x"] / 2 - 1) <= 0.1 for r in ranked)
    per_mac = [r[time_key("a100")] / r["macs"] for r in ranked]
    assert per_mac == sorted(per_mac)
    eligible = [r for r in cands if r["status"] == "ok" and abs(r["macs_x"] / 2 - 1) <= 0.1]
    assert per_mac[0] == min(r[time_key("a100")] / r["macs"] for r in eligible)
    _configs_match_rows(rows)


def test_dwr_regnet_follows_pycls(tmp_path):
    rows = scale.run("dwr", "regnetx_004", tmp_path, factors=(2, 4))
    x2 = rows[1]
    # regnetx_004's stages: d [1, 2, 7, 12], w [32, 64, 160, 384], g 16. pycls's rounding at
    # s=2: d*1.072 -> [1, 2, 8, 13]; w*1.32 -> 8*round(w*1.32/8); g 16*1.32=21 -> 24; then
    # widths become multiples of 24; resolution 224*1.035 -> 232.
    assert (x2["params.depths"], x2["params.widths"], x2["params.group_ws"], x2["params.res"]) == (
        [1, 2, 8, 13], [48, 96, 216, 504], [24, 24, 24, 24], 232)
    assert 2 <= x2["macs_x"] < 2.5 and 4 <= rows[2]["macs_x"] < 5
    # Most of the growth is width: activations grow far less than MACs (the point of dWr).
    assert rows[2]["activations"] / rows[0]["activations"] < math.sqrt(4) * 1.2
    _configs_match_rows(rows)
    rep = _build(x2["config"], tmp_path, "b")
    assert rep["total"]["macs"] == x2["macs"]


def test_resnext_iso_flop(tmp_path):
    rows = scale.run("resnext", "resnet50", tmp_path, groups=(2, 32))
    assert [(r["G"], r["c"]) for r in rows[1:]] == [(2, 40), (32, 4)]
    assert rows[2]["macs"] == archdsl.cost("resnext50_32x4d").total.macs  # 32x4d is the rule's own point
    assert all(abs(r["macs_x"] - 1) < 0.05 for r in rows[1:])
    _configs_match_rows(rows)
    rep = _build(rows[1]["config"], tmp_path, "b")
    assert rep["total"]["macs"] == rows[1]["macs"]


def test_scale_errors_exit_2(tmp_path, capsys, monkeypatch):
    from archdsl.cli import main

    monkeypatch.chdir(tmp_path)
    for args, message in [(["resnext", "efficientnet_b0"], "declares groups, group_width scalable"),
                          # resnet declares groups and group width only for bottlenecks (`when:`)
                          (["resnext", "resnet18"], "network 'resnet' declares res: res\n"),
                          (["dwr", "resnet50"], "declares depth, width, res scalable"),
                          (["dwr", "mobilenetv3_large_100"], "network 'mobilenetv3' declares none"),
                          (["efficientnet", "efficientnet_b0", "--hardware", "tpu"], "hardware preset")]:
        assert main(["scale", *args, "--out", "o"]) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err


# ---------------------------------------------------------------- declarations

def test_regnet_is_scaled_as_the_anynet_of_the_stages_timm_builds(one_thread):
    import timm
    import torch

    for preset in ("regnetx_004", "regnety_016", "regnetx_032"):
        sc = scale.Scaler(preset)
        form = sc.form.params  # what regnet.arch's `scalable as anynet(...)` gives, through anynet's own
        with torch.device("meta"):
            ref = timm.create_model(preset)
        stages = [list(getattr(ref, f"s{i}").children()) for i in range(1, 5)]
        assert form["depths"] == [len(s) for s in stages], preset
        assert form["widths"] == [s[0].conv3.conv.out_channels for s in stages], preset
        assert form["group_ws"] == [s[0].conv2.conv.out_channels // s[0].conv2.conv.groups for s in stages]
        assert form["se"] == (0.25 if preset.startswith("regnety") else 0.0)
        # ... and that AnyNet is the RegNet itself.
        res, base = sc.evaluate(form), archdsl.cost(preset).total
        assert (res["params"], res["macs"]) == (base.params, base.macs)


def test_no_module_names_a_family_to_scale():
    root = Path(scale.__file__).parents[1]
    assert not (root / "explore" / "estimate.py").exists()
    families = set()  # the network names of every bundled recipe
    for f in (root.parent / "recipes").glob("*.arch"):
        families |= {d.name for d in parse_text(f.read_text(), str(f)).definitions if d.kind == "network"}
    assert {"regnet", "anynet", "resnet", "efficientnet"} <= families
    for module in (scale, scaling):
        strings = {n.value for n in ast.walk(ast.parse(Path(module.__file__).read_text()))
                   if isinstance(n, ast.Constant) and isinstance(n.value, str)}
        # The rules are named after their papers (`archc scale efficientnet` scales any declared network).
        assert not (strings - set(scale.RULES)) & families, module.__name__


# A user's recipe in a folder of its own: per-stage depths and widths, and a
# normal form (the widths it builds, multiples of 16) that points are written in.
TINY = """\
network tiny(depths: list[int >= 1] = [1, 2], widths: list[int >= 1] = [16, 32], res: int >= 1 = 64) {
  scalable(depth: depths, width: widths, res: res)
  input(3, res, res)
  let ws = [quantize(w, 16) for w in widths]
  stem { conv(16, 3, stride: 2) bn relu }
  for (d, w) in zip(depths, ws) {
    stage repeat d as j { conv(w, 3, stride: 2 if j == 0 else 1) bn relu }
  }
  head { global_pool linear(10) }
  scalable as tiny(depths: depths, widths: ws, res: res)
}
"""


def _user_recipe(tmp_path, text=TINY) -> str:
    (tmp_path / "recipes").mkdir(exist_ok=True)
    (tmp_path / "recipes" / "tiny.arch").write_text(text)
    (tmp_path / "conf").mkdir(exist_ok=True)
    (tmp_path / "conf" / "tiny.yaml").write_text("defaults: [base, _self_]\nrecipe: tiny\n")
    return str(tmp_path / "conf" / "tiny.yaml")


def test_a_users_recipe_declares_what_scales(tmp_path):
    rows = scale.run("dwr", _user_recipe(tmp_path), tmp_path / "out", factors=(4,))
    x4 = rows[1]
    # By hand, s = 4: d = 4^0.1 = 1.149, w = 4^0.4 = 1.741, r = 4^0.05 = 1.072. depths [1, 2] ->
    # [1, round(2.297)] = [1, 2]; widths [16, 32] -> 8 * round(w * 1.741 / 8) = [24, 56], written as
    # the recipe builds them (multiples of 16, round half to even): [32, 64]; res 64 -> 4 * round(17.15) = 68.
    assert (x4["params.depths"], x4["params.widths"], x4["params.res"]) == ([1, 2], [32, 64], 68)

    def conv(cin, cout, size):  # a 3x3 conv's MACs at its output size
        return cin * cout * 9 * size * size
    # 68 -> 34 (stem, stride 2) -> 17 (stage 0) -> 9 (stage 1, then one stride-1 conv); the linear 64 -> 10.
    assert x4["macs"] == conv(3, 16, 34) + conv(16, 32, 17) + conv(32, 64, 9) + conv(64, 64, 9) + 64 * 10
    _configs_match_rows(rows)


@pytest.mark.parametrize("declaration, message", [
    ("scalable(deep: depths)", "no scaling role 'deep'"),
    ("scalable(depth: dephts)", "network 'tiny' has no parameter 'dephts'"),
    ("scalable(depth: depths[0])", "role 'depth' takes a parameter of network 'tiny', by name"),
    ("scalable(res: res, res: res)", "'res' given twice"),
    ("scalable(depths)", "takes its arguments by name"),
    ("scalable(width: act)", "parameter 'act' (width) must be typed int, float, list[int] or list[float]"),
    ("scalable as nonet(res: res)", "no recipe named 'nonet'"),
    ("scalable as tiny(rez: res)", "network 'tiny' has no parameter 'rez'"),
])
def test_a_bad_declaration_is_a_located_error(tmp_path, capsys, declaration, message):
    from archdsl.cli import main

    lines = TINY.replace("res: int >= 1 = 64)", 'res: int >= 1 = 64, act = "relu")').splitlines()
    line = 10 if " as " in declaration else 2  # in place of the `scalable as` line, or of the roles
    lines[line - 1] = "  " + declaration
    path = tmp_path / "recipes" / "tiny.arch"
    config = _user_recipe(tmp_path, "\n".join(lines) + "\n")
    with pytest.raises(ArchError) as e:
        scale.Scaler(config)
    assert message in e.value.message, e.value.render()
    loc = e.value.loc  # the declaration's line; the argument at fault where there is one
    assert (loc.file, loc.line) == (str(path), line) and loc.column > (3 if "(" in message else 2)
    # archc check says the same: exit status 2, file:line:col, no traceback.
    assert main(["check", str(path)]) == 2
    err = capsys.readouterr().err
    assert message in err and f"{path}:{line}:{loc.column}:" in err and "Traceback" not in err
    assert " › " not in err  # no elaboration path: a declaration is not elaborated
    if "deep" in declaration:
        assert "did you mean 'depth'?" in err


def test_when_must_be_a_truth_value_and_declarations_stay_at_the_top_of_a_network(tmp_path):
    text = TINY.replace("scalable(depth: depths, width: widths, res: res)",
                        "scalable(depth: depths, width: widths, res: res, when: res)")
    with pytest.raises(ArchError) as e:
        scale.Scaler(_user_recipe(tmp_path, text))
    assert "when: must be true or false, got 64 (int)" in e.value.message and e.value.loc.line == 2
    for misplaced in ("block b() { scalable(res: res) }",
                      "network n() { input(3, 8, 8) stage { scalable(res: res) } }"):
        with pytest.raises(ArchError) as e:
            parse_text(misplaced + "\n", "m.arch")
        assert "goes at the top level of a network body" in e.value.message and e.value.loc.column > 10
