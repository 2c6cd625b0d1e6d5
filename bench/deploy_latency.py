"""Forward latency of deployed archc modules vs timm, CPU.

archc: `archdsl.deploy(archdsl.load(preset))` (BatchNorms folded, RepVGG's
branches fused, channels-last memory, convolution weights prepacked for
oneDNN). timm: the same model unfolded (eval mode, BatchNorms run, NCHW as
created), and for RepVGG also after timm's own re-parameterization
(`timm.utils.model.reparameterize_model`). Beside them, each step on its own
(folding alone; channels-last without prepacking, against timm in NHWC), and
timm through PyTorch's own trace/freeze/optimize_for_inference. Eval, torch.inference_mode, same
threads, flush-denormal on, default init. For each batch size (1 and 8),
each round times one forward of each model (a short chunk for quick ones),
rotating the order; ratios are medians of per-round ratios.

Goals: deployed archc >= 1.15x faster than unfolded timm on the BN-heavy
models (resnet50, regnety_080, efficientnet_b0), and within +-5% of timm's
re-parameterized RepVGG with the same layout and kernels (the same fused
graph).

    python bench/deploy_latency.py [--presets a,b] [--quick] [--batches 1,8]
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

NAME = "deploy_latency"
DEFAULT = ["resnet50", "regnety_080", "efficientnet_b0", "repvgg_a0"]
SPEEDUP_GOAL = 1.15  # timm unfolded / archc deployed, BN-heavy models
REPARAM_TOLERANCE = 0.05  # archc deployed / timm re-parameterized, RepVGG
CHUNK_S = 0.02  # forwards per timed chunk: enough to fill about this much time
BUDGET_S = 12.0  # time per (preset, batch) for all models together; --quick: a quarter
MIN_ROUNDS, MAX_ROUNDS = 7, 300


def channels_last(model):
    """timm's model in channels-last memory, fed as archc's deployed module feeds
    itself (the input converted inside the timed call)."""
    import torch

    model = model.to(memory_format=torch.channels_last)
    return lambda x: model(x.contiguous(memory_format=torch.channels_last))


def frozen(model, shape):
    """timm's model as PyTorch's own inference tools deploy it: traced, frozen
    and optimize_for_inference (which folds BatchNorms and, on the CPU, moves
    convolutions to oneDNN with prepacked weights)."""
    import torch

    with torch.no_grad():
        m = torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.trace(model, torch.randn(1, *shape))))
    return m


def models(preset: str) -> dict:
    """The timed callables. archc deployed: folded, channels-last, weights
    prepacked (the deploy default). Beside it, the steps one at a time: folding
    alone (NCHW, plain convs), and channels-last without prepacking; timm as
    created (NCHW), in NHWC, and through PyTorch's trace/freeze/optimize."""
    import archdsl

    trained = archdsl.load(preset)
    shape = C.input_shape(preset)
    out = {"archc deployed": archdsl.deploy(trained),
           "archc folded NCHW": archdsl.deploy(trained, channels_last=False, prepack=False),
           "archc folded NHWC": archdsl.deploy(trained, prepack=False),
           "timm": C.build_reference(preset).eval(),
           "timm NHWC": channels_last(C.build_reference(preset).eval()),
           "timm frozen": frozen(C.build_reference(preset).eval(), shape)}
    if preset.startswith("repvgg"):
        from timm.utils.model import reparameterize_model

        out["timm reparam"] = reparameterize_model(C.build_reference(preset).eval())
        out["timm reparam NHWC"] = channels_last(reparameterize_model(C.build_reference(preset).eval()))
    return out


