"""archc's analytic cost vs building the reference and counting it with FlopCounterMode.

Part 1, against the reference: a representative preset per family (default
below; --presets a,b or --presets all to choose), side by side in one
process, alternating within each round:

  reference     timm.create_model(name) (torchvision for shufflenet_v2_x*) on
                CPU, then one batch-1 forward under FlopCounterMode at the
                preset's input size (eval, no_grad) — what a user would do to
                learn params and MACs without archc.
  ref (meta)    the same on the meta device (informational: a tighter bound).
  cost()        archdsl.cost(preset) end to end — config compose, validate,
                parse, elaborate, report — with every in-process cache
                emptied (archdsl.language.caches.forget), as in a new process. The
                on-disk parse cache is turned off for the whole run
                (ARCHDSL_NO_CACHE=1), so "cold" always means lark parsing
                every file (bench/load_vs_timm.py shows the cache's effect).
  parse+elab    load_program(find_recipe(recipe)) with the caches emptied,
                elaborate, report: parsing included, config compose left out.
  once parsed   elaborate + report (totals and roofline, what a sweep's row
                holds) on an already-parsed program, for a config never
                elaborated before (everything elaborated earlier in the
                process forgotten first: block bodies, validated op
                attributes): the per-config cost of a sweep.
  repeat        the same with the block memo kept from the previous call
                (informational: a config whose blocks were all seen before).

Part 2, per config: cost() / parse+elab / once parsed / repeat for every preset
present (or the --presets ones), archc alone, cheap.

Goals: >= 50x faster than the reference on regnety_8gf with parsing included;
<= 2 ms per config once parsed. The goal preset is also timed in fresh
interpreters (first call in a process, imports excluded), informationally.

    python bench/cost_vs_flopcounter.py [--presets a,b|all] [--quick]
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

NAME = "cost_vs_flopcounter"
GOAL_PRESET = "regnety_8gf"
GOAL_SPEEDUP = 50.0
GOAL_PER_CONFIG_S = 2e-3
MEASURE_META = True  # also time the reference on the meta device (informational)
PER_CONFIG_ROUNDS, PER_CONFIG_ROUNDS_QUICK = 5, 2
# Compared with the reference by default (--presets all: every preset): one per
# family, with the goal preset for RegNet.
DEFAULT_PRESETS = [GOAL_PRESET if p == "regnety_080" else p for p in C.DEFAULT_PRESETS]


def archc_fns(preset: str):
    """(end-to-end cost(), parse+elaborate+report, elaborate+report) callables, and the report."""
    import archdsl
    from archdsl.backends.cost import report
    from archdsl.build import costs
    from archdsl.compiler.elaborate import elaborate
    from archdsl.configs.compose import compose
    from archdsl.configs.schema import validate
    from archdsl.language import program as P
    from archdsl.language.caches import forget

    data, name, config_dir = compose(preset)
    cfg = validate(data, name)
    roots = [config_dir.parent, config_dir]  # as archdsl.api.compile_config does
    hw = cfg.hardware_list()

    def end_to_end():
        forget()  # as in a new process: nothing read or elaborated yet
        return archdsl.cost(preset)

    def parse_elab_report():
        forget()
        prog = P.load_program(P.find_recipe(cfg.recipe, roots), roots)
        return report(elaborate(prog, cfg.params, cfg.network), cfg.name, cfg.dtype, hw)

    program = P.load_program(P.find_recipe(cfg.recipe, roots), roots)

    def repeat():
        rep = report(elaborate(program, cfg.params, cfg.network), cfg.name, cfg.dtype, hw)
        costs(rep)  # the totals and roofline times a sweep row holds
        return rep

    def once_parsed():
        forget("elaborated")  # the files stay parsed; nothing of this config is known
        return repeat()

    return end_to_end, parse_elab_report, once_parsed, repeat, once_parsed()


def inner_count(fn, budget_s: float, lo: int, hi: int) -> int:
    """How many calls of `fn` fill about `budget_s` (at least lo, at most hi)."""
    t = C.timed(fn)
    return max(lo, min(hi, int(budget_s / max(t, 1e-6))))


def archc_times(preset: str, rounds: int) -> dict:
    """archc alone: cost() cold, parse+elaborate+report cold, once parsed (per-config table)."""
    end_to_end, parse_elab, once_parsed, repeat, rep = archc_fns(preset)
    n = {"cost()": 1, "parse+elab+report": inner_count(parse_elab, 0.03, 1, 10),
         "once parsed": inner_count(once_parsed, 0.03, 5, 100), "repeat": inner_count(repeat, 0.03, 5, 100)}
    fns = {"cost()": end_to_end, "parse+elab+report": parse_elab, "once parsed": once_parsed, "repeat": repeat}
    t = C.interleave({k: (lambda f=f, k=k: C.timed_loop(f, n[k])) for k, f in fns.items()}, rounds, warmup=1)
    return {"preset": preset, "times_s": {k: C.summary(v) for k, v in t.items()}, "inner_calls": n,
            "params": rep.total.params, "macs": rep.total.macs, "layers": len(rep.layers)}


def versus_reference(preset: str, rounds: int) -> dict:
    """Reference build + FlopCounterMode count vs archc's three paths, one round each, interleaved."""
    shape = C.input_shape(preset)
    end_to_end, parse_elab, once_parsed, _, rep = archc_fns(preset)
    n_e2e = inner_count(end_to_end, 0.25, 1, 20)
    n_pe = inner_count(parse_elab, 0.25, 1, 20)
    n_once = inner_count(once_parsed, 0.25, 5, 500)
    counted = {}

    def ref():
        def go():
            m = C.build_reference(preset)
            counted["params"] = C.n_params(m)
            counted["macs"] = C.count_macs(m, shape)
        return C.timed(go)

    def ref_meta():
        def go():
            m = C.build_reference(preset, device="meta")
            counted["meta_macs"] = C.count_macs(m, shape, device="meta")
        return C.timed(go)

    fns = {"reference": ref,
           "cost()": lambda: C.timed_loop(end_to_end, n_e2e),
           "parse+elab+report": lambda: C.timed_loop(parse_elab, n_pe),
           "once parsed": lambda: C.timed_loop(once_parsed, n_once)}
    if MEASURE_META:
        fns["ref (meta)"] = ref_meta
    # archc's paths are cheap: warm them up here; the reference runs once per round only.
    for f in (end_to_end, parse_elab, once_parsed):
        f()
    t = C.interleave(fns, rounds, warmup=0)
    out = {
        "preset": preset, "reference": C.reference_label(preset), "input_shape": list(shape),
        "times_s": {k: C.summary(v) for k, v in t.items()}, "raw_s": t,
        "inner_calls": {"cost()": n_e2e, "parse+elab+report": n_pe, "once parsed": n_once},
        "speedup_cost": C.paired_ratio(t["reference"], t["cost()"]),
        "speedup_parse_elab": C.paired_ratio(t["reference"], t["parse+elab+report"]),
        "speedup_once_parsed": C.paired_ratio(t["reference"], t["once parsed"]),
        "report_params": rep.total.params, "report_macs": rep.total.macs,
        "ref_params": counted.get("params"), "ref_macs": counted.get("macs"),
    }
    if MEASURE_META:
        out["speedup_cost_vs_meta"] = C.paired_ratio(t["ref (meta)"], t["cost()"])
        out["ref_meta_macs"] = counted.get("meta_macs")
    out["counts_match"] = (out["report_params"] == out["ref_params"] and out["report_macs"] == out["ref_macs"])
    return out


