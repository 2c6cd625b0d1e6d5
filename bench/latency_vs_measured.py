"""Predicted vs measured forward latency: does archc's calibrated roofline
predict this machine better than the nominal roofline and than MACs alone?

For every bundled preset (larger ones at a reduced resolution, so that a
forward pass is at most --max-gmacs GMACs per image; each row says its
resolution), eval mode, torch.no_grad, --threads threads (default 1), batch
1 and 8 timed in alternation: the median of timed forward passes after a
warm-up, over --passes passes through the presets (the second in reverse
order, so that a slow stretch of a shared machine does not fall on the same
presets), beside three predictions of it:
- calibrated: the cost report's roofline at a preset `archc calibrate`
  measures at the start of the run (micro-benchmarks only: nothing is fitted
  to the networks timed here), or the preset --hardware names;
- nominal: the roofline at the nominal datasheet preset (--nominal,
  server_cpu on a CPU, a100 on a GPU), scaled by one constant: the median
  measured / predicted over the presets (so its scale is the best it can be);
- MACs: MACs x batch, scaled the same way.
Per predictor and batch: the share of presets within +-15% and +-10%, the
median absolute error and Spearman's rank correlation. Goal (issue 17): >= 90%
within +-15% and a rank correlation >= 0.95 for the calibrated roofline.

Conditions, stated in the results: with one CPU thread the clock is the
thread's CPU time (--clock thread; timing.py: a shared machine's waits for a
core are left out) and the heap is steady (--heap steady: freed memory is not
given back to the kernel; timing.steady_heap), as `archc calibrate` measures.
A shared machine also changes speed while it runs (caches and memory
bandwidth taken by other processes): calibrate's probe (four typical
kernels, in context; calibrate.PROBE) is timed before each preset, and the
results also give the calibrated figures with each measurement divided by
the probe's slowdown at the time ("drift-adjusted") against the speed the
calibration's times were scaled to (its probe readings' median; with
--hardware, three readings at the start), and how far the passes disagree
on the same preset (the noise floor).

    python bench/latency_vs_measured.py [--presets all|a,b] [--limit N] [--batches 1,8]
        [--threads 1] [--device cpu|cuda] [--hardware NAME] [--max-gmacs 1.0] [--passes 2]
        [--clock thread|wall] [--heap steady|default] [--quick]
"""
from __future__ import annotations

import math
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

NAME = "latency_vs_measured"


