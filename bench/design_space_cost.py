"""Per-config cost of design-space points: archc beside pycls's analytic counter, and search speed.

Issue 15's goals, measured side by side in one process, 1 thread, rounds
interleaved (bench/_common.py):

Part 1, per config, on random points of two design spaces, drawn with
archdsl's own sampler (`load_space(...).sample(rng, n)`):

  pycls          pycls 0.1.1's static complexity counter, the one the RegNet
                 paper searched with: cfg.REGNET.* (RegNetX space) or cfg.EN.*
                 (mbnet space: pycls's EffNet has the same per-stage lists) set
                 from the point, then `net.complexity(RegNet)` / `(EffNet)`.
  design space   archc's design-space path, `points.Base(space.base_path(),
                 space.overrides).evaluate(point)` (the base composed once),
                 each round from an empty elaboration memo
                 (`caches.forget("elaborated")`) and with the cycle collector
                 paused, as a search's engine runs a shard
                 (engines.run_shard): a round of N points costs what a search
                 of N points pays.
  steady state   the design-space path as a long search pays it: new points
                 (never seen, drawn afresh each round) after WARMUP other
                 points of the space filled the memos (elaborated block
                 bodies and layers; hot expressions compiled), as 100,000 samples'
                 first few thousand do: what a long search pays per sample.
  cost()         `archdsl.cost(config, overrides)` per call (the collector
                 paused too, so its ratio to the design-space path compares
                 the compiler's work, not the collector's), the point as
                 `params.k=v` overrides, on a subset of the points (also from
                 an empty elaboration memo each round).

Part 2, `archc search` (`archdsl.explore.search.run`, keeping every point that
passes): 100,000 samples (`--samples`) on regnetx_400mf and mbnet_400mf,
timed as `Stats.seconds` (first sample to last check), each search started
with every in-process cache empty (`caches.forget()`), as a new process is.

Checks: every point's params, MACs and activations against pycls's (pycls
calls multiply-adds "flops", and adds one per output channel for each conv
or fc with a bias: those additions are tallied and reported as the reason
when they are the whole difference), and the design-space path against
archdsl.cost on the subset (two paths of the compiler must agree).

Goals (issue 15, point 2):
  - design-space path per config <= pycls per config on RegNetX points (paired
    ratio, median), judged cold (the memos emptied each round, as the issue
    measured it) and in the steady state a long search reaches;
  - archc search: 100,000 samples in < 60 s on each space (projected from the
    rate when --samples is smaller);
  - archdsl.cost per call <= 2x the design-space path per config (each space).

    python bench/design_space_cost.py [--quick] [--points N] [--cost-points N] [--samples N]
"""
from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

NAME = "design_space_cost"
SPACES = ["regnetx_400mf", "mbnet_400mf"]
GOAL_SEARCH_SAMPLES = 100_000
GOAL_SEARCH_S = 60.0
GOAL_COST_OVER_DS = 2.0
GOAL_DS_OVER_PYCLS = 1.0
PEER_BUDGET_S = 0.25
WARMUP = 5_000  # points before the steady-state rounds: a search's memos are this full within seconds


# ---------------------------------------------------------------- points

def draw(space_name: str, n: int, seed: int):
    """(space, base, n points as plain-Python dicts) drawn with archdsl's own sampler."""
    import numpy as np

    from archdsl.explore.points import Base
    from archdsl.explore.space import load_space

    space = load_space(space_name)
    base = Base(space.base_path(), space.overrides)
    cols = space.sample(np.random.default_rng(seed), n)
    points = [{k: v[i].tolist() for k, v in cols.items()} for i in range(n)]
    return space, base, points


def fresh_points(space, n: int, seed: int) -> list[dict]:
    """n more points of `space` (another seed: other points than `draw`'s)."""
    import numpy as np

    cols = space.sample(np.random.default_rng(seed), n)
    return [{k: v[i].tolist() for k, v in cols.items()} for i in range(n)]


def overrides_of(space, point: dict) -> list[str]:
    """The point as Hydra overrides for archdsl.cost (lists written as [a,b,...])."""
    def text(v):
        return "[" + ",".join(str(x) for x in v) + "]" if isinstance(v, list) else str(v)
    return list(space.overrides) + [f"params.{k}={text(v)}" for k, v in point.items()]