def stage_breakdown(preset: str, rounds: int) -> dict:
    """Where archdsl.cost's time goes: each stage timed alone, interleaved, medians."""
    from archdsl.backends.cost import report
    from archdsl.compiler import ir
    from archdsl.compiler.elaborate import elaborate
    from archdsl.configs.compose import compose
    from archdsl.configs.schema import validate
    from archdsl.language import program as P
    from archdsl.language.caches import forget

    data, name, config_dir = compose(preset)
    cfg = validate(data, name)
    roots = [config_dir.parent, config_dir]
    recipe = P.find_recipe(cfg.recipe, roots)
    program = P.load_program(recipe, roots)
    spec = elaborate(program, cfg.params, cfg.network)
    hw = cfg.hardware_list()

    def parse_cold():
        forget("read")
        return P.load_program(P.find_recipe(cfg.recipe, roots), roots)

    # Each stage as a new process runs it: what it reads or elaborates is forgotten first.
    stages = {"compose (archdsl.configs.compose.compose)": lambda: (forget("read"), compose(preset))[1],
              "pydantic validate": lambda: validate(data, name),
              "find_recipe + load_program (cold parse cache)": parse_cold,
              # a new config each time: the block memo (and the costs kept on its bodies) emptied
              "elaborate": lambda: (forget("elaborated"), elaborate(program, cfg.params, cfg.network))[1],
              "elaborate + report": lambda: (forget("elaborated"), report(elaborate(program, cfg.params, cfg.network),
                                                                     cfg.name, cfg.dtype, hw).total)[1]}
    n = {k: inner_count(f, 0.05, 1, 200) for k, f in stages.items()}
    t = C.interleave({k: (lambda f=f, k=k: C.timed_loop(f, n[k])) for k, f in stages.items()}, rounds, warmup=1)
    P.load_program(recipe, roots)  # leave the cache warm
    med = {k: C.median(v) for k, v in t.items()}
    med["report"] = max(med.pop("elaborate + report") - med["elaborate"], 0.0)
    total = sum(med.values())
    return {"preset": preset, "median_s": med, "share": {k: v / total for k, v in med.items()},
            "sum_s": total, "n_ops": sum(1 for _ in ir.ops(spec)), "files": program.files}


