"""Sweep throughput: cost-only grids vs Hydra jobs, and design-space search.

Part 1, a RegNet grid (regnetx_004 over wm x depth x w0, --points about 2000):

  floor         archdsl.explore.points.Base.evaluate on each point: elaborate + report +
                totals and roofline times, the config composed once — what any
                per-point path must at least pay.
  grid loop     archdsl.explore.grid.run's loop (the same points parsed from Hydra's
                override grammar and expanded by its BasicSweeper, one summary
                row each), as summary.json's meta.seconds records it.
  grid e2e      grid.run end to end: expanding, composing, the loop, writing
                summary.csv/json and drawing pareto.png.
  hydra jobs    `archc build regnetx_004 -m ... save_weights=false` in a fresh
                process (Hydra's basic launcher, one job folder each), for 4 and
                for 12 points: jobs/s end to end, and the marginal cost of a job
                ((t12 - t4) / 8, start-up excluded).

Part 2, search: `archc search` on the bundled spaces, 100,000 samples,
keeping every point that passes (--keep 0), timed from the first sample to the
last check (search.Stats.seconds) and end to end (configs, summary, plots).

Goals: a cost-only grid >= 500 RegNet configs/s (grid loop); 100,000 RegNet
samples filtered in < 60 s.

    python bench/sweep_speed.py [--quick] [--points N] [--samples N]
"""
from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

NAME = "sweep_speed"
GOAL_GRID_PER_S = 500
GOAL_SEARCH_S = 60.0
SPACES = ["regnetx_400mf", "regnetx_800mf", "anynetx_400mf"]


def grid_overrides(points: int) -> list[str]:
    """wm x depth(12..28) x w0 sized to about `points` points."""
    n_wm = max(1, round(points / (17 * 3)))
    step = 1.0 / n_wm
    return [f"params.wm=range(2.0,{2.0 + n_wm * step - step / 2:.4f},{step:.4f})",
            "params.depth=range(12,29)", "params.w0=24,32,48"]


def part_grid(points: int, rounds: int, tmp: Path) -> dict:
    from archdsl.explore import grid
    from archdsl.explore.points import Base

    ov = grid_overrides(points)
    jobs = grid.expand(ov)
    base = Base("regnetx_004")
    pts = [{o.split("=")[0].split(".", 1)[1]: float(o.split("=")[1]) for o in job} for job in jobs]
    for p in pts:
        p["depth"], p["w0"] = int(p["depth"]), int(p["w0"])
    meta_s: list[float] = []

    def floor() -> float:
        t = time.perf_counter()
        for p in pts:
            base.evaluate(p)
        return time.perf_counter() - t

    def e2e() -> float:
        out = tmp / f"grid{len(meta_s)}"
        t = time.perf_counter()
        grid.run("regnetx_004", ov, out, quiet=True)
        dt = time.perf_counter() - t
        meta_s.append(json.loads((out / "summary.json").read_text())["meta"]["seconds"])
        return dt

    got = C.interleave({"floor": floor, "grid e2e": e2e}, rounds)
    loop = meta_s[1:]  # the warm-up round's is dropped, as interleave drops its timings
    n = len(jobs)
    return {"overrides": ov, "points": n,
            "floor_s": got["floor"], "grid_loop_s": loop, "grid_e2e_s": got["grid e2e"],
            "floor_per_s": n / C.median(got["floor"]), "grid_loop_per_s": n / C.median(loop),
            "grid_e2e_per_s": n / C.median(got["grid e2e"]),
            "loop_over_floor": C.paired_ratio(loop, got["floor"])}


def part_hydra(tmp: Path, rounds: int) -> dict:
    def run(k: int) -> float:
        out = tmp / f"hydra{k}_{time.time_ns()}"
        wms = ",".join(f"{2.0 + 0.05 * i:.2f}" for i in range(k))
        t = time.perf_counter()
        r = subprocess.run([sys.executable, "-m", "archdsl", "build", "regnetx_004", "-m", f"params.wm={wms}",
                            "save_weights=false", f"hydra.sweep.dir={out}"], capture_output=True, text=True)
        dt = time.perf_counter() - t
        if r.returncode != 0:
            raise RuntimeError(r.stderr[-2000:])
        return dt

    got = C.interleave({"4": lambda: run(4), "12": lambda: run(12)}, rounds, warmup=0)
    t4, t12 = C.median(got["4"]), C.median(got["12"])
    return {"t4_s": got["4"], "t12_s": got["12"], "jobs_per_s_12": 12 / t12,
            "marginal_job_s": (t12 - t4) / 8, "marginal_jobs_per_s": 8 / (t12 - t4)}


