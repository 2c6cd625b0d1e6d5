"""archc's rough edges, each fixed: closed pipes, --version, bash completion, help,
the job log, overrides as typed, relocatable output folders, times and floats
for people, one type per summary column."""
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from archdsl.cli import main

ROOT = Path(__file__).resolve().parent.parent
ENV = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")


def archc(*args, cwd, **kw):
    return subprocess.run([sys.executable, "-m", "archdsl", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=300, env=ENV, **kw)


def test_a_closed_pipe_is_no_error(tmp_path):
    """`archc -h | true`: the reader is gone before archc writes; archc says nothing more."""
    for args in (["-h"], ["build", "regnetx_002", "--cfg", "job"]):  # archc prints; Hydra prints
        r, w = os.pipe()
        os.close(r)
        try:
            p = subprocess.run([sys.executable, "-m", "archdsl", *args], stdout=w, stderr=subprocess.PIPE,
                               text=True, timeout=300, env=ENV, cwd=tmp_path)
        finally:
            os.close(w)
        assert p.returncode == 0 and p.stderr == "", (args, p.stderr)


def test_version(capsys):
    from importlib.metadata import version

    import archdsl

    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"archc {version('archdsl')}\n"
    assert version("archdsl") == archdsl.__version__


def test_bash_completion_through_hydras_script(tmp_path, capsys):
    """The script `-sc install=bash` prints, sourced in bash, completes archc's command line."""
    assert main(["build", "regnetx_002", "-sc", "install=bash"]) == 0
    script = capsys.readouterr().out
    assert main(["-sc", "install=bash"]) == 0 and capsys.readouterr().out == script
    assert script.rstrip().endswith("-F hydra_bash_completion archc")
    (tmp_path / "completion.sh").write_text(script)
    (tmp_path / "bin").mkdir()
    exe = tmp_path / "bin" / "archc"  # the installed command, whatever environment runs the tests
    exe.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m archdsl "$@"\n')
    exe.chmod(0o755)
    lines = ["archc build regnetx_00", "archc build regnetx_002 params.de"]
    calls = "".join(
        f'COMP_LINE="{line}"; COMP_POINT=${{#COMP_LINE}}; words=($COMP_LINE); COMP_CWORD=$((${{#words[@]}}-1)); '
        'COMPREPLY=(); hydra_bash_completion; echo "${COMPREPLY[*]}"\n' for line in lines)
    r = subprocess.run(["bash", "-c", f"source {tmp_path / 'completion.sh'}\n{calls}"], capture_output=True,
                       text=True, timeout=300, env=dict(ENV, PATH=f"{tmp_path / 'bin'}:{os.environ['PATH']}"))
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["regnetx_002 regnetx_004 regnetx_006 regnetx_008",
                                     "params.depth="], r.stdout + r.stderr


def test_completions_propose_configs_keys_and_parameters():
    from archdsl.cli import completions

    assert {"build", "cost", "diff", "check", "--version"} <= set(completions("archc "))
    assert completions("archc b") == ["build"]
    assert "hardware=" in completions("archc cost regnetx_002 ")
    assert not any(c.startswith("spaces") for c in completions("archc cost regnetx_002 "))
    # the preset sets depth, not classes: archc still takes every parameter of the network
    assert completions("archc build regnetx_002 params.cl") == ["params.classes="]
    assert completions("archc build regnetx_002 hardware=") == ["hardware=standard"]
    assert completions("archc diff regnetx_002 regnetx_00")[:1] == ["regnetx_002"]
    assert completions("archc build nosuchconfig params.") == []


def test_build_help_names_archc_and_its_usable_groups(capsys):
    assert main(["build", "regnetx_002", "params.res=64", "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: archc build CONFIG") and "powered by Hydra" not in out
    assert "  hardware: standard\n" in out and "spaces" not in out
    assert "hydra/launcher: basic, joblib" in out
    assert "depth=13, w0=24" in out and "classes=1000" in out  # the network's parameters
    assert "  res: 64\n" in out  # the composed config, with the overrides


TINY_RECIPE = """use "tinyblock"

network tiny(width: int >= 1 = 8, res = 32, classes = 10) {
  input(3, res, res)
  stem { conv(width, 3, stride: 2) bn relu }
  stage { twoconv(width * 2) }
  head { global_pool linear(classes) }
}
"""
TINY_BLOCK = """use "blocks/se"

block twoconv(out) {
  conv(out, 3) bn relu
  squeeze_excite(reduce: 4)
}
"""


def test_a_sweep_logs_echoes_as_typed_and_its_folders_move(tmp_path):
    my = tmp_path / "my"
    (my / "recipes").mkdir(parents=True)
    (my / "conf").mkdir()
    (my / "recipes" / "tiny.arch").write_text(TINY_RECIPE)
    (my / "recipes" / "tinyblock.arch").write_text(TINY_BLOCK)
    (my / "conf" / "tiny.yaml").write_text("defaults: [base, _self_]\nrecipe: tiny\n")
    r = archc("build", "my/conf/tiny", "-m", "params.width=8,-1", "deploy=false", "hydra.sweep.dir=sw",
              cwd=tmp_path)
    assert r.returncode == 2 and "1/2 jobs succeeded" in r.stdout, r.stderr
    # Overrides as typed: no `++` that archc added for Hydra, no False for false.
    assert "[params.width=8 deploy=false] tiny:" in r.stdout and "++" not in r.stdout + r.stderr
    assert "[params.width=-1 deploy=false] failed" in r.stderr
    assert "override 'params.width=-1'" in r.stderr
    # Times in the unit that fits.
    times = re.findall(r"(?:mobile_cpu|server_cpu|a100|h100) (\d+(?:\.\d+)?) (s|ms|µs|ns)\b", r.stdout)
    assert len(times) == 4 and all(1 <= float(v) < 1000 for v, _ in times), r.stdout
    assert "0.000 ms" not in r.stdout
    # Each job's log is archc.log and holds what the job printed.
    sw = tmp_path / "sw"
    assert not list(sw.glob("*/cli.log"))
    assert "[params.width=8 deploy=false] tiny:" in (sw / "0" / "archc.log").read_text()
    assert "override 'params.width=-1'" in (sw / "1" / "archc.log").read_text()
    # One type per column: job is the job's number, as in a cost-only grid.
    from archdsl.explore import grid

    hydra_rows = json.loads((sw / "summary.json").read_text())["rows"]
    grid_rows, _ = grid.run(str(my / "conf" / "tiny"), ["params.width=8,-1"], tmp_path / "g", quiet=True)
    assert [r["job"] for r in hydra_rows] == [r["job"] for r in grid_rows] == [0, 1]
    for a, b in zip(hydra_rows, grid_rows):
        for k in set(a) & set(b):
            assert type(a[k]) is type(b[k]), k
    # CSV floats: a roofline time to its 4 significant digits, not 0.0021725247999999997.
    t = (sw / "summary.csv").read_text().splitlines()[1].split(",")[9]
    assert 0 < float(t) and len(re.sub(r"^0\.0*|e.*$|\.", "", t)) <= 4, t
    # The output folder moves, and loads without the recipe it came from.
    import torch

    import archdsl

    moved = tmp_path / "elsewhere" / "run"
    shutil.move(str(sw / "0"), moved)
    shutil.rmtree(my)
    assert "recipe: spec.arch" in (moved / "config.yaml").read_text()
    net = archdsl.load(moved)
    saved = torch.load(moved / "model.pt", weights_only=True)
    assert all(torch.equal(v, saved[k]) for k, v in net.state_dict().items())
    assert net(torch.randn(1, 3, 32, 32)).shape == (1, 10)
    assert archdsl.cost(moved).total.params == json.loads((moved / "report.json").read_text())["total"]["params"]


def test_seconds_in_the_unit_that_fits():
    from archdsl.backends.units import fmt_seconds

    assert [fmt_seconds(s) for s in (0.093262, 0.0096, 0.000342, 4e-6, 0.9999996e-3, 2.5)] == [
        "93.3 ms", "9.60 ms", "342 µs", "4.00 µs", "1.00 ms", "2.50 s"]


def test_summary_csv_rounds_floats_to_what_they_mean():
    from archdsl.explore import summary

    rows = [summary.row(0, ["params.wm=2.4"], {"status": "ok", "name": "x", "params": 1, "macs": 2,
                                               "roofline_s": {"a100": 0.0021725247999999997}},
                        {"wa": 2.4000000000000004})]
    head, line = summary.to_csv(rows).splitlines()
    cells = dict(zip(head.split(","), line.split(",")))
    assert cells["time_a100_s"] == "0.002173" and cells["params.wa"] == "2.4"