_FRESH = r"""
import json, sys, time
import torch, timm, torchvision  # imports are not timed
sys.path.insert(0, {bench!r})
import _common as C
import archdsl
torch.set_num_threads({threads})
which, preset = sys.argv[1], sys.argv[2]
shape = {shape!r}
t = time.perf_counter()
if which == "archc":
    archdsl.cost(preset)
else:
    C.count_macs(C.build_reference(preset), shape)
print(json.dumps(time.perf_counter() - t))
"""


def fresh_process(preset: str, rounds: int, threads: int) -> dict:
    """First call of archdsl.cost vs reference build+count, each in a fresh interpreter."""
    code = _FRESH.format(bench=str(C.BENCH_DIR), threads=threads, shape=C.input_shape(preset))

    def run(which):
        def go():
            r = subprocess.run([sys.executable, "-c", code, which, preset], capture_output=True,
                               text=True, timeout=600)
            if r.returncode:
                raise RuntimeError(r.stderr.strip().splitlines()[-1] if r.stderr.strip() else "failed")
            return json.loads(r.stdout.strip().splitlines()[-1])
        return go

    t = C.interleave({"archc cost() first call": run("archc"), "reference first build+count": run("ref")},
                     rounds, warmup=0)
    return {"times_s": {k: C.summary(v) for k, v in t.items()}, "raw_s": t,
            "speedup": C.paired_ratio(t["reference first build+count"], t["archc cost() first call"])}


def per_config_summary(configs: list[dict], slow: list[str]) -> str:
    """One cell: the goal preset's time, the worst, and how many are over (the list is in the JSON)."""
    if not configs:
        return "-"
    once = {r["preset"]: r["times_s"]["once parsed"]["median"] for r in configs}
    worst = max(once, key=once.get)
    parts = [f"{GOAL_PRESET} {C.fmt_time(once[GOAL_PRESET])}"] if GOAL_PRESET in once else []
    parts.append(f"worst {C.fmt_time(once[worst])} ({worst})")
    if slow:
        parts.append(f"{len(slow)}/{len(configs)} over ({C.listing(slow)})")
    return "; ".join(parts)


