"""Sweeps: the summary a multirun leaves, launchers, resuming, cost-only grids."""
import csv
import importlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TINY = ["save_weights=false"]


def archc(*args, cwd, timeout=300):
    return subprocess.run([sys.executable, "-m", "archdsl", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout)


def rows(folder: Path) -> list[dict]:
    with open(folder / "summary.csv") as f:
        return list(csv.DictReader(f))


def check_summary(sweep: Path, n: int, failed: int = 0):
    """summary.csv/json hold one row per job with costs, and pareto.png is a PNG."""
    table = rows(sweep)
    doc = json.loads((sweep / "summary.json").read_text())
    assert len(table) == len(doc["rows"]) == n
    assert doc["meta"]["error"] + doc["meta"]["missing"] == failed
    for r, j in zip(table, doc["rows"]):
        assert r["status"] == j["status"]
        if j["status"] == "ok":
            rep = json.loads(Path(j["output_dir"], "report.json").read_text()) if "output_dir" in j else None
            assert int(r["macs"]) == j["macs"] > 0 and int(r["params"]) == j["params"] > 0
            assert all(float(r[f"time_{hw}_s"]) > 0 for hw in ("mobile_cpu", "server_cpu", "a100", "h100"))
            if rep:  # the row is the job's own report
                assert rep["total"]["macs"] == j["macs"] and rep["total"]["bytes"] == j["bytes"]
        else:
            assert r["error"]
    assert (sweep / "pareto.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return doc["rows"]


def test_multirun_writes_summary_and_shows_progress(tmp_path):
    r = archc("build", "resnet18", "-m", "params.res=32,48,-1", *TINY, "hydra.sweep.dir=sw",
              "hydra.callbacks.summary.hardware=h100", cwd=tmp_path)
    assert r.returncode == 2, r.stderr  # one point is invalid: the exit status says so
    assert "2/3 jobs succeeded" in r.stdout
    assert "sweep: 3/3 done (1 failed)" in r.stderr
    got = check_summary(tmp_path / "sw", 3, failed=1)
    assert [g["params.res"] for g in got] == ["32", "48", "-1"]
    assert "parameter 'res' = -1 (int) must be int >= 1" in got[2]["error"]
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize("launcher", ["joblib", "submitit_local"])
def test_out_of_process_launchers(tmp_path, launcher):
    # Both launchers are in the test extra: a missing one is a failure, not a skip.
    importlib.import_module({"joblib": "hydra_plugins.hydra_joblib_launcher",
                             "submitit_local": "hydra_plugins.hydra_submitit_launcher"}[launcher])
    extra = ["hydra.launcher.n_jobs=2"] if launcher == "joblib" else ["hydra.launcher.timeout_min=5"]
    r = archc("build", "resnet18", "-m", f"hydra/launcher={launcher}", *extra, "params.res=32,-1",
              *TINY, "hydra.sweep.dir=sw", cwd=tmp_path)
    # The jobs ran in other processes: the failure still reaches the exit status.
    assert r.returncode == 2, r.stderr
    assert "1/2 jobs succeeded" in r.stdout
    got = check_summary(tmp_path / "sw", 2, failed=1)
    assert got[0]["status"] == "ok" and got[1]["status"] == "error"
    assert json.loads((tmp_path / "sw" / "0" / "report.json").read_text())["input_shape"] == [3, 32, 32]


def test_launcher_presets_compose(tmp_path):
    importlib.import_module("hydra_plugins.hydra_submitit_launcher")
    r = archc("build", "resnet18", "hydra/launcher=slurm", "--cfg", "hydra", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "SlurmLauncher" in r.stdout and "gpus_per_node: 0" in r.stdout
    ray = (ROOT / "conf" / "hydra" / "launcher" / "ray_cpu.yaml").read_text()
    assert "- ray" in ray and "num_gpus: 0" in ray


def _mtimes(folder: Path) -> dict[str, int]:
    """archc's files in the job folders (Hydra rewrites its own .hydra/ and log files per run)."""
    return {p.relative_to(folder).as_posix(): p.stat().st_mtime_ns for p in folder.glob("*/*")
            if p.is_file() and not p.name.endswith(".log")}


def test_resume_skips_finished_jobs(tmp_path):
    r = archc("build", "resnet18", "-m", "params.res=32,40", *TINY, "hydra.sweep.dir=sw", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    sw = tmp_path / "sw"
    before = {k: v for k, v in _mtimes(sw).items() if k[0] in "01"}
    # A job that failed is computed again; the finished ones are kept as they are.
    (sw / "1" / "result.json").write_text(json.dumps({"status": "error", "overrides": ["x"]}))
    del before["1/result.json"]
    r = archc("build", "resnet18", "-m", "params.res=32,40,48", *TINY, "hydra.sweep.dir=sw", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "3/3 jobs succeeded" in r.stdout and r.stdout.count("skipped") == 1
    after = _mtimes(sw)
    assert all(after[k] == v for k, v in before.items() if k.startswith("0/"))
    assert after["1/report.json"] != before["1/report.json"] and "2/report.json" in after
    check_summary(sw, 3)


def test_killed_sweep_loses_nothing_and_resumes(tmp_path):
    points = ",".join(str(16 + 8 * i) for i in range(12))
    cmd = [sys.executable, "-m", "archdsl", "build", "resnet18", "-m", f"params.res={points}", *TINY,
           "hydra.sweep.dir=sw"]
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    sw = tmp_path / "sw"
    deadline = time.time() + 240
    try:
        while len(list(sw.glob("*/result.json"))) < 3 and time.time() < deadline and proc.poll() is None:
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the sweep's own process group, mid-way
        proc.wait()
    done = sorted(p.parent.name for p in sw.glob("*/result.json"))
    assert 3 <= len(done) < 12, done
    for p in sw.glob("*/*.json"):  # every file there is whole (atomic writes)
        json.loads(p.read_text())
    kept = {k: v for k, v in _mtimes(sw).items() if k.split("/")[0] in done}
    r = archc("build", *cmd[4:], cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "12/12 jobs succeeded" in r.stdout and r.stdout.count("skipped") == len(done)
    after = _mtimes(sw)
    assert all(after[k] == v for k, v in kept.items())
    assert not list(sw.rglob("*.tmp"))
    check_summary(sw, 12)


def test_cost_only_grid(tmp_path):
    r = archc("sweep", "regnetx_004", "params.wm=2.0,2.4", "params.depth=range(12,15)", "params.w0=24,-8",
              "--cost-only", "--out", "grid", "--hardware", "h100", cwd=tmp_path)
    assert r.returncode == 2  # w0=-8 is invalid
    assert "6/12 points succeeded" in r.stdout and "parameter 'w0' = -8 (int) must be float > 0" in r.stderr
    got = check_summary(tmp_path / "grid", 12, failed=6)
    assert not [p for p in (tmp_path / "grid").iterdir() if p.is_dir()]  # no per-job folders
    # Hydra's BasicSweeper order; each point equals archc cost with its overrides.
    assert [(g["params.wm"], g["params.depth"], g["params.w0"]) for g in got[:3]] == [
        ("2.0", "12", "24"), ("2.0", "12", "-8"), ("2.0", "13", "24")]
    import archdsl
    for g in got[:4:2]:
        rep = archdsl.cost("regnetx_004", [f"params.{k}={g['params.' + k]}" for k in ("wm", "depth", "w0")])
        assert (rep.total.macs, rep.total.params, rep.total.activations) == (g["macs"], g["params"],
                                                                               g["activations"])
        assert rep.roofline(rep.hardware[3]) == pytest.approx(g["time_h100_s"])


def test_cost_only_grid_matches_hydra_jobs(tmp_path):
    """The same overrides give the same points whether Hydra runs jobs or archc evaluates them."""
    from archdsl.explore import grid

    jobs = grid.expand(["params.res=32,48", "params.block=basic,bottleneck", "dtype=fp32,fp16"])
    assert len(jobs) == 8 and jobs[1] == ["++params.res=32", "++params.block=basic", "dtype=fp16"]
    # Hydra's other sweep forms too: shuffled, quoted, range; a non-params key composes anew.
    ov = ["params.res=range(32,65,32)", "params.stem_pool=shuffle('max','conv')", "dtype=fp32,fp16"]
    got, _ = grid.run("resnet18", ov, tmp_path / "g", quiet=True)
    assert len(got) == 8 and all(g["status"] == "ok" for g in got)
    import archdsl
    for g in got:
        rep = archdsl.cost("resnet18", [o.lstrip("+") for o in g["overrides"]])
        assert (g["macs"], g["bytes"]) == (rep.total.macs, rep.total.bytes)
    assert len({(g["macs"], g["bytes"]) for g in got}) == 8


def test_cost_only_grid_deployed_graph(tmp_path):
    """deploy=true points report the deployed graph, as archc cost does."""
    import archdsl
    from archdsl.explore import grid

    got, _ = grid.run("repvgg_a0", ["params.res=32", "deploy=true,false"], tmp_path, quiet=True)
    for g in got:
        rep = archdsl.cost("repvgg_a0", [o.lstrip("+") for o in g["overrides"]])
        assert (g["params"], g["macs"]) == (rep.total.params, rep.total.macs)
    assert got[0]["params"] < got[1]["params"]  # branches fused


def test_cost_only_errors_exit_2(tmp_path, capsys, monkeypatch):
    from archdsl.cli import main

    monkeypatch.chdir(tmp_path)
    for args, message in [(["params.wmx=2,3"], "has no parameter 'wmx'"),
                          (["params.wm=range("], "no viable alternative"),
                          (["params.wm=2,3", "--hardware", "tpu"], "no hardware preset 'tpu'")]:
        assert main(["sweep", "regnetx_004", *args, "--cost-only", "--out", "g"]) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err


def test_pareto_front():
    from archdsl.explore.summary import pareto

    pts = [{"status": "ok", "p": p, "m": m} for p, m in [(1, 1), (2, 3), (2, 2), (3, 3), (4, 5), (0.5, 0.2)]]
    pts.append({"status": "error"})
    assert sorted(pareto(pts, "p", "m")) == [0, 1, 4, 5]