# ---------------------------------------------------------------- pycls

def pycls_counter(space, base):
    """count(point) -> pycls's {flops, params, acts} for this space, pycls's cfg set from the
    base's fixed parameters and the point; None when pycls has no counter for the network."""
    from pycls.core import net
    from pycls.core.config import cfg

    name = base.network.name
    fixed = base.values([p for p in base.param_names if p not in space.params])
    cfg.TRAIN.IM_SIZE = fixed["res"]
    cfg.MODEL.NUM_CLASSES = fixed["classes"]
    if name == "regnet":
        from pycls.models.regnet import RegNet

        r = cfg.REGNET
        r.STEM_TYPE, r.BLOCK_TYPE, r.STRIDE = "simple_stem_in", "res_bottleneck_block", 2
        r.STEM_W, r.BOT_MUL = fixed["stem_width"], fixed["bottleneck"]
        r.SE_ON, r.SE_R = fixed["se"] > 0, fixed["se"]
        keys = {"depth": "DEPTH", "w0": "W0", "wa": "WA", "wm": "WM", "group_w": "GROUP_W"}

        def count(p: dict) -> dict:
            for k, v in p.items():
                setattr(r, keys[k], v)
            return net.complexity(RegNet)
        return count
    if name == "mbnet":
        from pycls.models.effnet import EffNet

        e = cfg.EN
        e.STEM_W, e.HEAD_W, e.SE_R = fixed["stem_width"], fixed["head_width"], fixed["se"]
        e.STRIDES = fixed["strides"]
        keys = {"widths": "WIDTHS", "depths": "DEPTHS", "kernels": "KERNELS", "expansions": "EXP_RATIOS"}

        def count(p: dict) -> dict:
            for k, v in p.items():
                setattr(e, keys[k], v)
            return net.complexity(EffNet)
        return count
    return None


def bias_adds(count, point: dict) -> int:
    """The 'flops' pycls adds for biases on this point: its complexity_conv2d adds w_out
    per conv or fc with bias=True (pycls/core/net.py). Tallied by wrapping that function."""
    from pycls.core import net

    orig, tally = net.complexity_conv2d, [0]

    def counting(cx, w_in, w_out, k, stride, padding, groups=1, bias=False):
        tally[0] += w_out if bias else 0
        return orig(cx, w_in, w_out, k, stride, padding, groups, bias)
    net.complexity_conv2d = counting
    try:
        count(point)
    finally:
        net.complexity_conv2d = orig
    return tally[0]


def check_pycls(points, ours: list[dict], count) -> dict:
    """Per point: archc's params/MACs/activations vs pycls's; a MACs difference equal to
    pycls's bias additions is explained, anything else is listed."""
    raw, explained, other, errors = 0, 0, [], 0
    for i, (p, r) in enumerate(zip(points, ours)):
        if r["status"] != "ok":
            errors += 1
            other.append({"point": i, "params": p, "archc": r["error"].splitlines()[0]})
            continue
        ref = count(p)
        bad = {k: (r[a], ref[k]) for a, k in (("params", "params"), ("activations", "acts")) if r[a] != ref[k]}
        if r["macs"] != ref["flops"]:
            raw += 1
            adds = bias_adds(count, p)
            if r["macs"] == ref["flops"] - adds:
                explained += 1
            else:
                bad["macs"] = (r["macs"], ref["flops"], adds)
        if bad:
            other.append({"point": i, "params": p, "differ": bad})
    return {"points": len(points), "macs_differ": raw, "explained_by_bias_flops": explained,
            "unexplained": other, "archc_errors": errors}


# ---------------------------------------------------------------- part 1

