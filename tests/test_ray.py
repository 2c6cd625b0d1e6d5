"""Scale-out: `--engine ray` for searches and cost-only grids, Hydra's Ray launcher, the Slurm preset.

One local Ray instance (2 CPUs, a 100 MB object store) serves the module: it
is started by archdsl's own Ray engine, as `--engine ray` without --address
does, and stopped at the end. The archc processes the tests start join it by
address, as they would join a cluster.
"""
import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from archdsl.explore import grid, search
from archdsl.explore.engines import open_engine

# Quiet, and joined by address: Ray asks for its token then (~/.ray/auth_token,
# written when the test's instance starts).
RAY_ENV = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_DEDUP_LOGS": "0", "RAY_AUTH_MODE": "token"}


@pytest.fixture(scope="module")
def ray_engine():
    import ray

    saved = {k: os.environ.get(k) for k in RAY_ENV}
    os.environ.update({k: v for k, v in RAY_ENV.items() if k != "RAY_AUTH_MODE"})
    assert not ray.is_initialized()
    with open_engine("ray", workers=2) as engine:  # no address: a Ray instance of its own
        assert engine.started and engine.workers == 2
        yield engine
    assert not ray.is_initialized()  # the engine stopped the instance it started
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def archc(*args, cwd, timeout=300):
    return subprocess.run([sys.executable, "-m", "archdsl", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **RAY_ENV, "OMP_NUM_THREADS": "1"})


def _address() -> str:
    import ray

    return ray.get_runtime_context().gcs_address


def _plain(rows):
    return [{k: v for k, v in r.items() if k != "config"} for r in rows]  # config: a path under out


@pytest.mark.parametrize("keep", [0, 7])
def test_search_on_ray_is_the_local_search(ray_engine, tmp_path, keep):
    # 9000 samples: two chunks of the sampler, nine shards, so order across shards and chunks counts;
    # keep=7 stops part-way, with shards already running on the workers.
    local, s_local, _ = search.run("regnetx_400mf", 9000, keep, 3, tmp_path / "a", quiet=True)
    on_ray, s_ray, _ = search.run("regnetx_400mf", 9000, keep, 3, tmp_path / "b", quiet=True, engine=ray_engine)
    assert len(local) == (keep or len(local)) and len(local) >= 7
    assert _plain(on_ray) == _plain(local)
    assert {**s_ray.__dict__, "seconds": 0} == {**s_local.__dict__, "seconds": 0}
    for a, b in zip(local, on_ray):  # the kept configs are the same files
        assert Path(a["config"]).read_text() == Path(b["config"]).read_text()


def test_search_without_estimator_on_ray(ray_engine, tmp_path):
    # A space with no closed-form estimate: every sample is elaborated on the workers, and
    # duplicates (equal totals) are found while folding, across shards.
    space = tmp_path / "res.yaml"
    space.write_text("base: resnet18\nparams:\n  res: {sampler: quantized, low: 32, high: 64, step: 8}\n"
                     "constraints:\n  macs: [0, 1.0e+12]\n")
    local, s_local, _ = search.run(str(space), 1100, 0, 0, tmp_path / "a", quiet=True)
    on_ray, s_ray, _ = search.run(str(space), 1100, 0, 0, tmp_path / "b", quiet=True, engine=ray_engine)
    assert s_local.duplicates == 1100 - 5 and len(local) == 5
    assert _plain(on_ray) == _plain(local)
    assert {**s_ray.__dict__, "seconds": 0} == {**s_local.__dict__, "seconds": 0}


def test_search_cli_engine_ray(ray_engine, tmp_path, capsys, monkeypatch):
    from archdsl.cli import main

    monkeypatch.chdir(tmp_path)
    # In this process Ray is running: --engine ray uses it (and leaves it running).
    assert main(["search", "anynetx_400mf", "--samples", "1500", "--keep", "0", "--engine", "ray",
                 "--out", "r"]) == 0
    assert main(["search", "anynetx_400mf", "--samples", "1500", "--keep", "0", "--out", "l"]) == 0
    capsys.readouterr()
    rows = {d: json.loads((tmp_path / d / "summary.json").read_text())["rows"] for d in "rl"}
    assert _plain(rows["r"]) == _plain(rows["l"]) and len(rows["l"]) > 5
    # --address is Ray's alone; an address nothing answers at fails at once (Ray would retry for minutes)
    assert main(["search", "anynetx_400mf", "--samples", "10", "--address", "auto"]) == 2
    assert "only --engine ray joins a cluster" in capsys.readouterr().err
    assert main(["search", "anynetx_400mf", "--samples", "10", "--engine", "ray", "--address", "127.0.0.1:9"]) == 2
    err = capsys.readouterr().err
    assert "--address 127.0.0.1:9: no Ray cluster answers there" in err and "Traceback" not in err


