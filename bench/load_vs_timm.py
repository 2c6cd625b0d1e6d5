"""archdsl.load(preset) vs timm.create_model(name): wall time to a CPU module, default init.

Side by side in one process, rotating the order every round:

  load (cold)   archdsl.load(preset) with the parse cache cleared: what one
                load in a process costs (config compose, parse, elaborate, build).
  load (warm)   archdsl.load(preset) again, program already parsed.
  module()      only the torch module build of an already compiled config
                (diagnostic: how much of load is module construction).
  reference     timm.create_model(name) (torchvision.models.get_model for
                shufflenet_v2_x*), random init, CPU.

Goal: archc / timm <= 1.0, judged on `load (cold)`.

Default presets: one per family (see _common.DEFAULT_PRESETS); --presets all
for every preset (a few minutes more).

    python bench/load_vs_timm.py [--presets a,b|all] [--quick]
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

NAME = "load_vs_timm"
GOAL_RATIO = 1.0


def bench_preset(preset: str, rounds: int) -> dict:
    import archdsl
    from archdsl import program as P

    compiled = archdsl.compile(preset)

    def cold():
        P._CACHE.clear()
        return archdsl.load(preset)

    fns = {"load (cold)": lambda: C.timed(cold),
           "load (warm)": lambda: C.timed(lambda: archdsl.load(preset)),
           "module()": lambda: C.timed(compiled.module),
           "reference": lambda: C.timed(lambda: C.build_reference(preset))}
    t = C.interleave(fns, rounds, warmup=1)
    ours, ref = compiled.module(), C.build_reference(preset)
    return {
        "preset": preset, "reference": C.reference_label(preset),
        "times_s": {k: C.summary(v) for k, v in t.items()}, "raw_s": t,
        "ratio_cold": C.paired_ratio(t["load (cold)"], t["reference"]),
        "ratio_warm": C.paired_ratio(t["load (warm)"], t["reference"]),
        "ratio_module": C.paired_ratio(t["module()"], t["reference"]),
        "params": C.n_params(ours), "ref_params": C.n_params(ref),
        "n_modules": sum(1 for _ in ours.modules()), "ref_n_modules": sum(1 for _ in ref.modules()),
    }


def main(argv=None) -> int:
    args = C.parser(__doc__.splitlines()[0], C.DEFAULT_PRESETS).parse_args(argv)
    C.set_threads(args.threads)
    env = C.environment()  # at the start: the commit measured
    presets, missing = C.select_presets(args.presets, C.DEFAULT_PRESETS)
    rounds = 3 if args.quick else 7
    import archdsl

    C.log("warming up ...")
    if presets:
        archdsl.load(presets[0])
    C.build_reference("resnet18")

    rows, errors, skipped = C.measure_each(presets, lambda p: [bench_preset(p, rounds)])

    for r in rows:
        r["pass"] = r["ratio_cold"]["median"] <= GOAL_RATIO
    failing = [r["preset"] for r in rows if not r["pass"]]
    t = lambda r, k: C.fmt_time(r["times_s"][k]["median"])  # noqa: E731
    q = lambda d: f"{d['median']:.2f} [{d['p25']:.2f}, {d['p75']:.2f}]"  # noqa: E731
    table = C.markdown_table(
        ["preset", "reference", "load (cold)", "load (warm)", "module()", "reference time",
         "archc/ref cold [p25, p75]", "archc/ref warm", "module()/ref", "params equal", "goal <= 1.0"],
        [[r["preset"], r["reference"], t(r, "load (cold)"), t(r, "load (warm)"), t(r, "module()"),
          t(r, "reference"), q(r["ratio_cold"]), C.fmt_ratio(r["ratio_warm"]["median"]),
          C.fmt_ratio(r["ratio_module"]["median"]), "yes" if r["params"] == r["ref_params"] else
          f"no ({r['params']} vs {r['ref_params']})", C.verdict(r["pass"])] for r in rows])
    worst = max(rows, key=lambda r: r["ratio_cold"]["median"]) if rows else None
    goal = {"goal": f"archdsl.load / reference create <= {GOAL_RATIO:g} (cold parse cache), every preset",
            "worst_preset": worst and worst["preset"], "worst_ratio": worst and worst["ratio_cold"]["median"],
            "failing": failing, "pass": (not failing) if rows else None}
    md = ["# archdsl.load vs timm.create_model\n", C.env_markdown(env, sys.argv), "",
          f"Medians over {rounds} rounds (after 1 warm-up round), order rotated each round; ratios are "
          "medians of per-round ratios (p25, p75 in brackets). CPU, default init, no weights loaded.", "",
          table, "", "## Goal", "",
          C.markdown_table(["goal", "measured", "verdict"], [[
              goal["goal"], "-" if worst is None else f"worst {worst['ratio_cold']['median']:.2f} ({worst['preset']})"
              + (f"; {len(failing)}/{len(rows)} over: {C.listing(failing)}" if failing else ""),
              C.verdict(goal["pass"])]])]
    if rows:
        overhead = C.median([r["times_s"]["load (cold)"]["median"] - r["times_s"]["module()"]["median"]
                             for r in rows])
        goal["median_compile_overhead_s"] = overhead
        md += ["", f"Where the time goes: load (cold) - module() = {C.fmt_time(overhead)} (median over presets) "
               "is archc's fixed compile cost (config compose, parse, elaborate; see cost_vs_flopcounter); "
               "module() alone vs the reference is the module()/ref column."]
    if missing or skipped or errors:
        md += ["", "## Not measured", ""]
        md += [f"- {p}: no such preset" for p in missing]
        md += [f"- {p}: {why}" for p, why in {**skipped, **errors}.items()]
    data = {"benchmark": NAME, "environment": env, "rounds": rounds, "goal": goal, "results": rows,
            "missing": missing, "skipped": skipped, "errors": errors}
    C.write_results(NAME, data, "\n".join(md), args.no_write)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
