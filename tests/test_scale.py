"""archc scale: the three rules' arithmetic, the configs they write, and that archc builds them."""
import json
import math
import subprocess
import sys

import pytest

import archdsl
from archdsl.explore import scale
from archdsl.explore.summary import time_key


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
    for args, message in [(["resnext", "efficientnet_b0"], "needs a ResNet/ResNeXt with bottleneck"),
                          (["dwr", "resnet50"], "needs a network with depth_mult"),
                          (["efficientnet", "efficientnet_b0", "--hardware", "tpu"], "no hardware preset")]:
        assert main(["scale", *args, "--out", "o"]) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err