def resolution(preset: str, max_gmacs: float) -> tuple[int | None, object]:
    """(the resolution it runs at, None: its own; its compiled form). Larger
    presets shrink to a multiple of 32 whose MACs fit max_gmacs (MACs grow
    with the square of the resolution)."""
    import archdsl
    from archdsl.language.errors import ArchError

    c = archdsl.compile(preset)
    macs = c.report().total.macs
    if macs <= max_gmacs * 1e9:
        return None, c
    res = c.spec.in_shape[1]
    want = max(64, int(res * math.sqrt(max_gmacs * 1e9 / macs)) // 32 * 32)
    while True:
        try:
            return want, archdsl.compile(preset, [f"params.res={want}"])
        except ArchError:  # below the network's least input (Inception's 75): a little larger
            want += 32
            if want >= res:
                return None, c


def spearman(a: list[float], b: list[float]) -> float:
    def ranks(v):
        order = sorted(range(len(v)), key=lambda i: v[i])
        r = [0.0] * len(v)
        i = 0
        while i < len(v):
            j = i
            while j + 1 < len(v) and v[order[j + 1]] == v[order[i]]:
                j += 1
            for k in range(i, j + 1):
                r[order[k]] = (i + j) / 2
            i = j + 1
        return r
    ra, rb = ranks(a), ranks(b)
    ma, mb = statistics.fmean(ra), statistics.fmean(rb)
    cov = sum((x - ma) * (y - mb) for x, y in zip(ra, rb))
    return cov / math.sqrt(sum((x - ma) ** 2 for x in ra) * sum((y - mb) ** 2 for y in rb))


def figures(pred: list[float], meas: list[float], scale: bool) -> dict:
    k = statistics.median(m / p for p, m in zip(pred, meas)) if scale else 1.0
    err = [p * k / m - 1 for p, m in zip(pred, meas)]
    return {"within_15": sum(abs(e) <= 0.15 for e in err) / len(err),
            "within_10": sum(abs(e) <= 0.10 for e in err) / len(err),
            "median_abs_error": statistics.median(abs(e) for e in err),
            "spearman": spearman(pred, meas), "scale": k}


def make_probe(device: str, clock: str):
    """seconds(): the summed medians of calibrate's probe kernels, each timed in calibration's context."""
    import torch

    from archdsl.backends.torch import calibrate as calib

    return calib.probe(device, torch.float32, clock, calib._context(device, torch.float32))


def main(argv=None) -> int:
    p = C.parser(__doc__.splitlines()[0], None)
    p.add_argument("--batches", default="1,8", help="comma-separated batch sizes (default: 1,8)")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--hardware", help="a calibrated preset to predict with (default: calibrate now)")
    p.add_argument("--nominal", help="the nominal preset (default server_cpu; a100 on cuda)")
    p.add_argument("--max-gmacs", type=float, default=1.0, help="larger presets run at a reduced resolution")
    p.add_argument("--limit", type=int, default=0, help="only the first N presets (a smoke run)")
    p.add_argument("--time-limit", type=float, default=0, help="start no preset after this many seconds")
    p.add_argument("--passes", type=int, default=2, help="passes through the presets (default 2)")
    p.add_argument("--clock", choices=["thread", "wall"], help="default: thread with 1 CPU thread, else wall")
    p.add_argument("--heap", choices=["steady", "default"], default="steady", help="glibc malloc's (see above)")
    p.add_argument("--tabulate", metavar="NAME", help="only tabulate bench/results/NAME.json again (its .md's "
                   "first paragraph kept): the tables of this version of the script from a run's rows")
    args = p.parse_args(argv)
    if args.tabulate:
        return tabulate(args.tabulate)
    import torch

    import archdsl
    from archdsl.backends.cost import Hardware
    from archdsl.backends.torch.calibrate import calibrate
    from archdsl.backends.torch.timing import check_clock, measure, steady_heap

    threads = C.set_threads(args.threads)
    device = args.device
    clock = args.clock or ("thread" if device == "cpu" and threads == 1 else "wall")
    check_clock(clock, device, threads)
    steady = args.heap == "steady" and device == "cpu" and steady_heap()
    env = C.environment()
    torch.set_flush_denormal(True)
    batches = [int(b) for b in args.batches.split(",")]
    presets, missing = C.select_presets(args.presets, None)
    presets = presets[:args.limit] if args.limit else presets
    base = archdsl.compile("resnet18")
    nominal_name = args.nominal or ("a100" if device.startswith("cuda") else "server_cpu")
    nominal = next(h for h in base.config.hardware_list() if h.name == nominal_name)
    if args.hardware:
        hw = archdsl.compile("resnet18", [f"hardware={args.hardware}"]).config.hardware_list()[0]
        calib_s = None
    else:
        t0 = time.perf_counter()
        cal = calibrate(f"bench_{device.split(':')[0]}", device, args.threads, log=C.log, clock=clock)
        calib_s = time.perf_counter() - t0
        hw = Hardware(cal.name, cal.peak_macs, cal.mem_bw, "", cal.efficiency, cal.overhead, cal.mem_efficiency,
                      cal.half_pixels, cal.bw_curve, cal.weight_bw, cal.channel_align, cal.misaligned)
    probe = make_probe(device, clock)
    with torch.no_grad():
        # the speed the calibration's times were scaled to (its probe readings' median), when it ran here
        probe_ref = cal.probe_s if calib_s is not None else statistics.median(probe() for _ in range(3))
    C.log(f"probe: {probe_ref * 1e6:.0f} µs")
    rounds, warmup = (3, 1) if args.quick else (5, 2)

    start = time.perf_counter()

    def bench(preset: str) -> list[dict]:
        if args.time_limit and time.perf_counter() - start > args.time_limit:
            return []
        res, c = resolution(preset, args.max_gmacs)
        rep = c.report()
        with torch.no_grad():
            slow = probe() / probe_ref
        net = c.module(device=device).eval()  # made on the device: big presets initialize fast there
        xs = {b: torch.randn((b,) + tuple(c.spec.in_shape), device=device) for b in batches}
        times: dict[int, list[float]] = {b: [] for b in batches}
        walls: dict[int, list[float]] = {b: [] for b in batches}
        with torch.no_grad():
            for b in batches:
                for _ in range(warmup):
                    net(xs[b])
            for _ in range(rounds):  # b1, b8, b1, b8, ...
                for b in batches:
                    t = measure(lambda: net(xs[b]), device, warmup=0, runs=1, clock=clock)
                    times[b].append(t.median)
                    walls[b].append(t.wall)
        rows = []
        for b in batches:
            rows.append({"preset": preset, "res": res or c.spec.in_shape[1], "reduced": res is not None, "batch": b,
                         "measured_s": statistics.median(times[b]), "wall_s": statistics.median(walls[b]),
                         "slowdown": slow, "calibrated_s": sum(l.time(hw, b) for l in rep.layers),
                         "nominal_s": sum(l.time(nominal, b) for l in rep.layers), "macs": rep.total.macs * b})
            C.log(f"  batch {b}: measured {rows[-1]['measured_s'] * 1e3:.2f} ms, calibrated "
                  f"{rows[-1]['calibrated_s'] * 1e3:.2f} ms (probe x{slow:.2f})")
        return rows

    passes = []
    errors = {}
    for k in range(args.passes):
        order = presets if k % 2 == 0 else presets[::-1]
        got, errs, _ = C.measure_each(order, bench, needs_reference=False)
        passes.append(got)
        errors.update(errs)
    rows = combine(passes)
    cond = (f"{clock} clock" + (", steady heap" if steady else ", glibc's default heap"))
    head = [f"# {NAME}", "", f"{env.get('processor')}, {device}, {threads} thread(s), fp32, torch {env['torch']}, "
            f"{cond}; {len({r['preset'] for r in rows})} presets (larger ones at a reduced resolution: at most "
            f"{args.max_gmacs:g} GMACs per image); per preset and batch the median of {rounds} timed passes "
            f"(batches alternating, after {warmup} warm-up), then the median over {args.passes} pass(es) through the "
            f"presets. Calibrated preset: {hw.name}"
            + (f" (measured in {calib_s:.0f} s at the start)" if calib_s else "")
            + f"; nominal: {nominal.name}, scaled by one constant, as MACs are.", ""]
    summary, lines = tables(rows, batches, nominal.name, clock)
    reduced = sorted({f"{r['preset']} ({r['res']})" for r in rows if r["reduced"]})
    lines += ["", f"At a reduced resolution: {', '.join(reduced) or 'none'}."]
    if errors:
        lines += ["", "Failed: " + "; ".join(f"{k}: {v}" for k, v in errors.items())]
    if missing:
        lines += ["", "Not present: " + ", ".join(missing)]
    C.write_results(NAME, {"env": env, "clock": clock, "steady_heap": steady, "hardware": hw.__dict__,
                           "nominal": nominal.__dict__, "probe_reference_s": probe_ref, "summary": summary,
                           "rows": rows, "passes": passes, "errors": errors}, "\n".join(head + lines), args.no_write)
    return 0


def tables(rows: list[dict], batches: list[int], nominal: str, clock: str) -> tuple[dict, list[str]]:
    """(figures, markdown lines) per batch and predictor: the calibrated
    roofline against the measured time, the same drift-adjusted and, when the
    clock was the thread's, against the wall clock; the nominal roofline and
    MACs, each scaled by its best constant. Then the noise floor."""
    summary: dict = {}
    lines = ["| batch | predictor | within ±15% | within ±10% | median abs error | Spearman | scale |",
             "|---:|---|---:|---:|---:|---:|---:|"]
    for b in batches:
        sel = [r for r in rows if r["batch"] == b]
        if not sel:
            continue
        meas = [r["measured_s"] for r in sel]
        cases = [("calibrated", "calibrated_s", "calibrated roofline", False, meas),
                 ("adjusted", "calibrated_s", "calibrated, drift-adjusted", False,
                  [r["measured_s"] / r["slowdown"] for r in sel])]
        if clock == "thread":
            cases.append(("wall", "calibrated_s", "calibrated, against the wall clock", False,
                          [r["wall_s"] for r in sel]))
        cases += [("nominal", "nominal_s", f"nominal roofline ({nominal})", True, meas),
                  ("macs", "macs", "MACs alone", True, meas)]
        for name, key, label, scale, m in cases:
            f = figures([r[key] for r in sel], m, scale)
            summary[f"batch{b}_{name}"] = f
            lines.append(f"| {b} | {label} | {f['within_15']:.0%} | {f['within_10']:.0%} | "
                         f"{f['median_abs_error']:.1%} | {f['spearman']:.3f} | "
                         f"{'—' if not scale else format(f['scale'], '.3g')} |")
    lines += ["", f"The probe ran {min(r['slowdown'] for r in rows):.2f}-{max(r['slowdown'] for r in rows):.2f}x "
              f"its time at calibration (median {statistics.median(r['slowdown'] for r in rows):.2f}x)."]
    noise = [r["pass_spread"] for r in rows if r.get("pass_spread") is not None]
    if noise:
        summary["pass_spread_median"] = statistics.median(noise)
        lines += ["", "Noise floor: the passes' medians of one preset and batch differ by "
                  f"{statistics.median(noise):.1%} (median over presets; "
                  f"{sum(x <= 0.15 for x in noise) / len(noise):.0%} within ±15% of each other)."]
    return summary, lines


def tabulate(name: str) -> int:
    import json

    data = json.loads((C.RESULTS_DIR / f"{name}.json").read_text())
    md = C.RESULTS_DIR / f"{name}.md"
    head = md.read_text().split("\n| batch |", 1)[0].rstrip("\n").split("\n")
    rows = data["rows"]
    batches = sorted({r["batch"] for r in rows})
    summary, lines = tables(rows, batches, data["nominal"]["name"], data.get("clock", "wall"))
    reduced = sorted({f"{r['preset']} ({r['res']})" for r in rows if r["reduced"]})
    lines += ["", f"At a reduced resolution: {', '.join(reduced) or 'none'}."]
    if data.get("errors"):
        lines += ["", "Failed: " + "; ".join(f"{k}: {v}" for k, v in data["errors"].items())]
    data["summary"] = summary
    (C.RESULTS_DIR / f"{name}.json").write_text(json.dumps(C._clean(data), indent=2, default=str) + "\n")
    md.write_text("\n".join(head + [""] + lines) + "\n")
    print("\n".join(head + [""] + lines))
    return 0


def combine(passes: list[list[dict]]) -> list[dict]:
    """One row per preset and batch: the median over the passes of the
    measured time and the probe's slowdown; pass_spread: the passes' largest
    / smallest measured time - 1."""
    by: dict[tuple, list[dict]] = {}
    for got in passes:
        for r in got:
            by.setdefault((r["preset"], r["batch"]), []).append(r)
    out = []
    for rs in by.values():
        r = dict(rs[0])
        ms = [x["measured_s"] for x in rs]
        r["measured_s"] = statistics.median(ms)
        r["wall_s"] = statistics.median(x["wall_s"] for x in rs)
        r["slowdown"] = statistics.median(x["slowdown"] for x in rs)
        r["pass_spread"] = max(ms) / min(ms) - 1 if len(ms) > 1 else None
        out.append(r)
    return out


if __name__ == "__main__":
    sys.exit(main())