def part_per_config(space_name: str, n: int, n_cost: int, rounds: int, seed: int, pycls: bool) -> dict:
    import archdsl
    from archdsl.explore.engines import run_shard
    from archdsl.language import caches

    space, base, points = draw(space_name, n, seed)
    subset = points[:n_cost]
    cfg_path = space.base_path()
    cost_ovs = [overrides_of(space, p) for p in subset]
    count = pycls_counter(space, base) if pycls else None

    # Checks (untimed; also the warm-up of every path).
    caches.forget("elaborated")
    ours = [base.evaluate(p) for p in points]
    pyc = check_pycls(points, ours, count) if count else None
    two_paths = []
    for i, ov in enumerate(cost_ovs):
        t = archdsl.cost(cfg_path, ov).total
        mine = ours[i]
        if mine["status"] != "ok" or (t.params, t.macs, t.activations) != (
                mine["params"], mine["macs"], mine["activations"]):
            two_paths.append({"point": i, "overrides": ov})

    head_s: list[float] = []  # each round's time for the first n_cost points: cost()'s very points

    def design_space() -> float:
        caches.forget("elaborated")
        t = time.perf_counter()
        for i, p in enumerate(points):
            if i == n_cost:
                head_s.append(time.perf_counter() - t)
            base.evaluate(p)
        s = time.perf_counter() - t
        if n_cost == n:
            head_s.append(s)
        return s

    def as_a_search_runs(loop):  # as an engine runs a shard of a search: the cycle collector paused
        return lambda: run_shard(lambda _, __: loop(), None, None)

    def cost_calls() -> float:
        caches.forget("elaborated")
        t = time.perf_counter()
        for ov in cost_ovs:
            archdsl.cost(cfg_path, ov).total.macs
        return time.perf_counter() - t

    warm = fresh_points(space, WARMUP, seed + 1000)
    unseen = iter([fresh_points(space, n, seed + 2000 + r) for r in range(rounds)])

    def steady() -> float:
        caches.forget("elaborated")  # the cold rounds empty the memos: fill them again, untimed
        for p in warm:
            base.evaluate(p)
        fresh = next(unseen)
        t = time.perf_counter()
        for p in fresh:
            base.evaluate(p)
        return time.perf_counter() - t

    # cost() too: both of archc's paths under one collector policy, so their ratio is the compiler's
    fns = {"design space": as_a_search_runs(design_space), "steady state": as_a_search_runs(steady),
           "cost()": as_a_search_runs(cost_calls)}
    reps = 1
    if count:
        # pycls is cheap: its loop repeats to fill about PEER_BUDGET_S a round (a
        # 20 ms loop measured anywhere from 0.4 to 1.2 ms a config on a busy machine).
        reps = max(1, round(PEER_BUDGET_S / C.timed(lambda: [count(p) for p in points])))

        def peer() -> float:
            t = time.perf_counter()
            for _ in range(reps):
                for p in points:
                    count(p)
            return (time.perf_counter() - t) / reps
        fns["pycls"] = peer
    C.collect()
    got = C.interleave(fns, rounds, warmup=0)  # the checks above were the warm-up
    per = {"design space": [s / n for s in got["design space"]], "steady state": [s / n for s in got["steady state"]],
           "cost()": [s / n_cost for s in got["cost()"]],
           "design space, cost()'s points": [s / n_cost for s in head_s]}
    if count:
        per["pycls"] = [s / n for s in got["pycls"]]
    out = {"space": space_name, "points": n, "cost_points": n_cost, "seed": seed, "pycls_repeats": reps,
           "invalid": sum(r["status"] != "ok" for r in ours),
           "per_config_s": per, "median_s": {k: C.median(v) for k, v in per.items()},
           # the same points on both sides: each round's first n_cost points of the design-space loop
           "cost_over_ds": C.paired_ratio(per["cost()"], per["design space, cost()'s points"]),
           "two_paths_disagree": two_paths, "pycls_check": pyc}
    if count:
        out["ds_over_pycls"] = C.paired_ratio(per["design space"], per["pycls"])
        out["steady_over_pycls"] = C.paired_ratio(per["steady state"], per["pycls"])
        out["cost_over_pycls"] = C.paired_ratio(per["cost()"], per["pycls"])
    return out


# ---------------------------------------------------------------- part 2

def part_search(space_name: str, samples: int, rounds: int, tmp: Path) -> dict:
    from archdsl.explore import search
    from archdsl.language import caches

    filt, e2e, kept, stats = [], [], [], None
    for r in range(rounds):
        caches.forget()  # as a new process: nothing parsed, composed or elaborated yet
        t = time.perf_counter()
        _, stats, _ = search.run(space_name, samples, 0, r, tmp / f"{space_name}{r}", quiet=True)
        e2e.append(time.perf_counter() - t)
        filt.append(stats.seconds)
        kept.append(stats.kept)
        C.log(f"  {space_name} seed {r}: {search.describe(stats)}")
    rate = samples / C.median(filt)
    return {"space": space_name, "samples": samples, "filter_s": filt, "e2e_s": e2e, "kept": kept,
            "samples_per_s": rate, "projected_100k_s": GOAL_SEARCH_SAMPLES / rate,
            "elaborated": stats.elaborated}


