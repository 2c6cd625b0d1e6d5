"""Forward latency: archc's compiled module vs the reference module, CPU.

Eval mode, torch.inference_mode, same threads, flush-denormal on, default init
for both (weights' values do not change the work done). For each batch size
(1 and 8), each round times one forward of each model (a short chunk for tiny
ones), alternating which goes first, for a fixed time budget; the ratio is the
median of per-round archc/reference ratios, robust to bursts of load.

Goal: within +-5% of the reference (archc/ref in [0.95, 1.05]); faster than
0.95 is reported as "faster" and not counted as a failure.

    python bench/latency_vs_timm.py [--presets a,b|all] [--quick] [--batches 1,8]
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

NAME = "latency_vs_timm"
TOLERANCE = 0.05
CHUNK_S = 0.02  # forwards per timed chunk: enough to fill about this much time (1 for most)
BUDGET_S = 12.0  # time per (preset, batch) for both models together; --quick: a quarter
MIN_ROUNDS, MAX_ROUNDS = 7, 300


def bench_preset(preset: str, batches: list[int], budget_s: float) -> list[dict]:
    import torch

    import archdsl

    compiled = archdsl.compile(preset)
    shape = tuple(compiled.spec.in_shape)
    ours = compiled.module().eval()
    ref = C.build_reference(preset).eval()
    rows = []
    for b in batches:
        x = torch.randn(b, *shape)
        with torch.inference_mode():
            y_ours, y_ref = ours(x), ref(x)  # also warms up both
            if y_ours.shape != y_ref.shape:
                raise RuntimeError(f"output shapes differ: {tuple(y_ours.shape)} vs {tuple(y_ref.shape)}")
            for _ in range(2):
                ours(x), ref(x)
            t1 = min(C.timed(lambda: ours(x)), C.timed(lambda: ref(x)))
            n = max(1, min(50, round(CHUNK_S / max(t1, 1e-6))))
            rounds = max(MIN_ROUNDS, min(MAX_ROUNDS, int(budget_s / (2 * n * t1))))
            t = C.interleave({"archc": lambda: C.timed_loop(lambda: ours(x), n),
                              "reference": lambda: C.timed_loop(lambda: ref(x), n)}, rounds, warmup=1)
        ratio = C.paired_ratio(t["archc"], t["reference"])
        m = ratio["median"]
        rows.append({"preset": preset, "reference": C.reference_label(preset), "batch": b,
                     "input_shape": list(shape), "forwards_per_round": n, "rounds": rounds,
                     "times_s": {k: C.summary(v) for k, v in t.items()}, "raw_s": t, "ratio": ratio,
                     "status": "PASS" if abs(m - 1) <= TOLERANCE else ("faster" if m < 1 else "FAIL")})
    return rows


def main(argv=None) -> int:
    args, threads, env, batches, presets, missing = C.latency_setup(__doc__.splitlines()[0], C.DEFAULT_PRESETS, argv)
    budget = BUDGET_S / 4 if args.quick else BUDGET_S

    rows, errors, skipped = C.measure_each(presets, lambda pr: bench_preset(pr, batches, budget))

    failing = [f"{r['preset']}@b{r['batch']}" for r in rows if r["status"] == "FAIL"]
    t = lambda r, k: C.fmt_time(r["times_s"][k]["median"])  # noqa: E731
    table = C.markdown_table(
        ["preset", "reference", "batch", "rounds", "archc", "reference time", "archc/ref", "[p25, p75]",
         "goal +-5%"],
        [[r["preset"], r["reference"], r["batch"], r["rounds"], t(r, "archc"), t(r, "reference"),
          f"{r['ratio']['median']:.3f}", f"[{r['ratio']['p25']:.3f}, {r['ratio']['p75']:.3f}]", r["status"]]
         for r in rows])
    goal = {"goal": f"archc / reference forward latency within +-{TOLERANCE:.0%} (faster is not a failure)",
            "failing": failing, "pass": (not failing) if rows else None}
    md = ["# Forward latency: archc vs reference (CPU)\n", C.env_markdown(env, sys.argv), "",
          f"Eval, inference_mode, {threads} threads, flush-denormal on. About {budget:g} s per (preset, batch); "
          "each round times one forward (or a short chunk of forwards, for tiny ones) of each model, "
          "order alternating, after 1 warm-up round; times are medians per forward; archc/ref is the "
          "median of per-round ratios, with its quartiles.", "", table, "", "## Goal", "",
          C.markdown_table(["goal", "measured", "verdict"], [[
              goal["goal"], (f"{len(failing)}/{len(rows)} over: " + C.listing(failing)) if failing else
              ("-" if not rows else f"ratios {min(r['ratio']['median'] for r in rows):.3f} .. "
               f"{max(r['ratio']['median'] for r in rows):.3f}"), C.verdict(goal["pass"])]])]
    md += C.not_measured(missing, {**skipped, **errors})
    data = {"benchmark": NAME, "environment": env, "budget_s": budget, "batches": batches, "goal": goal,
            "results": rows, "missing": missing, "skipped": skipped, "errors": errors}
    C.write_results(NAME, data, "\n".join(md), args.no_write)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