def part_search(samples: int, rounds: int, tmp: Path) -> dict:
    from archdsl.explore import search

    out = {}
    for space in SPACES:
        inner, e2e, kept = [], [], []
        for r in range(rounds):
            t = time.perf_counter()
            rows, stats, _ = search.run(space, samples, None, r, tmp / f"{space}{r}", quiet=True)
            e2e.append(time.perf_counter() - t)
            inner.append(stats.seconds)
            kept.append(stats.kept)
            C.log(f"  {space} seed {r}: {search.describe(stats)}")
        out[space] = {"samples": samples, "filter_s": inner, "e2e_s": e2e, "kept": kept,
                      "samples_per_s": samples / C.median(inner),
                      "elaborated": stats.elaborated}
    return out


def main() -> int:
    p = C.parser(__doc__.split("\n")[0])
    p.add_argument("--points", type=int, default=2000, help="grid size, about (default 2000)")
    p.add_argument("--samples", type=int, default=100_000, help="search samples (default 100000)")
    a = p.parse_args()
    rounds = 2 if a.quick else 5
    env = C.environment()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        C.log("part 1: cost-only grid vs floor")
        g = part_grid(a.points, rounds, tmp)
        C.log("part 1: Hydra jobs")
        h = part_hydra(tmp, 1 if a.quick else 3)
        C.log("part 2: search")
        s = part_search(a.samples, 1 if a.quick else 3, tmp)
    grid_ok = g["grid_loop_per_s"] >= GOAL_GRID_PER_S
    search_ok = all(C.median(v["filter_s"]) < GOAL_SEARCH_S for k, v in s.items() if k.startswith("regnet"))
    rows = [["floor: elaborate + report + costs", f"{g['floor_per_s']:.0f}", C.fmt_time(C.median(g["floor_s"]) / g["points"])],
            ["cost-only grid, loop", f"{g['grid_loop_per_s']:.0f}", C.fmt_time(C.median(g["grid_loop_s"]) / g["points"])],
            ["cost-only grid, end to end", f"{g['grid_e2e_per_s']:.0f}", C.fmt_time(C.median(g["grid_e2e_s"]) / g["points"])],
            ["Hydra jobs (12, fresh process)", f"{h['jobs_per_s_12']:.2f}", C.fmt_time(C.median(h["t12_s"]) / 12)],
            ["Hydra jobs, marginal job", f"{h['marginal_jobs_per_s']:.1f}", C.fmt_time(h["marginal_job_s"])]]
    srows = [[k, f"{v['samples']:,}", C.fmt_time(C.median(v["filter_s"])), f"{v['samples_per_s']:,.0f}",
              C.fmt_time(C.median(v["e2e_s"])), str(v["elaborated"]), str(v["kept"])]
             for k, v in s.items()]
    md = "\n".join([
        f"# {NAME}", "", C.env_markdown(env, sys.argv), "",
        f"## Cost-only grid: {g['points']} RegNet configs (regnetx_004, {' '.join(g['overrides'])})", "",
        C.markdown_table(["path", "configs/s", "per config"], rows), "",
        f"grid loop / floor (paired, median): {C.fmt_ratio(g['loop_over_floor']['median'])} "
        f"(p25 {C.fmt_ratio(g['loop_over_floor']['p25'])}, p75 {C.fmt_ratio(g['loop_over_floor']['p75'])})", "",
        f"Goal >= {GOAL_GRID_PER_S} configs/s (grid loop): {C.verdict(grid_ok)}", "",
        "## Search: samples filtered", "",
        C.markdown_table(["space", "samples", "filter time", "samples/s", "end to end",
                          "elaborated", "kept"], srows), "",
        f"Goal: {a.samples:,} RegNet samples filtered in < {GOAL_SEARCH_S:.0f} s: {C.verdict(search_ok)}",
    ])
    C.write_results(NAME, {"env": env, "grid": g, "hydra": h, "search": s,
                           "goals": {"grid_per_s": GOAL_GRID_PER_S, "grid_ok": grid_ok,
                                     "search_s": GOAL_SEARCH_S, "search_ok": search_ok}}, md, a.no_write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