def bn_share(module, x) -> float:
    """Share of the module's forward time spent in BatchNorm kernels (torch profiler, self
    times): folding can save at most this, a speedup of 1 / (1 - share)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(3):
            module(x)
    times = {e.key: e.self_cpu_time_total for e in prof.key_averages()}
    return sum(v for k, v in times.items() if "batch_norm" in k) / sum(times.values())


def bench_preset(preset: str, batches: list[int], budget_s: float) -> list[dict]:
    import torch

    ms = models(preset)
    shape = C.input_shape(preset)
    rows = []
    for b in batches:
        x = torch.randn(b, *shape)
        with torch.inference_mode():
            for _ in range(3):  # warm up; also checks that every model runs
                for m in ms.values():
                    m(x)
            t1 = min(C.timed(lambda: m(x)) for m in ms.values())
            n = max(1, min(50, round(CHUNK_S / max(t1, 1e-6))))
            rounds = max(MIN_ROUNDS, min(MAX_ROUNDS, int(budget_s / (len(ms) * n * t1))))
            t = C.interleave({k: (lambda m=m: C.timed_loop(lambda: m(x), n)) for k, m in ms.items()},
                             rounds, warmup=1)
            share = bn_share(ms["timm"], x)
        speedup = C.paired_ratio(t["timm"], t["archc deployed"])
        row = {"preset": preset, "batch": b, "input_shape": list(shape), "forwards_per_round": n,
               "rounds": rounds, "times_s": {k: C.summary(v) for k, v in t.items()}, "raw_s": t,
               "speedup_vs_timm": speedup, "timm_bn_share": share,
               # folding alone (both NCHW, plain convs); + channels-last (timm NHWC too)
               "speedup_nchw": C.paired_ratio(t["timm"], t["archc folded NCHW"]),
               "speedup_nhwc": C.paired_ratio(t["timm NHWC"], t["archc folded NHWC"]),
               # against PyTorch's own inference deployment of timm's model
               "speedup_vs_frozen": C.paired_ratio(t["timm frozen"], t["archc deployed"])}
        if "timm reparam" in t:
            # the same fused graph, same layout, plain convs on both sides: equal is the goal
            ratio = C.paired_ratio(t["archc folded NHWC"], t["timm reparam NHWC"])
            row["archc_over_reparam"] = ratio
            row["archc_over_reparam_nchw"] = C.paired_ratio(t["archc folded NCHW"], t["timm reparam"])
            row["status"] = "PASS" if abs(ratio["median"] - 1) <= REPARAM_TOLERANCE else (
                "faster" if ratio["median"] < 1 else "FAIL")
        else:
            row["status"] = "PASS" if speedup["median"] >= SPEEDUP_GOAL else "FAIL"
        rows.append(row)
    return rows


def main(argv=None) -> int:
    args, threads, env, batches, presets, missing = C.latency_setup(__doc__.splitlines()[0], DEFAULT, argv)
    budget = BUDGET_S / 4 if args.quick else BUDGET_S

    rows, errors, _ = C.measure_each(presets, lambda pr: bench_preset(pr, batches, budget),
                                     needs_reference=False)

    t = lambda r, k: C.fmt_time(r["times_s"][k]["median"]) if k in r["times_s"] else "-"  # noqa: E731
    q = lambda r: f"{r['median']:.3f} [{r['p25']:.3f}, {r['p75']:.3f}]"  # noqa: E731
    m = lambda r, k: f"{r[k]['median']:.3f}" if k in r else "-"  # noqa: E731
    table = C.markdown_table(
        ["preset", "batch", "rounds", "archc deployed", "timm", "timm / archc [p25, p75]",
         "folding only: timm / archc (NCHW)", "NHWC, unpacked: timm NHWC / archc", "timm in BN (bound)",
         "timm frozen", "timm frozen / archc", "archc / timm reparam, NHWC unpacked [p25, p75]",
         "same, NCHW", "goal"],
        [[r["preset"], r["batch"], r["rounds"], t(r, "archc deployed"), t(r, "timm"),
          q(r["speedup_vs_timm"]), m(r, "speedup_nchw"), m(r, "speedup_nhwc"),
          f"{r['timm_bn_share']:.1%} ({1 / (1 - r['timm_bn_share']):.3f})",
          t(r, "timm frozen"), m(r, "speedup_vs_frozen"),
          q(r["archc_over_reparam"]) if "archc_over_reparam" in r else "-", m(r, "archc_over_reparam_nchw"),
          r["status"]] for r in rows])
    failing = [f"{r['preset']}@b{r['batch']}" for r in rows if r["status"] == "FAIL"]
    goal = {"goal": f"timm / archc deployed >= {SPEEDUP_GOAL} on BN-heavy models; archc's fused graph / "
                    f"timm re-parameterized within +-{REPARAM_TOLERANCE:.0%} on RepVGG (same layout and kernels)",
            "failing": failing, "pass": (not failing) if rows else None}
    md = ["# Forward latency: deployed archc vs timm (CPU)\n", C.env_markdown(env, sys.argv), "",
          f"Eval, inference_mode, {threads} threads, flush-denormal on. archc deployed: "
          "`archdsl.deploy(archdsl.load(p))`: BatchNorms folded, branches fused, channels-last (NHWC) memory, "
          "convolution weights prepacked for oneDNN (archdsl/prepack.py). timm: unfolded (BatchNorms run), "
          "NCHW, as `timm.create_model` gives it. The steps one at a time: \"folding only\" compares timm "
          "with `archdsl.deploy(..., channels_last=False, prepack=False)`; \"NHWC, unpacked\" compares timm "
          "moved to channels-last (input converted inside the timed call, as archc does) with "
          "`archdsl.deploy(..., prepack=False)`; the rest of timm / archc is prepacking. \"timm frozen\": "
          "timm's model through PyTorch's own inference path, `torch.jit.optimize_for_inference("
          "torch.jit.freeze(torch.jit.trace(m, x)))`, which folds BatchNorms and prepacks for oneDNN too. "
          "timm reparam: after `timm.utils.model.reparameterize_model` (RepVGG); RepVGG's goal compares the "
          "same fused graph with the same kernels (both NHWC, plain convolutions; both NCHW beside it). "
          f"About {budget:g} s per (preset, batch); each round times one forward (or a short "
          "chunk) of each model, order rotating, after 1 warm-up round; times are medians per forward; "
          "ratios are medians of per-round ratios, with quartiles. \"timm in BN\": the share of timm's "
          "forward spent in BatchNorm kernels (torch profiler, self CPU times), and in brackets the "
          "speedup removing them would give, 1 / (1 - share): an upper bound on what folding can gain "
          "(RepVGG gains more: its branches are fused too).", "", table, "", "## Goal", "",
          C.markdown_table(["goal", "failing", "verdict"],
                           [[goal["goal"], C.listing(failing) or "-", C.verdict(goal["pass"])]])]
    md += C.not_measured(missing, errors)
    data = {"benchmark": NAME, "environment": env, "budget_s": budget, "batches": batches, "goal": goal,
            "results": rows, "missing": missing, "errors": errors}
    C.write_results(NAME, data, "\n".join(md), args.no_write)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
