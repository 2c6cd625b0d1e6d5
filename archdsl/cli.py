"""archc: the command line.

    archc build CONFIG [hydra overrides] [-m]   compile, write report + weights
    archc cost CONFIG [overrides] [--json]      print the analytic cost report
    archc check FILE.arch ...                   parse and validate only
    archc presets                               list the bundled configs
    archc sweep CONFIG SWEEP... [--cost-only]   a grid: Hydra jobs, or analytic costs only
    archc search SPACE --samples N --keep K     sample a design space under cost constraints
    archc scale RULE CONFIG ...                 EfficientNet, dWr or ResNeXt scaling rules
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from archdsl.language.errors import ArchError

EXIT_USER_ERROR = 2


def _fail(e: ArchError) -> int:
    print(e.render(), file=sys.stderr)
    return EXIT_USER_ERROR


def cmd_build(argv: list[str]) -> int:
    if not argv or argv[0].startswith("-"):
        print("usage: archc build CONFIG [hydra overrides] [-m]", file=sys.stderr)
        return EXIT_USER_ERROR
    from pathlib import Path

    import hydra
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf

    from archdsl.build import completed, run_job
    from archdsl.configs.compose import locate, open_params, search_path_override
    from archdsl.explore import sweep
    from archdsl.explore.summary import failed as failed_rows

    config_dir, name = locate(argv[0])
    results: list[dict] = []

    multirun = any(a in ("-m", "--multirun") for a in argv[1:])

    @hydra.main(config_path=str(config_dir), config_name=name, version_base="1.3")
    def task(cfg) -> dict:
        hc = HydraConfig.get()
        overrides = list(hc.overrides.task)
        out = Path(hc.runtime.output_dir)
        label = f"[{' '.join(overrides)}] " if overrides else ""
        # A resumed sweep (same hydra.sweep.dir) keeps the jobs that finished.
        result = completed(out, overrides) if multirun else None
        if result is not None:
            print(f"{label}{result['name']}: already built in {out}, skipped")
            results.append(result)
            return {k: v for k, v in result.items() if k in ("status", "params", "macs", "output_dir")}
        data = OmegaConf.to_container(cfg, resolve=True)
        result = run_job(data, name, overrides, out, config_dir)
        results.append(result)
        if result["status"] == "ok":
            rl = ", ".join(f"{k} {v * 1e3:.3f} ms" for k, v in result["roofline_s"].items())
            print(f"{label}{result['name']}: {result['params'] / 1e6:.3f} M params, "
                  f"{result['macs'] / 1e9:.3f} GMACs, {result['activations'] / 1e6:.2f} M activations\n"
                  f"  roofline: {rl}\n  wrote {', '.join(result['files'])} to {out}")
        else:
            print(f"{label}failed:\n{result['error']}", file=sys.stderr)
        return {k: v for k, v in result.items() if k in ("status", "params", "macs", "output_dir")}

    # Progress and the sweep summary come from a Hydra callback (archdsl/sweep.py).
    extra = ["hydra/callbacks=summary"] if multirun else []
    saved = sys.argv
    sys.argv = ["archc build"] + _with_overrides(open_params(argv[1:]), search_path_override(config_dir) + extra)
    sweep.LAST = None
    try:
        task()
    except SystemExit as e:
        if e.code not in (0, None):
            return EXIT_USER_ERROR
    finally:
        sys.argv = saved
    if sweep.LAST is not None:  # read from disk: right whatever process ran the jobs
        rows = sweep.LAST.rows
        for note in sweep.LAST.notes:
            print(note, file=sys.stderr)
        print(f"{len(rows) - failed_rows(rows)}/{len(rows)} jobs succeeded; "
              f"summary.csv, summary.json, pareto.png in {sweep.LAST.sweep_dir}")
        return EXIT_USER_ERROR if failed_rows(rows) else 0
    failed = sum(r["status"] != "ok" for r in results)
    if len(results) > 1:
        print(f"{len(results) - failed}/{len(results)} jobs succeeded")
    return EXIT_USER_ERROR if failed else 0


def _with_overrides(args: list[str], ours: list[str]) -> list[str]:
    """Add archc's overrides next to the user's: Hydra's argparse wants them in one run.

    Overrides are the arguments with '=' (or '~key'); option values such as
    `--cfg job` have neither.
    """
    idx = [i for i, a in enumerate(args) if "=" in a or a.startswith("~")]
    at = idx[-1] + 1 if idx else 0
    return args[:at] + ours + args[at:]


def _default_out(kind: str, config: str) -> Path:
    return Path(kind) / Path(config).stem / time.strftime("%Y-%m-%d_%H-%M-%S")


def cmd_sweep(argv: list[str]) -> int:
    p = argparse.ArgumentParser(
        prog="archc sweep", description="Sweep a config over a grid written in Hydra's override "
        "grammar (a,b,c  range(a,b[,step])  choice(...)). Without --cost-only: `archc build -m`.")
    p.add_argument("config")
    p.add_argument("overrides", nargs="*")
    p.add_argument("--cost-only", action="store_true",
                   help="analytic reports only, in this process: no job folders, no weights")
    p.add_argument("--out", help="output folder (default: sweeps/<config>/<date_time>; "
                   "without --cost-only: Hydra's hydra.sweep.dir)")
    p.add_argument("--hardware", help="hardware preset of pareto.png's time panel (default a100)")
    a = p.parse_intermixed_args(argv)
    if not a.cost_only:
        extra = [f"hydra.sweep.dir={a.out}"] if a.out else []
        extra += [f"hydra.callbacks.summary.hardware={a.hardware}"] if a.hardware else []
        return cmd_build([a.config, "-m", *a.overrides, *extra])
    from archdsl.explore import grid

    out = Path(a.out) if a.out else _default_out("sweeps", a.config)
    rows, notes = grid.run(a.config, a.overrides, out, a.hardware)
    for note in notes:
        print(note, file=sys.stderr)
    bad = sum(r["status"] != "ok" for r in rows)
    for r in rows:
        if r["status"] != "ok":
            print(f"[{' '.join(r['overrides'])}] failed:\n{r['error']}", file=sys.stderr)
    print(f"{len(rows) - bad}/{len(rows)} points succeeded; summary.csv, summary.json, pareto.png in {out}")
    return EXIT_USER_ERROR if bad else 0


def cmd_search(argv: list[str]) -> int:
    p = argparse.ArgumentParser(
        prog="archc search", description="Sample a design space (conf/spaces/*.yaml or a file), "
        "reject points that break its cost constraints, keep the first K distinct ones as configs.")
    p.add_argument("space", help="a space file, or the name of a bundled one (conf/spaces)")
    p.add_argument("--samples", type=int, default=10000, help="points to draw (default 10000)")
    p.add_argument("--keep", type=int, default=100, help="points to keep, at most (default 100; 0: all)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="output folder (default: searches/<space>/<date_time>)")
    p.add_argument("--hardware", help="hardware preset of the time plots (default a100)")
    a = p.parse_args(argv)
    if a.samples < 1 or a.keep < 0:
        p.error("--samples must be >= 1 and --keep >= 0")
    from archdsl.explore import search

    out = Path(a.out) if a.out else _default_out("searches", a.space)
    rows, stats, notes = search.run(a.space, a.samples, a.keep or None, a.seed, out, a.hardware)
    for note in notes:
        print(note, file=sys.stderr)
    print(search.describe(stats))
    print(f"kept {len(rows)} configs in {out / 'configs'}; summary.csv, summary.json, histograms.png, "
          f"pareto.png in {out}")
    return 0


def _numbers(text: str) -> list[float]:
    """'1,2,3' or '1..7' (integers) -> numbers."""
    if ".." in text:
        lo, hi = text.split("..")
        return list(range(int(lo), int(hi) + 1))
    return [float(x) if "." in x else int(x) for x in text.split(",") if x]


def cmd_scale(argv: list[str]) -> int:
    p = argparse.ArgumentParser(
        prog="archc scale", description="Scaling rules: efficientnet (compound), dwr (Dollar et al. "
        "fast compound), resnext (iso-FLOP group width). Writes configs archc build runs.")
    p.add_argument("rule", choices=["efficientnet", "dwr", "resnext"])
    p.add_argument("config")
    p.add_argument("--out", help="output folder (default: scaled/<config>/<date_time>)")
    p.add_argument("--hardware", help="hardware preset of the time column (default a100)")
    g = p.add_argument_group("efficientnet")
    g.add_argument("--phi", default="1,2,3", help="compound coefficients, e.g. 1,2,3 or 1..7")
    g.add_argument("--alpha", type=float, default=1.2, help="depth base (default 1.2)")
    g.add_argument("--beta", type=float, default=1.1, help="width base (default 1.1)")
    g.add_argument("--gamma", type=float, default=1.15, help="resolution base (default 1.15)")
    g.add_argument("--search", action="store_true",
                   help="grid-search alpha, beta, gamma with alpha*beta^2*gamma^2 ~ 2 at phi=1")
    g.add_argument("--grid-step", type=float, default=0.05)
    g.add_argument("--tolerance", type=float, default=0.1,
                   help="relative: on alpha*beta^2*gamma^2 = 2, and on the real MACs doubling")
    g.add_argument("--objective", choices=["time", "activations", "macs"], default="time",
                   help="rank candidates by roofline time per MAC, activations per MAC, or closeness to 2x MACs")
    g.add_argument("--keep", type=int, default=3, help="configs written for the best candidates")
    d = p.add_argument_group("dwr")
    d.add_argument("--factor", default="2,4,8", help="FLOP scaling factors s")
    d.add_argument("--a", type=float, default=0.8, help="share of width (1: width only, 1/3: dwr uniform)")
    r = p.add_argument_group("resnext")
    r.add_argument("--groups", default="1,2,4,8,16,32,64", help="group counts G")
    a = p.parse_args(argv)
    from archdsl.explore import scale

    out = Path(a.out) if a.out else _default_out("scaled", a.config)
    try:
        phis, factors, groups = _numbers(a.phi), _numbers(a.factor), [int(x) for x in _numbers(a.groups)]
    except ValueError:
        p.error("--phi, --factor and --groups take comma-separated numbers (or a..b)")
    rows = scale.run(a.rule, a.config, out, phis=phis, alpha=a.alpha, beta=a.beta, gamma=a.gamma,
                     search=a.search, grid_step=a.grid_step, tolerance=a.tolerance, objective=a.objective,
                     hardware=a.hardware, keep=a.keep, factors=factors, a=a.a, groups=groups)
    shown = [rows[0]] + (sorted((x for x in rows if "rank" in x), key=lambda x: x["rank"])
                         if a.search else rows[1:])
    print(scale.table(shown, a.hardware))
    written = sum("config" in x for x in rows[1:])
    print(f"wrote {written} configs to {out / 'configs'}; summary.csv, summary.json in {out}")
    return EXIT_USER_ERROR if any(x["status"] != "ok" for x in rows) else 0


def cmd_cost(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="archc cost", description="Print the analytic cost report.")
    p.add_argument("config")
    p.add_argument("overrides", nargs="*")
    p.add_argument("--json", action="store_true", help="print the JSON report")
    p.add_argument("--layers", action="store_true", help="print the per-layer CSV")
    a = p.parse_args(argv)
    from archdsl.api import cost

    rep = cost(a.config, a.overrides)
    if a.json:
        print(rep.to_json())
    elif a.layers:
        print(rep.to_csv(), end="")
    else:
        print(rep.to_markdown())
    return 0


def cmd_check(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="archc check", description="Parse and validate .arch files.")
    p.add_argument("files", nargs="+")
    a = p.parse_args(argv)
    from archdsl.compiler.check import check_file

    for f in a.files:
        for note in check_file(f):
            print(note)
    return 0


def cmd_presets(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="archc presets", description="List the bundled configs.")
    p.add_argument("--table", action="store_true", help="a markdown table of their costs")
    a = p.parse_args(argv)
    from archdsl.language.resources import conf_dir

    names = sorted(f.stem for f in conf_dir().glob("*.yaml") if f.stem != "base")
    if not a.table:
        print("\n".join(names))
        return 0
    from archdsl.api import compile

    print("| preset | recipe | input | params | GMACs | activations (M) |")
    print("|---|---|---|---:|---:|---:|")
    for n in names:
        c = compile(n)
        t = c.report().total
        print(f"| {n} | {c.config.recipe} | {'x'.join(map(str, c.spec.in_shape[1:]))} | "
              f"{t.params:,} | {t.macs / 1e9:.3f} | {t.activations / 1e6:.2f} |")
    return 0


COMMANDS = {"build": cmd_build, "cost": cmd_cost, "check": cmd_check, "presets": cmd_presets,
            "sweep": cmd_sweep, "search": cmd_search, "scale": cmd_scale}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        print(__doc__.strip())
        return 0 if argv and argv[0] in ("-h", "--help") else EXIT_USER_ERROR
    try:
        return COMMANDS[argv[0]](argv[1:])
    except ArchError as e:
        return _fail(e)
    except BrokenPipeError:  # `archc ... | head`
        sys.stdout = open(os.devnull, "w")
        return 0
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # a bug of ours: say so briefly, keep the trace for ARCHC_DEBUG=1
        if os.environ.get("ARCHC_DEBUG"):
            raise
        print(f"internal error: {type(e).__name__}: {e}\n(set ARCHC_DEBUG=1 for the traceback "
              "and please report it)", file=sys.stderr)
        return 1


def entry() -> None:
    sys.exit(main())
