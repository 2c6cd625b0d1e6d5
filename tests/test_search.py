"""archc search: samplers, bounded evaluation, constraints, de-duplication, reproducibility."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import archdsl
from archdsl.explore import search
from archdsl.explore.points import Base
from archdsl.explore.space import Sampler, load_space

ROOT = Path(__file__).resolve().parent.parent


def _points(params: dict, n: int) -> list[dict]:
    return [{k: (v[i].tolist() if np.ndim(v) else v) for k, v in params.items()} for i in range(n)]


def test_bounded_evaluation_stops_only_networks_past_the_bound():
    """A network is stopped (at the section that passes the bound) exactly when its full
    evaluation is past it; below the bound, bounded and full evaluation agree."""
    rng = np.random.default_rng(1)
    n = 60
    p = {"depth": rng.integers(1, 29, n), "w0": rng.integers(1, 33, n) * 8,
         "wa": np.round(rng.uniform(0.1, 256, n), 1), "wm": np.round(rng.uniform(1.5, 3, n), 3),
         "group_w": 2 ** rng.integers(0, 6, n), "se": rng.choice([0.0, 0.25], n), "res": rng.choice([224, 97], n)}
    base = Base("regnetx_004")
    bound = 400e6
    seen = set()
    for pt in _points(p, n):
        full = base.evaluate(pt, stages=True)
        part = base.evaluate(pt, stages=True, bounds={"macs": bound, "stages": 4})
        assert full["status"] == "ok"
        past = [k for k, b in (("stages", 4), ("macs", bound)) if full[k] > b]
        if past:
            assert part["status"] == "exceeded" and part["constraint"] in past
        else:
            assert part == full
        seen.add(part["status"])
    assert seen == {"ok", "exceeded"}


def test_bounds_never_change_what_a_search_keeps(tmp_path, monkeypatch):
    a, sa, _ = search.run("anynetx_400mf", 3000, 0, 5, tmp_path / "a", quiet=True)
    monkeypatch.setattr(search, "BOUNDED", ())  # no early stops: every sample fully evaluated
    b, sb, _ = search.run("anynetx_400mf", 3000, 0, 5, tmp_path / "b", quiet=True)
    assert [r["sample"] for r in a] == [r["sample"] for r in b] and len(a) > 0
    assert sum(sa.rejected.values()) == sum(sb.rejected.values())


def test_anynet_recipe_is_regnet_per_stage():
    """A RegNet written as its stage lists is the same network (what `archc scale dwr` relies on)."""
    c = archdsl.compile("regnetx_004")
    stages = c.spec.children[1].children
    ds, ws = [len(s.children) for s in stages], [s.out_shape[0] for s in stages]
    a = archdsl.cost("base", ["recipe=anynet", f"params.depths={ds}", f"params.widths={ws}",
                              "params.group_ws=[16,16,16,16]"])
    t = c.report().total
    assert (a.total.params, a.total.macs, a.total.activations) == (t.params, t.macs, t.activations)


def test_samplers():
    rng = np.random.default_rng(0)
    n = 20000
    q = Sampler(sampler="quantized", low=12, high=28, step=1).draw(rng, (n,))
    assert q.dtype.kind == "i" and set(q.tolist()) == set(range(12, 29))
    w0 = Sampler(sampler="log_uniform", low=8, high=256, step=8).draw(rng, (n,))
    assert w0.min() == 8 and w0.max() == 256 and not (w0 % 8).any()
    assert (w0 <= 16).mean() > 0.15  # log-uniform: small widths as likely as any octave
    wm = Sampler(sampler="log_uniform", low=1.5, high=3.0, step=0.001).draw(rng, (n,))
    assert 1.5 <= wm.min() and wm.max() <= 3.0 and np.allclose(wm, np.round(wm, 3), atol=0, rtol=0)
    g = Sampler(sampler="power2", low=1, high=32).draw(rng, (n,))
    assert set(g.tolist()) == {1, 2, 4, 8, 16, 32}
    u = Sampler(sampler="uniform", low=0.5, high=1.0).draw(rng, (n,))
    assert u.dtype.kind == "f" and 0.5 <= u.min() and u.max() <= 1.0
    c = Sampler(sampler="choice", values=[1.0, 0.5, 0.25]).draw(rng, (n,))
    assert set(c.tolist()) == {1.0, 0.5, 0.25}
    lst = Sampler(sampler="list", length=4, item={"sampler": "power2", "low": 1, "high": 8}).draw(rng, (7,))
    assert lst.shape == (7, 4)
    with pytest.raises(ValueError, match="multiples of step"):
        Sampler(sampler="quantized", low=1, high=10, step=4)


@pytest.mark.parametrize("name", ["regnetx_400mf", "regnetx_800mf", "anynetx_400mf", "anynetx_800mf"])
def test_bundled_spaces_keep_points_within_constraints(tmp_path, name):
    rows, stats, _ = search.run(name, 20000, 8, 0, tmp_path, quiet=True)
    space = load_space(name)
    assert stats.kept == len(rows) > 0
    lo, hi = space.constraints["macs"]
    for r in rows:
        assert lo <= r["macs"] <= hi
        assert r["stages"] == 4
        # The written config is the point: archc computes the same costs from it.
        rep = archdsl.cost(r["config"])
        assert (rep.total.macs, rep.total.params) == (r["macs"], r["params"])
    doc = json.loads((tmp_path / "summary.json").read_text())
    assert len(doc["rows"]) == len(rows) and doc["meta"]["stats"]["samples"] <= 20000
    assert (tmp_path / "histograms.png").read_bytes()[:4] == b"\x89PNG"


def test_same_seed_same_configs(tmp_path):
    def configs(out, seed, samples=8000):
        search.run("regnetx_400mf", samples, 6, seed, out, quiet=True)
        return {p.name: p.read_text() for p in sorted((out / "configs").glob("*.yaml"))}

    a, b = configs(tmp_path / "a", 7), configs(tmp_path / "b", 7)
    assert a == b and len(a) == 6
    assert configs(tmp_path / "c", 8) != a
    # More samples only append: the first kept points are the same.
    assert configs(tmp_path / "d", 7, samples=30000) == a


def test_duplicates_dropped(tmp_path):
    (tmp_path / "space.yaml").write_text(
        "base: resnet18\n"
        "params:\n"
        "  res: {sampler: choice, values: [32, 64]}\n"
        "  block: {sampler: choice, values: [basic, bottleneck]}\n"
        "constraints:\n"
        "  macs: [0, 1.0e+9]\n"
        "  time_a100_s: [null, 1.0]\n")
    rows, stats, _ = search.run(str(tmp_path / "space.yaml"), 40, 0, 3, tmp_path / "out", quiet=True)
    assert len(rows) == 4  # four distinct networks in 40 samples
    assert stats.duplicates == stats.elaborated - 4
    assert {(r["params.res"], r["params.block"]) for r in rows} == {
        (32, "basic"), (64, "basic"), (32, "bottleneck"), (64, "bottleneck")}


def test_kept_config_builds(tmp_path):
    rows, _, _ = search.run("regnetx_400mf", 5000, 1, 0, tmp_path / "s", quiet=True)
    r = subprocess.run([sys.executable, "-m", "archdsl", "build", rows[0]["config"], "save_weights=false",
                        "hydra.run.dir=built"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    rep = json.loads((tmp_path / "built" / "report.json").read_text())
    assert rep["total"]["macs"] == rows[0]["macs"]


def test_search_errors_exit_2(tmp_path, capsys, monkeypatch):
    from archdsl.cli import main

    monkeypatch.chdir(tmp_path)
    bad = {
        "a.yaml": ("base: regnetx_004\nparams: {depthx: {sampler: power2, low: 1, high: 8}}\n",
                   "has no parameter 'depthx'"),
        "b.yaml": ("base: regnetx_004\nparams: {depth: {sampler: power2, low: 3, high: 8}}\n",
                   "powers of two"),
        "c.yaml": ("base: regnetx_004\nparams: {depth: {sampler: power2, low: 1, high: 8}}\n"
                   "constraints: {flops: [0, 1]}\n", "unknown constraint 'flops'"),
        "d.yaml": ("base: regnetx_004\nparams: {depth: {sampler: power2, low: 1, high: 8}}\n"
                   "constraints: {time_tpu_s: [0, 1]}\n", "no hardware preset 'tpu'"),
    }
    for name, (text, message) in bad.items():
        (tmp_path / name).write_text(text)
        assert main(["search", name, "--samples", "10"]) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, err
    assert main(["search", "nospace", "--samples", "10"]) == 2
    assert "regnetx_400mf" in capsys.readouterr().err  # lists the bundled spaces