# ---------------------------------------------------------------- report

def ratio_text(r: dict) -> str:
    return f"{C.fmt_ratio(r['median'])} (p25 {C.fmt_ratio(r['p25'])}, p75 {C.fmt_ratio(r['p75'])})"


def per_config_md(m: dict) -> list[str]:
    peer = "pycls RegNet.complexity" if m["space"].startswith("regnet") else "pycls EffNet.complexity"
    rows = []
    if "pycls" in m["median_s"]:
        rows.append([peer, C.fmt_time(m["median_s"]["pycls"]), f"{1 / m['median_s']['pycls']:,.0f}", "1.00"])
    ratio = {"design space": "ds_over_pycls", "steady state": "steady_over_pycls", "cost()": "cost_over_pycls"}
    for k, label in (("design space", "archc design space: Base.evaluate, cold (memos emptied)"),
                     ("steady state", f"archc design space: Base.evaluate, steady state (after {WARMUP:,} points)"),
                     ("cost()", "archc archdsl.cost(config, overrides), cold")):
        vs = m.get(ratio[k])
        rows.append([label, C.fmt_time(m["median_s"][k]), f"{1 / m['median_s'][k]:,.0f}",
                     ratio_text(vs) if vs else "-"])
    lines = [f"## {m['space']}: {m['points']} random points (seed {m['seed']}; archdsl.cost on the first "
             f"{m['cost_points']}; {m['invalid']} invalid)", "",
             C.markdown_table(["path", "per config", "configs/s", "vs pycls (paired)"], rows), "",
             f"archdsl.cost / design space on the same {m['cost_points']} points (paired, median): "
             f"{ratio_text(m['cost_over_ds'])}", ""]
    d = m["two_paths_disagree"]
    lines.append(f"Design-space path vs archdsl.cost totals: "
                 f"{'agree on all ' + str(m['cost_points']) if not d else f'{len(d)} DISAGREE'}")
    pc = m["pycls_check"]
    if pc:
        lines.append("")
        lines.append(
            f"Against pycls ({pc['points']} points): params and activations "
            f"{'equal on every point' if not pc['unexplained'] else 'see below'}; MACs differ from pycls's "
            f"'flops' on {pc['macs_differ']} points, {pc['explained_by_bias_flops']} of them by exactly "
            f"the bias additions pycls counts as flops (net.complexity_conv2d adds w_out per conv/fc with a "
            f"bias: the classifier"
            f"{', and each SE conv' if m['space'].startswith('mbnet') else ''}; archc counts MACs of "
            f"weights only, as FlopCounterMode does); unexplained: {len(pc['unexplained'])}.")
        for u in pc["unexplained"][:5]:
            lines.append(f"- point {u['point']} {u['params']}: {u.get('differ') or u.get('archc')}")
    return lines


