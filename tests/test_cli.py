"""archc on the command line: builds, sweeps, checks, and errors without tracebacks."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def archc(*args, cwd):
    return subprocess.run([sys.executable, "-m", "archdsl", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=300)


def test_build_writes_every_output(tmp_path):
    r = archc("build", str(ROOT / "conf" / "resnet18"), "params.res=64", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "Warning" not in r.stderr, r.stderr  # the main job prints nothing a user must decode
    runs = list((tmp_path / "outputs" / "resnet18").iterdir())
    assert len(runs) == 1
    out = runs[0]
    for f in ["report.json", "report.md", "layers.csv", "network.txt", "config.yaml", "spec.arch", "model.pt"]:
        assert (out / f).is_file(), f
    rep = json.loads((out / "report.json").read_text())
    assert rep["input_shape"] == [3, 64, 64]
    assert f"{rep['total']['params'] / 1e6:.3f} M params" in r.stdout
    assert str(out) in r.stdout and "roofline" in r.stdout
    assert "convention" in rep and rep["ridge_sweep"][-1]["ridge_point"] == 500


@pytest.mark.parametrize("spelling", ["resnet18", "conf/resnet18", "conf/resnet18.yaml", "ABS"])
def test_config_spellings(tmp_path, spelling):
    if spelling == "ABS":
        spelling = str(ROOT / "conf" / "resnet18.yaml")
    r = archc("cost", spelling, "--json", cwd=ROOT if spelling.startswith("conf/") else tmp_path)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["name"] == "resnet18"


def test_multirun_gives_each_job_its_outputs(tmp_path):
    r = archc("build", "resnet18", "-m", "params.res=32,64", "save_weights=false", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    sweep = next((tmp_path / "multirun" / "resnet18").iterdir())
    reports = sorted(json.loads(p.read_text())["input_shape"][1] for p in sweep.glob("*/report.json"))
    assert reports == [32, 64]
    assert "2/2 jobs succeeded" in r.stdout


def test_cfg_job_prints_config(tmp_path):
    r = archc("build", "resnet18", "--cfg", "job", cwd=tmp_path)
    assert r.returncode == 0 and "recipe: resnet" in r.stdout
    assert not (tmp_path / "outputs").exists()


def test_user_config_in_own_folder_uses_bundled_base(tmp_path):
    (tmp_path / "my").mkdir()
    (tmp_path / "my" / "tiny.yaml").write_text(
        "defaults: [base, _self_]\nrecipe: resnet\nparams: {depths: [1, 1], block: basic, res: 32}\n")
    r = archc("cost", "my/tiny", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "# tiny" in r.stdout


def test_spec_error_exits_2_without_traceback(tmp_path):
    (tmp_path / "recipes").mkdir()
    (tmp_path / "recipes" / "bad.arch").write_text(
        "network bad(res = 32) {\n  input(3, res, res)\n  stage { conv(8, 3, groups: 3) }\n}\n")
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "bad.yaml").write_text("defaults: [base, _self_]\nrecipe: bad\n")
    for cmd in (["cost", "conf/bad"], ["build", "conf/bad"]):
        r = archc(*cmd, cwd=tmp_path)
        assert r.returncode == 2
        assert "Traceback" not in r.stderr + r.stdout
        assert "bad.arch:3:11: conv: groups (3) must divide the input channels (3)" not in r.stderr
        assert "bad.arch:3:11: conv: groups (3) must divide the output channels (8)" in r.stderr
        assert "in bad › stages.0 › conv" in r.stderr


def test_hydra_errors_exit_2_and_name_the_override(tmp_path):
    r = archc("build", "resnet18", "nope=1", cwd=tmp_path)
    assert r.returncode == 2 and "nope" in r.stderr + r.stdout and "Traceback" not in r.stderr
    r = archc("cost", "resnet18", "params.depths=[1,-1,1,1]", cwd=tmp_path)
    assert r.returncode == 2 and "config key 'params.depths'" in r.stderr
    assert "must be list[int >= 1] (element 1 is -1)" in r.stderr
    r = archc("cost", "resnet18", "dtype=fp7", cwd=tmp_path)
    assert r.returncode == 2 and "override 'dtype=fp7'" in r.stderr


@pytest.mark.parametrize("body, where, problem", [
    ("name: a\nname: b\n", ":3:1:", "found duplicate key name"),
    ("params: {res: [1, 2\n", ":3:1:", "expected ',' or ']'"),
])
def test_a_config_that_is_not_yaml_is_located_and_quoted(tmp_path, body, where, problem):
    cfg = tmp_path / "mine.yaml"
    cfg.write_text("defaults: [resnet18, _self_]\n" + body)
    r = archc("cost", str(cfg), cwd=tmp_path)
    assert r.returncode == 2 and "Traceback" not in r.stderr + r.stdout
    first = r.stderr.splitlines()[0]
    assert first.startswith(f"{cfg}{where} invalid YAML") and problem in first, r.stderr


def test_failed_sweep_point_does_not_stop_others(tmp_path):
    r = archc("build", "resnet18", "-m", "params.depths=[1,1,1,1],[1,-1,1,1]", "save_weights=false", cwd=tmp_path)
    assert r.returncode == 2
    assert "1/2 jobs succeeded" in r.stdout
    sweep = next((tmp_path / "multirun" / "resnet18").iterdir())
    assert len(list(sweep.glob("*/report.json"))) == 1 and len(list(sweep.glob("*/error.txt"))) == 1


def test_check(tmp_path):
    r = archc("check", str(ROOT / "recipes" / "resnet.arch"), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    (tmp_path / "x.arch").write_text("block b() {\n  conv(8, 3, strid: 2)\n}\n")
    r = archc("check", "x.arch", cwd=tmp_path)
    assert r.returncode == 2 and "x.arch:2:14: conv has no argument 'strid'" in r.stderr


def test_every_bundled_spec_checks_clean(tmp_path):
    files = sorted((ROOT / "recipes").glob("*.arch")) + sorted((ROOT / "blocks").glob("*.arch"))
    r = archc("check", *map(str, files), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
