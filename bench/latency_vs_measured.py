"""Predicted vs measured forward latency: does archc's calibrated roofline
predict this machine better than the nominal roofline and than MACs alone?

For every bundled preset (larger ones at a reduced resolution, so that a
forward pass is at most --max-gmacs GMACs per image; each row says its
resolution), eval mode, torch.no_grad, --threads threads (default 1), batch
1 and 8: the median of timed forward passes after a warm-up, beside three
predictions of it:
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

    python bench/latency_vs_measured.py [--presets all|a,b] [--limit N] [--batches 1,8]
        [--threads 1] [--device cpu|cuda] [--hardware NAME] [--max-gmacs 1.0] [--quick]
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


def main(argv=None) -> int:
    p = C.parser(__doc__.splitlines()[0], None)
    p.add_argument("--batches", default="1,8", help="comma-separated batch sizes (default: 1,8)")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--hardware", help="a calibrated preset to predict with (default: calibrate now)")
    p.add_argument("--nominal", help="the nominal preset (default server_cpu; a100 on cuda)")
    p.add_argument("--max-gmacs", type=float, default=1.0, help="larger presets run at a reduced resolution")
    p.add_argument("--limit", type=int, default=0, help="only the first N presets (a smoke run)")
    p.add_argument("--time-limit", type=float, default=0, help="start no preset after this many seconds")
    args = p.parse_args(argv)
    import torch

    import archdsl
    from archdsl.backends.torch.calibrate import calibrate
    from archdsl.backends.torch.timing import measure
    from archdsl.backends.cost import Hardware

    threads = C.set_threads(args.threads)
    env = C.environment()
    torch.set_flush_denormal(True)
    batches = [int(b) for b in args.batches.split(",")]
    presets, missing = C.select_presets(args.presets, None)
    presets = presets[:args.limit] if args.limit else presets
    device = args.device
    base = archdsl.compile("resnet18")
    nominal_name = args.nominal or ("a100" if device.startswith("cuda") else "server_cpu")
    nominal = next(h for h in base.config.hardware_list() if h.name == nominal_name)
    if args.hardware:
        hw = archdsl.compile("resnet18", [f"hardware={args.hardware}"]).config.hardware_list()[0]
        calib_s = None
    else:
        t0 = time.perf_counter()
        cal = calibrate(f"bench_{device.split(':')[0]}", device, args.threads, log=C.log)
        calib_s = time.perf_counter() - t0
        hw = Hardware(cal.name, cal.peak_macs, cal.mem_bw, "", cal.efficiency, cal.overhead)
    runs, warmup = (3, 1) if args.quick else (7, 3)

    start = time.perf_counter()

    def bench(preset: str) -> list[dict]:
        if args.time_limit and time.perf_counter() - start > args.time_limit:
            return []
        res, c = resolution(preset, args.max_gmacs)
        rep = c.report()
        net = c.module(device=device).eval()  # made on the device: big presets initialize fast there
        rows = []
        for b in batches:
            x = torch.randn((b,) + tuple(c.spec.in_shape), device=device)
            with torch.no_grad():
                t = measure(lambda: net(x), device, warmup=warmup, runs=runs, min_time=0.3)
            rows.append({"preset": preset, "res": res or c.spec.in_shape[1], "reduced": res is not None, "batch": b,
                         "measured_s": t.median, "p10_s": t.p10, "calibrated_s": sum(l.time(hw, b) for l in rep.layers),
                         "nominal_s": sum(l.time(nominal, b) for l in rep.layers), "macs": rep.total.macs * b})
            C.log(f"  batch {b}: measured {t.median * 1e3:.2f} ms, calibrated {rows[-1]['calibrated_s'] * 1e3:.2f} ms")
        return rows

    rows, errors, _ = C.measure_each(presets, bench, needs_reference=False)
    summary = {}
    lines = [f"# {NAME}", "", f"{env.get('processor')}, {device}, {threads} thread(s), fp32, torch {env['torch']}; "
             f"{len({r['preset'] for r in rows})} presets (larger ones at a reduced resolution: at most "
             f"{args.max_gmacs:g} GMACs per image), median of {runs}+ timed passes after {warmup} warm-up. "
             f"Calibrated preset: {hw.name}" + (f" (measured in {calib_s:.0f} s at the start)" if calib_s else "")
             + f"; nominal: {nominal.name}, scaled by one constant, as MACs are.", "",
             "| batch | predictor | within ±15% | within ±10% | median abs error | Spearman | scale |",
             "|---:|---|---:|---:|---:|---:|---:|"]
    for b in batches:
        sel = [r for r in rows if r["batch"] == b]
        if not sel:
            continue
        meas = [r["measured_s"] for r in sel]
        for key, label, scale in (("calibrated_s", "calibrated roofline", False),
                                  ("nominal_s", f"nominal roofline ({nominal.name})", True),
                                  ("macs", "MACs alone", True)):
            f = figures([r[key] for r in sel], meas, scale)
            summary[f"batch{b}_{key}"] = f
            lines.append(f"| {b} | {label} | {f['within_15']:.0%} | {f['within_10']:.0%} | "
                         f"{f['median_abs_error']:.1%} | {f['spearman']:.3f} | "
                         f"{'—' if not scale else format(f['scale'], '.3g')} |")
    reduced = sorted({f"{r['preset']} ({r['res']})" for r in rows if r["reduced"]})
    lines += ["", f"At a reduced resolution: {', '.join(reduced) or 'none'}."]
    if errors:
        lines += ["", "Failed: " + "; ".join(f"{k}: {v}" for k, v in errors.items())]
    if missing:
        lines += ["", "Not present: " + ", ".join(missing)]
    C.write_results(NAME, {"env": env, "hardware": hw.__dict__, "nominal": nominal.__dict__, "summary": summary,
                           "rows": rows, "errors": errors}, "\n".join(lines), args.no_write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