def main() -> int:
    p = C.parser(__doc__.split("\n")[0])
    p.add_argument("--points", type=int, help="random points per space (default 300; --quick 60)")
    p.add_argument("--cost-points", type=int, help="points timed through archdsl.cost (default 100; --quick 20)")
    p.add_argument("--rounds", type=int, help="interleaved rounds (default 7; --quick 3)")
    p.add_argument("--samples", type=int, help=f"search samples per space (default {GOAL_SEARCH_SAMPLES}; "
                                               "--quick 1000)")
    p.add_argument("--search-rounds", type=int, default=1,
                   help="searches per space, seeds 0.. (default 1: one search is a long measurement)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random points (default 0)")
    a = p.parse_args()
    n = a.points or (60 if a.quick else 300)
    n_cost = min(n, a.cost_points or (20 if a.quick else 100))
    rounds = a.rounds or (3 if a.quick else 7)
    samples = a.samples or (1000 if a.quick else GOAL_SEARCH_SAMPLES)
    threads = C.set_threads(a.threads)
    env = C.environment()
    try:
        import pycls
    except ImportError:
        C.log("pycls is not installed: pip install 'archdsl[bench]' (pycls==0.1.1)")
        return 2
    env["pycls"] = getattr(pycls, "__version__", None) or _dist_version("pycls")
    per = {}
    for s in SPACES:
        C.log(f"part 1: per config, {s} ({n} points, {rounds} rounds, {threads} thread(s))")
        per[s] = part_per_config(s, n, n_cost, rounds, a.seed, pycls=True)
    srch = {}
    with tempfile.TemporaryDirectory() as d:
        for s in SPACES:
            C.log(f"part 2: archc search {s}, {samples:,} samples")
            srch[s] = part_search(s, samples, a.search_rounds, Path(d))

    rx = per["regnetx_400mf"]
    ds_ok = rx["ds_over_pycls"]["median"] <= GOAL_DS_OVER_PYCLS
    steady_ok = rx["steady_over_pycls"]["median"] <= GOAL_DS_OVER_PYCLS
    search_ok = {s: v["projected_100k_s"] < GOAL_SEARCH_S for s, v in srch.items()}
    cost_ok = {s: m["cost_over_ds"]["median"] <= GOAL_COST_OVER_DS for s, m in per.items()}
    agree = all(not m["two_paths_disagree"] for m in per.values())
    pycls_ok = all(not m["pycls_check"]["unexplained"] for m in per.values() if m["pycls_check"])
    projected = samples != GOAL_SEARCH_SAMPLES
    goals = [["design space per config <= pycls per config (RegNetX, paired median), cold",
              ratio_text(rx["ds_over_pycls"]), C.verdict(ds_ok)],
             ["design space per config <= pycls per config (RegNetX, paired median), steady state",
              ratio_text(rx["steady_over_pycls"]), C.verdict(steady_ok)]]
    for s, v in srch.items():
        how = f"projected from {samples:,}" if projected else "measured"
        goals.append([f"search {GOAL_SEARCH_SAMPLES:,} samples < {GOAL_SEARCH_S:.0f} s, {s}",
                      f"{v['projected_100k_s']:.1f} s ({how})", C.verdict(search_ok[s])])
    for s, m in per.items():
        goals.append([f"archdsl.cost <= {GOAL_COST_OVER_DS:.0f}x design space, {s}",
                      ratio_text(m["cost_over_ds"]), C.verdict(cost_ok[s])])
    goals.append(["design space == archdsl.cost totals, every point checked", "", C.verdict(agree)])
    goals.append(["archc == pycls counts (differences only pycls's bias flops)", "", C.verdict(pycls_ok)])
    srows = [[s, f"{v['samples']:,}", C.fmt_time(C.median(v["filter_s"])), f"{v['samples_per_s']:,.0f}",
              f"{v['projected_100k_s']:.1f} s", C.fmt_time(C.median(v["e2e_s"])),
              str(v["elaborated"]), str(v["kept"][0])] for s, v in srch.items()]
    md = [f"# {NAME}", "", C.env_markdown(env, sys.argv) + f", pycls {env['pycls']}", ""]
    for s in SPACES:
        md += per_config_md(per[s]) + [""]
    md += ["## archc search: samples filtered (every passing point kept)", "",
           C.markdown_table(["space", "samples", "filter time", "samples/s", f"{GOAL_SEARCH_SAMPLES:,} at that rate",
                             "end to end", "elaborated", "kept"], srows), "",
           "## Goals", "", C.markdown_table(["goal", "measured", "verdict"], goals)]
    if projected:
        md += ["", f"(search goals judged on the rate of {samples:,} samples; run with the default "
                   f"--samples {GOAL_SEARCH_SAMPLES:,} to measure them)"]
    C.write_results(NAME, {"env": env, "per_config": per, "search": srch,
                           "goals": {"ds_over_pycls": GOAL_DS_OVER_PYCLS, "ds_ok": ds_ok, "steady_ok": steady_ok,
                                     "search_s": GOAL_SEARCH_S, "search_samples": samples,
                                     "search_projected": projected, "search_ok": search_ok,
                                     "cost_over_ds": GOAL_COST_OVER_DS, "cost_ok": cost_ok,
                                     "two_paths_agree": agree, "pycls_counts_ok": pycls_ok}},
                    "\n".join(md), a.no_write)
    return 0 if agree and pycls_ok else 1


def _dist_version(name: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return None


if __name__ == "__main__":
    sys.exit(main())