def test_cost_only_grid_joins_cluster_by_address(ray_engine, tmp_path):
    # 96 points, 2 shards, 32 of them invalid (w0=-8): the rows, errors included, in grid order.
    sweep = ["params.wm=2.0,2.2,2.4,2.6", "params.depth=range(12,16)", "params.w0=24,-8,48",
             "params.group_w=8,16"]
    local, _ = grid.run("regnetx_004", sweep, tmp_path / "local", quiet=True)
    r = archc("sweep", "regnetx_004", *sweep, "--cost-only", "--out", "grid", "--engine", "ray",
              "--address", _address(), cwd=tmp_path)
    assert r.returncode == 2, r.stderr  # the invalid points fail the run, as locally
    assert "64/96 points succeeded" in r.stdout and "Traceback" not in r.stderr
    assert sum(x["status"] != "ok" for x in local) == 32
    assert (tmp_path / "grid" / "summary.csv").read_text() == (tmp_path / "local" / "summary.csv").read_text()
    got = json.loads((tmp_path / "grid" / "summary.json").read_text())["rows"]
    assert got == json.loads((tmp_path / "local" / "summary.json").read_text())["rows"]


def test_hydra_ray_launcher_sweep(ray_engine, tmp_path):
    # hydra-ray-launcher's `ray` launcher through the ray_cpu preset (1 CPU a job), joining the running
    # instance. The workers resolve hydra.sweep.dir in their own folder: absolute, as a cluster's shared one.
    sw = tmp_path / "sw"
    r = archc("build", "resnet18", "-m", "hydra/launcher=ray_cpu", f"hydra.launcher.ray.init.address={_address()}",
              "params.res=32,-1", "save_weights=false", f"hydra.sweep.dir={sw}", cwd=tmp_path)
    assert r.returncode == 2, r.stderr  # one point is invalid: the exit status says so
    assert "1/2 jobs succeeded" in r.stdout
    with open(sw / "summary.csv") as f:
        rows = list(csv.DictReader(f))
    assert [x["status"] for x in rows] == ["ok", "error"]
    assert "parameter 'res' = -1 (int) must be int >= 1" in rows[1]["error"]
    rep = json.loads((sw / "0" / "report.json").read_text())
    assert rep["input_shape"] == [3, 32, 32] and int(rows[0]["macs"]) == rep["total"]["macs"]
    # the jobs ran as Ray tasks (their output comes back prefixed with the worker's pid)
    assert "(_run_job pid=" in r.stdout + r.stderr


def test_ray_cpu_preset():
    # The preset for clusters: the plugin's `ray` with one CPU and no GPU a job. object_store_memory is
    # null (Ray's default): the plugin's own default (75 MB) makes Ray refuse to join a running cluster.
    from hydra import compose, initialize_config_dir

    from archdsl.language.resources import conf_dir

    with initialize_config_dir(str(conf_dir()), version_base="1.3"):
        cfg = compose("resnet18", ["hydra/launcher=ray_cpu"], return_hydra_config=True)
    launcher = cfg.hydra.launcher
    assert launcher._target_ == "hydra_plugins.hydra_ray_launcher.ray_launcher.RayLauncher"
    assert dict(launcher.ray.init) == {"address": None, "object_store_memory": None}
    assert dict(launcher.ray.remote) == {"num_cpus": 1, "num_gpus": 0}


def test_slurm_preset_renders_its_job(tmp_path, capfd, monkeypatch):
    # No Slurm here: a stand-in sbatch keeps the script submitit hands it, and refuses it.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "sbatch").write_text('#!/bin/sh\nfor a; do last=$a; done\ncp "$last" "$SBATCH_SCRIPT"\n'
                                    'echo "sbatch: no Slurm here" >&2\nexit 1\n')
    (bin_dir / "srun").write_text("#!/bin/sh\nexit 1\n")  # submitit checks that srun exists
    for f in bin_dir.iterdir():
        f.chmod(0o755)
    script = tmp_path / "job.sh"
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("SBATCH_SCRIPT", str(script))
    monkeypatch.chdir(tmp_path)
    from archdsl.cli import main

    assert main(["build", "resnet18", "-m", "hydra/launcher=slurm", "hydra.launcher.partition=cpu",
                 "params.res=32,40,48", "save_weights=false", "hydra.sweep.dir=sw"]) == 2
    assert "no Slurm here" in capfd.readouterr().err  # the submission failed, and says why
    text = script.read_text()
    sbatch = {line.split("=", 1)[0][len("#SBATCH "):]: line.split("=", 1)[1]
              for line in text.splitlines() if line.startswith("#SBATCH ")}
    # conf/hydra/launcher/slurm.yaml: 1 CPU, no GPU, 4 GB, 20 minutes, 256 array jobs at once
    assert sbatch["--cpus-per-task"] == "1" and sbatch["--gpus-per-node"] == "0"
    assert sbatch["--mem"] == "4GB" and sbatch["--time"] == "20" and sbatch["--partition"] == "cpu"
    assert sbatch["--array"] == "0-2%3"  # three jobs, all at once (fewer than 256)
    assert sbatch["--ntasks-per-node"] == "1" and sbatch["--nodes"] == "1"
    folder = (tmp_path / "sw" / ".submitit").resolve()
    assert sbatch["--output"].startswith(str(folder))  # the logs go to the (shared) sweep folder
    # each array task runs the pickled job with this interpreter
    assert f"{sys.executable} -u -m submitit.core._submit {folder}" in text
    assert len(list(folder.glob("*.pkl"))) == 3