def main(argv=None) -> int:
    args = C.parser(__doc__.splitlines()[0], DEFAULT_PRESETS).parse_args(argv)
    os.environ["ARCHDSL_NO_CACHE"] = "1"  # cold parses are real parses (see the docstring)
    threads = C.set_threads(args.threads)
    env = C.environment()  # at the start: the commit measured
    vs_ref, missing = C.select_presets(args.presets, DEFAULT_PRESETS)
    # The per-config table is cheap: every preset present, unless --presets names some.
    per_config, _ = C.select_presets(args.presets)
    rounds = 1 if args.quick else 3
    import archdsl

    C.log("warming up ...")  # imports, the grammar, Hydra, timm's registry
    if per_config:
        archdsl.cost(per_config[0])
    C.count_macs(C.build_reference("resnet18"), (3, 224, 224))

    rows, errors, skipped = C.measure_each(vs_ref, lambda p: [versus_reference(p, rounds)])
    configs = []
    C.log(f"per-config cost of {len(per_config)} presets ...")
    for p in per_config:
        try:
            configs.append(archc_times(p, PER_CONFIG_ROUNDS_QUICK if args.quick else PER_CONFIG_ROUNDS))
        except Exception as e:  # noqa: BLE001
            errors.setdefault(p, f"{type(e).__name__}: {e}")
            C.log(f"{p}: ERROR {errors[p]}")

    goal_row = next((r for r in rows if r["preset"] == GOAL_PRESET), None)
    fresh = breakdown = None
    if goal_row:
        C.log(f"{GOAL_PRESET}: fresh interpreters ...")
        try:
            fresh = fresh_process(GOAL_PRESET, 1 if args.quick else 3, threads)
        except Exception as e:  # noqa: BLE001
            errors[f"{GOAL_PRESET} (fresh process)"] = f"{type(e).__name__}: {e}"
    where = GOAL_PRESET if goal_row else (rows[0]["preset"] if rows else None)
    if where:
        C.log(f"{where}: stage breakdown ...")
        try:
            breakdown = stage_breakdown(where, 5 if args.quick else 20)
        except Exception as e:  # noqa: BLE001
            errors[f"{where} (stage breakdown)"] = f"{type(e).__name__}: {e}"

    once = lambda r: r["times_s"]["once parsed"]["median"]  # noqa: E731
    g1 = None if goal_row is None else goal_row["speedup_cost"]["median"] >= GOAL_SPEEDUP
    g1b = None if goal_row is None else goal_row["speedup_parse_elab"]["median"] >= GOAL_SPEEDUP
    slow = [r["preset"] for r in configs if once(r) > GOAL_PER_CONFIG_S]
    g2 = None if not configs else not slow
    worst = max(configs, key=once) if configs else None
    goals = {
        "speedup_with_parsing": {
            "goal": f">= {GOAL_SPEEDUP:g}x faster than the reference on {GOAL_PRESET}, parsing included",
            "measured_cost": goal_row and goal_row["speedup_cost"]["median"],
            "measured_parse_elab": goal_row and goal_row["speedup_parse_elab"]["median"],
            "pass_cost": g1, "pass_parse_elab": g1b},
        "per_config_once_parsed": {
            "goal": f"<= {GOAL_PER_CONFIG_S * 1e3:g} ms per config once parsed (every preset measured)",
            "worst_preset": worst and worst["preset"], "worst_s": worst and once(worst),
            "over_goal": slow, "pass": g2},
    }

    t = lambda r, k: C.fmt_time(r["times_s"][k]["median"])  # noqa: E731
    x = lambda d: f"{d['median']:.0f}x" if d["median"] >= 10 else f"{d['median']:.1f}x"  # noqa: E731
    ref_table = C.markdown_table(
        ["preset", "reference", "ref build+count", "ref (meta)", "cost()", "speedup", "parse+elab+report",
         "speedup", "once parsed", "speedup", "counts match"],
        [[r["preset"], r["reference"], t(r, "reference"), t(r, "ref (meta)") if MEASURE_META else "-",
          t(r, "cost()"), x(r["speedup_cost"]), t(r, "parse+elab+report"), x(r["speedup_parse_elab"]),
          t(r, "once parsed"), x(r["speedup_once_parsed"]),
          "yes" if r["counts_match"] else f"NO (archc {r['report_params']}/{r['report_macs']} vs "
          f"ref {r['ref_params']}/{r['ref_macs']})"] for r in rows])
    cfg_table = C.markdown_table(
        ["preset", "layers", "cost() cold", "parse+elab+report cold", "once parsed", "repeat", "<= 2 ms"],
        [[r["preset"], r["layers"], t(r, "cost()"), t(r, "parse+elab+report"), t(r, "once parsed"),
          t(r, "repeat"), C.verdict(once(r) <= GOAL_PER_CONFIG_S)] for r in configs])
    md = ["# archc cost vs reference + FlopCounterMode\n", C.env_markdown(env, sys.argv), "",
          "## Against the reference", "",
          f"Medians over {rounds} interleaved round(s); speedup = median of per-round "
          "(reference time / archc time). Reference: build on CPU (default init) + one batch-1 "
          "FlopCounterMode forward (eval, no_grad) at the preset's input size; ref (meta): the same on the "
          "meta device (informational). cost() and parse+elab+report start with every in-process cache "
          "emptied (archdsl.language.caches.forget) and the on-disk parse cache off: lark and PyYAML parse every "
          "file.", "",
          ref_table, "", "## Per config (archc only)", "",
          f"Medians over {PER_CONFIG_ROUNDS_QUICK if args.quick else PER_CONFIG_ROUNDS} rounds after a warm-up round; 'once parsed' = "
          "elaborate + report (totals and roofline times) on an already-parsed program, for a config not "
          "elaborated before (all that earlier calls elaborated forgotten: block bodies, validated op "
          "attributes); 'repeat' = the same with the memo kept (every block "
          "seen before). The goal is judged on 'once parsed'.", "", cfg_table, "", "## Goals", "",
          C.markdown_table(["goal", "measured", "verdict"], [
              [goals["speedup_with_parsing"]["goal"] + " — archdsl.cost() (config compose included)",
               "-" if goal_row is None else x(goal_row["speedup_cost"]), C.verdict(g1)],
              [goals["speedup_with_parsing"]["goal"] + " — parse+elaborate+report (no config compose)",
               "-" if goal_row is None else x(goal_row["speedup_parse_elab"]), C.verdict(g1b)],
              [goals["per_config_once_parsed"]["goal"], per_config_summary(configs, slow), C.verdict(g2)]])]
    if goal_row is None:
        md += ["", f"{GOAL_PRESET} was not measured against its reference: the speedup goal is n/a."]
    if fresh:
        f = fresh["times_s"]
        md += ["", f"Fresh interpreter, first call, imports excluded ({GOAL_PRESET}): archdsl.cost() "
               f"{C.fmt_time(f['archc cost() first call']['median'])}, reference "
               f"{C.fmt_time(f['reference first build+count']['median'])}: {x(fresh['speedup'])}."]
    if breakdown:
        b = breakdown
        md += ["", f"## Where archdsl.cost() spends its time ({b['preset']}, {b['n_ops']} ops, "
               f"{len(b['files'])} .arch files)", "",
               C.markdown_table(["stage", "median", "share"],
                                [[k, C.fmt_time(v), f"{b['share'][k]:.0%}"] for k, v in b["median_s"].items()]
                                + [["sum", C.fmt_time(b["sum_s"]), "100%"]])]
    md += C.not_measured(missing, {**skipped, **errors})
    data = {"benchmark": NAME, "environment": env, "rounds": rounds, "goals": goals, "versus_reference": rows,
            "per_config": configs, "fresh_process": fresh, "stage_breakdown": breakdown,
            "missing": missing, "skipped": skipped, "errors": errors}
    C.write_results(NAME, data, "\n".join(md), args.no_write)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
