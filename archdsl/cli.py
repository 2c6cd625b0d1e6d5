"""archc: the command line.

    archc build CONFIG [hydra overrides] [-m]   compile, write report + weights
    archc cost CONFIG [overrides] [--json]      print the analytic cost report (--layers, --top K)
    archc check FILE.arch ...                   parse and validate only
    archc presets                               list the bundled configs
    archc sweep CONFIG SWEEP... [--cost-only]   a grid: Hydra jobs, or analytic costs only
    archc search SPACE --samples N --keep K     sample a design space under cost constraints
    archc scale RULE CONFIG ...                 EfficientNet, dWr or ResNeXt scaling rules
    archc diff A B [overrides]                  two configs side by side
    archc profile CONFIG [overrides]            measured forward latency, per layer beside the predicted
    archc calibrate [--name NAME]               measure this machine: a hardware preset for the roofline
    archc rank SUMMARY.csv --latency COL        rank a search's or sweep's points by latency (MnasNet's reward)
    archc COMMAND -h                            a command's options (build: its config and groups)
    archc --version                             archc's version
    eval "$(archc -sc install=bash)"            tab completion in bash: commands, presets, config keys
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


BUILD_HELP = """usage: archc build CONFIG [overrides] [-m] [options]

Compile CONFIG (a bundled preset, conf/name, a .yaml file or an archc build
output folder) into a PyTorch module and its cost report, written with the
resolved config, the spec and a log (archc.log) to a new output folder.

  key=value            set a config key; params.x=v sets any parameter of the network
  group=option         choose an option of a config group
  -m, --multirun       a sweep: a,b,c  range(a,b)  choice(...)  -> one job (folder) per point
  --cfg job|hydra|all  print the composed config and stop (--resolve: interpolations resolved)
  --info               where Hydra looks for configs, and the defaults it composed
  --overwrite          write into an output folder that holds files (hydra.run.dir=, hydra.sweep.dir=)
  --hydra-help         Hydra's own options"""


def build_help(argv: list[str]) -> int:
    """archc build's help: the usage, then CONFIG's groups, parameters and composed config."""
    print(BUILD_HELP)
    args = [a for a in argv if a not in ("-h", "--help")]
    if not args or args[0].startswith("-"):
        return 0
    import yaml
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.object_type import ObjectType

    from archdsl.configs.compose import compose, locate, search_path_override
    from archdsl.explore.points import Base

    config_dir, name = locate(args[0])
    overrides = [a for a in args[1:] if "=" in a and not a.startswith("hydra")]
    print(f"\nConfig groups of {name} (group=option):")
    with initialize_config_dir(config_dir=str(config_dir), version_base="1.3"):
        loader = GlobalHydra.instance().config_loader()

        def options(group: str, kind=ObjectType.CONFIG) -> list[str]:
            return loader.get_group_options(group, results_filter=kind, config_name=name,
                                            overrides=search_path_override(config_dir))
        for group in [g for g in options("", ObjectType.GROUP) if g not in NOT_CONFIG_GROUPS + ("hydra",)]:
            print(f"  {group}: {', '.join(options(group))}")
        print(f"  hydra/launcher: {', '.join(options('hydra/launcher'))}  (-m: where the jobs run)")
    base = Base(args[0], overrides)
    values = base.values(base.param_names)
    print(f"\nParameters of network '{base.network.name}' (params.x=v; '?': computed from others):")
    print("  " + ", ".join(f"{k}={'?' if v is None else v}" for k, v in values.items()))
    data, _, _ = compose(args[0], overrides)
    print(f"\nConfig ({name}{' with ' + ' '.join(overrides) if overrides else ''}):")
    print(yaml.safe_dump(data, sort_keys=False).rstrip())
    return 0


def cmd_build(argv: list[str]) -> int:
    if any(a in ("-h", "--help") for a in argv):
        return build_help(argv)
    if not argv or argv[0].startswith("-"):
        print("usage: archc build CONFIG [hydra overrides] [-m]   (archc build -h: more)", file=sys.stderr)
        return EXIT_USER_ERROR
    overwrite = "--overwrite" in argv  # archc's own: write into a folder that holds files
    argv = [a for a in argv if a != "--overwrite"]
    from pathlib import Path

    import hydra
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf

    from archdsl.backends.units import fmt_seconds
    from archdsl.configs.compose import as_typed, locate, open_params, preflight, search_path_override

    config_dir, name = locate(argv[0])
    preflight(argv[0], argv[1:])  # config errors located here, not as Hydra's tracebacks
    results: list[dict] = []
    typed = argv[1:]

    multirun = any(a in ("-m", "--multirun") for a in argv[1:])

    @hydra.main(config_path=str(config_dir), config_name=name, version_base="1.3")
    def task(cfg) -> dict:
        from archdsl.build import completed, run_job  # here: --cfg, --info need no torch

        hc = HydraConfig.get()
        overrides = list(hc.overrides.task)
        shown = as_typed(overrides, typed)
        out = Path(hc.runtime.output_dir)
        label = f"[{' '.join(shown)}] " if shown else ""
        # A resumed sweep (same hydra.sweep.dir) keeps the jobs that finished.
        result = completed(out, overrides) if multirun else None
        if result is not None:
            _say(f"{label}{result['name']}: already built in {out}, skipped")
            results.append(result)
            return {k: v for k, v in result.items() if k in ("status", "params", "macs", "output_dir")}
        data = OmegaConf.to_container(cfg, resolve=True)
        result = run_job(data, name, overrides, out, config_dir, shown)
        results.append(result)
        if result["status"] == "ok":
            rl = ", ".join(f"{k} {fmt_seconds(v)}" for k, v in result["roofline_s"].items())
            _say(f"{label}{result['name']}: {result['params'] / 1e6:.3f} M params, "
                 f"{result['macs'] / 1e9:.3f} GMACs, {result['activations'] / 1e6:.2f} M activations\n"
                 f"  roofline: {rl}\n  wrote {', '.join(result['files'])} to {out}")
        else:
            _say(f"{label}failed:\n{result['error']}", error=True)
        return {k: v for k, v in result.items() if k in ("status", "params", "macs", "output_dir")}

    # Progress and the sweep summary come from a Hydra callback (archdsl/sweep.py).
    # The job is archc's (Hydra would name it, and its log, after this file);
    # its log holds what it printed (conf/hydra/job_logging/archc.yaml).
    # Its callbacks keep users' files (archdsl/explore/folders.py, sweep.py).
    extra = ["hydra.job.name=archc", "hydra/job_logging=archc", "hydra/hydra_logging=archc"]
    extra += ["hydra/callbacks=summary"] if multirun else ["hydra/callbacks=run_dir"]
    if overwrite:
        extra += ["+hydra.callbacks.summary.overwrite=true"] if multirun else ["hydra.callbacks.run_dir.overwrite=true"]
    saved = sys.argv
    sys.argv = ["archc build"] + _with_overrides(open_params(argv[1:]), search_path_override(config_dir) + extra)
    if multirun:
        from archdsl.explore import sweep
        from archdsl.explore.summary import failed as failed_rows
        sweep.LAST = None
    from archdsl.explore.folders import Refused
    try:
        task()
    except SystemExit as e:
        if e.code not in (0, None):
            return EXIT_USER_ERROR
    except Refused as r:  # a callback's: the folder holds someone's files
        return _fail(r.error)
    finally:
        sys.argv = saved
    if multirun and sweep.LAST is not None:  # read from disk: right whatever process ran the jobs
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


def _say(text: str, error: bool = False) -> None:
    """Print for the user, and log for the job's archc.log."""
    import logging
    print(text, file=sys.stderr if error else sys.stdout)
    if logging.getLogger().handlers:  # a job's log is set up (else logging would print it again)
        logging.getLogger("archc").log(logging.ERROR if error else logging.INFO, text)


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


def _out_folder(a: argparse.Namespace, kind: str, config: str) -> Path:
    """--out (default: <kind>/<config>/<date_time>); one that holds files only with --overwrite."""
    from archdsl.explore.summary import refuse_existing

    out = Path(a.out) if a.out else _default_out(kind, config)
    try:  # the folder the system will write into: `held/new/..` is `held`
        refuse_existing(Path(os.path.realpath(out)), a.overwrite)
    except ArchError as e:  # named by its option
        raise ArchError(f"--out: {e.message}", hint=e.hint) from None
    return out


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
    p.add_argument("--overwrite", action="store_true",
                   help="write into an --out folder that holds files (another sweep's are replaced)")
    _engine_options(p, "--cost-only: ")
    a = p.parse_intermixed_args(argv)
    if not a.cost_only and (a.engine != "local" or a.address):
        p.error("--engine and --address are for --cost-only (Hydra jobs: hydra/launcher=ray)")
    if not a.cost_only:
        extra = [f"hydra.sweep.dir={a.out}"] if a.out else []
        extra += [f"hydra.callbacks.summary.hardware={a.hardware}"] if a.hardware else []
        extra += ["--overwrite"] if a.overwrite else []
        return cmd_build([a.config, "-m", *a.overrides, *extra])
    from archdsl.explore import grid

    out = _out_folder(a, "sweeps", a.config)
    with _open_engine(a) as engine:
        rows, notes = grid.run(a.config, a.overrides, out, a.hardware, engine=engine)
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
    p.add_argument("--overwrite", action="store_true", help="write into an --out folder that holds files")
    p.add_argument("--hardware", help="hardware preset of the time plots (default a100)")
    _engine_options(p)
    a = p.parse_args(argv)
    if a.samples < 1 or a.keep < 0:
        p.error("--samples must be >= 1 and --keep >= 0")
    from archdsl.explore import search

    out = _out_folder(a, "searches", a.space)
    with _open_engine(a) as engine:
        rows, stats, notes = search.run(a.space, a.samples, a.keep or None, a.seed, out, a.hardware,
                                        engine=engine)
    for note in notes:
        print(note, file=sys.stderr)
    print(search.describe(stats))
    print(f"kept {len(rows)} configs in {out / 'configs'}; summary.csv, summary.json, histograms.png, "
          f"pareto.png in {out}")
    return 0


def _engine_options(p: argparse.ArgumentParser, prefix: str = "") -> None:
    from archdsl.explore.engines import ENGINES

    p.add_argument("--engine", choices=ENGINES, default="local",
                   help=f"{prefix}where points are evaluated: this process (local), or Ray tasks (ray); "
                   "results are the same")
    p.add_argument("--address", help="with --engine ray: the Ray cluster to join (host:port, or auto); "
                   "default: start Ray on this machine for the run")


def _open_engine(a: argparse.Namespace):
    from archdsl.explore.engines import open_engine

    return open_engine(a.engine, a.address)


def _numbers(text: str) -> list[float] | range:
    """'1,2,3' or '1..7' (integers) -> numbers (a range: `1..10**9` allocates nothing; scale checks the count)."""
    if ".." in text:
        lo, hi = text.split("..")
        return range(int(lo), int(hi) + 1)
    return [float(x) if "." in x else int(x) for x in text.split(",") if x]


def cmd_scale(argv: list[str]) -> int:
    p = argparse.ArgumentParser(
        prog="archc scale", description="Scaling rules: efficientnet (compound), dwr (Dollar et al. "
        "fast compound), resnext (iso-FLOP group width). Writes configs archc build runs.")
    p.add_argument("rule", choices=["efficientnet", "dwr", "resnext"])
    p.add_argument("config")
    p.add_argument("--out", help="output folder (default: scaled/<config>/<date_time>)")
    p.add_argument("--overwrite", action="store_true", help="write into an --out folder that holds files")
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

    out = _out_folder(a, "scaled", a.config)
    try:
        phis, factors, groups = _numbers(a.phi), _numbers(a.factor), _numbers(a.groups)
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
    for r in rows:  # whole, as `archc sweep --cost-only` gives them: the table has their first lines
        if r["status"] != "ok":
            print(f"[{r['point']}] failed:\n{r['error']}", file=sys.stderr)
    return EXIT_USER_ERROR if any(x["status"] != "ok" for x in rows) else 0


def cmd_cost(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="archc cost", description="Print the analytic cost report.")
    p.add_argument("config")
    p.add_argument("overrides", nargs="*")
    p.add_argument("--json", action="store_true", help="print the JSON report")
    p.add_argument("--layers", action="store_true",
                   help="every layer, as a table with a subtotal row for each block call")
    p.add_argument("--csv", action="store_true", help="every layer, as CSV (layers.csv)")
    p.add_argument("--top", type=int, metavar="K", help="the K heaviest layers (see --by)")
    p.add_argument("--by", choices=["macs", "bytes", "time"], default="macs",
                   help="--top's ranking: MACs, bytes moved or roofline time (default macs)")
    p.add_argument("--hardware", help="hardware preset of the time column (default a100)")
    p.add_argument("--memory", action="store_true",
                   help="inference peak and training memory per batch size (archdsl/backends/memory.py)")
    p.add_argument("--fit", metavar="SIZE", help="the largest training batch that fits, e.g. 16GB or 24GiB")
    p.add_argument("--optimizer", choices=["sgd", "adamw"], default="sgd",
                   help="--fit's optimizer: SGD with momentum or AdamW (default sgd)")
    p.add_argument("--training-macs", action="store_true",
                   help="per layer: forward, input-gradient and weight-gradient MACs of a training step (CSV)")
    p.add_argument("--guidelines", action="store_true",
                   help="ShuffleNet V2's guidelines G1-G4 per stage (time at --hardware, default the first preset)")
    a = p.parse_intermixed_args(argv)
    if a.top is not None and a.top < 1:
        p.error("--top must be >= 1")
    from archdsl.api import cost
    from archdsl.backends import views

    if a.memory or a.fit:
        return _cost_memory(p, a)
    if a.training_macs:
        from archdsl.api import compile
        from archdsl.backends import memory

        print("name,kind,forward,input_grad,weight_grad,total")
        for r in memory.training_macs(compile(a.config, a.overrides).spec):
            print(f"{r.name},{r.kind},{r.forward},{r.input_grad},{r.weight_grad},{r.total}")
        return 0
    if a.guidelines:
        from archdsl.backends import guidelines

        rep = cost(a.config, a.overrides)
        hw = next((h for h in rep.hardware if h.name == a.hardware), None) if a.hardware else (
            rep.hardware[0] if rep.hardware else None)
        if hw is None:
            p.error(f"--hardware: no preset '{a.hardware}' (presets: {', '.join(h.name for h in rep.hardware)})")
        print(guidelines.markdown(rep, hw))
        return 0
    rep = cost(a.config, a.overrides)
    if a.json:
        print(rep.to_json())
    elif a.csv:
        print(rep.to_csv(), end="")
    elif a.top is not None:
        print(views.top_layers(rep, a.top, a.by, a.hardware))
    elif a.layers:
        print(views.layer_table(rep, a.hardware))
    else:
        print(rep.to_markdown())
    return 0


def _cost_memory(p: argparse.ArgumentParser, a) -> int:
    """`archc cost --memory` and `--fit SIZE`."""
    from archdsl.api import compile
    from archdsl.backends import memory

    budget = None
    if a.fit:
        try:
            budget = memory.parse_bytes(a.fit)
        except ValueError as e:
            p.error(f"--fit: {e}")
    c = compile(a.config, a.overrides)
    params = c.report().total.params
    if a.memory:
        print(memory.markdown(c.spec, params, c.config.dtype))
    if budget is not None:
        print(memory.fit_line(c.spec, params, budget, c.config.dtype, a.optimizer))
    return 0


def cmd_diff(argv: list[str]) -> int:
    p = argparse.ArgumentParser(
        prog="archc diff", description="Two configs side by side: totals, per section, per block kind, "
        "and the config keys that differ.")
    p.add_argument("a", help="a config (as for archc cost)")
    p.add_argument("b", help="another config (or the same one, with -b overrides)")
    p.add_argument("overrides", nargs="*", help="overrides applied to both")
    p.add_argument("-a", dest="only_a", action="append", default=[], metavar="OVERRIDE",
                   help="an override for A only (repeatable)")
    p.add_argument("-b", dest="only_b", action="append", default=[], metavar="OVERRIDE",
                   help="an override for B only (repeatable)")
    a = p.parse_intermixed_args(argv)
    from archdsl.api import compile
    from archdsl.backends import views

    ca = compile(a.a, [*a.overrides, *a.only_a])
    cb = compile(a.b, [*a.overrides, *a.only_b])
    labels = tuple(" ".join([c, *o]) for c, o in ((a.a, a.only_a), (a.b, a.only_b)))
    print(views.diff(ca.report(), cb.report(), ca.config.model_dump(), cb.config.model_dump(), labels))
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


# ------------------------------------------------------------------ completion
_TAKES_CONFIGS = {"build": 1, "cost": 1, "sweep": 1, "diff": 2, "profile": 1}  # config arguments, then overrides


def shell_completion(argv: list[str]) -> int:
    """`-sc install=bash` prints Hydra's completion script, bound to `archc`;
    `-sc query=bash` (what the script runs on TAB) answers for archc's command line."""
    i = next(i for i, a in enumerate(argv) if a in ("-sc", "--shell-completion"))
    action, _, shell = (argv[i + 1] if i + 1 < len(argv) else "").partition("=")
    if action not in ("install", "uninstall", "query") or shell not in ("bash", "zsh"):
        print("usage: archc -sc install=SHELL | uninstall=SHELL   (SHELL: bash or zsh, which runs "
              "bash's)", file=sys.stderr)
        return EXIT_USER_ERROR
    if action == "query":
        print(" ".join(completions(os.environ.get("COMP_LINE", ""))))
        return 0
    from hydra._internal.core_plugins.bash_completion import BashCompletion

    saved = sys.argv
    sys.argv = ["archc"]  # Hydra binds the script to the command it was generated by
    try:
        getattr(BashCompletion(None), action)()
    finally:
        sys.argv = saved
    return 0


def completions(line: str) -> list[str]:
    """What TAB may put for the last word of the command line `line` ("archc build x par").

    Commands, then bundled config names, then Hydra's own completion of the
    config's keys and groups, plus every parameter of the network under params.
    An empty answer lets bash complete file names.
    """
    words = line.split()[1:]  # archc itself
    if not line or line[-1].isspace():
        words.append("")
    cur, before = words[-1], words[:-1]
    if not before:
        return [c for c in [*COMMANDS, "--help", "--version"] if c.startswith(cur)]
    if before[0] not in _TAKES_CONFIGS or cur.startswith("-"):
        return []
    configs = [a for a in before[1:] if not a.startswith("-") and "=" not in a]
    if len(configs) < _TAKES_CONFIGS[before[0]] and "=" not in cur:
        if "/" in cur:  # a path: bash's file names
            return []
        from archdsl.language.resources import conf_dir
        return sorted(f.stem for f in conf_dir().glob(f"{cur}*.yaml") if f.stem != "base")
    try:
        return _key_completions(configs[0], [a for a in before[1:] if "=" in a], cur)
    except ArchError:  # no such config: nothing to propose
        return []


def _key_completions(config: str, overrides: list[str], cur: str) -> list[str]:
    from hydra import initialize_config_dir
    from hydra._internal.core_plugins.bash_completion import BashCompletion
    from hydra.core.global_hydra import GlobalHydra

    from archdsl.configs.compose import locate, open_params, search_path_override

    config_dir, name = locate(config)
    words = search_path_override(config_dir) + open_params(overrides)
    with initialize_config_dir(config_dir=str(config_dir), version_base="1.3"):
        query = BashCompletion(GlobalHydra.instance().config_loader())
        found = set(query._query(config_name=name, line=" ".join(words) + " " + cur))
    found -= {g for g in found if g.split("/")[0].split("=")[0].lstrip("+~") in NOT_CONFIG_GROUPS}
    if cur.startswith("params.") and "=" not in cur:  # archc takes any parameter of the network
        found |= {f"params.{n}=" for n in _param_names(config, overrides) if f"params.{n}".startswith(cur)}
    return sorted(found)


def _param_names(config: str, overrides: list[str]) -> list[str]:
    """The network's parameters, read from its spec alone (completion imports no torch)."""
    from archdsl.configs.compose import compose
    from archdsl.language.program import find_recipe, load_program

    data, _, config_dir = compose(config, [o for o in overrides if not o.startswith("params.")])
    roots = [config_dir.parent, config_dir]  # as api.compile_config looks
    program = load_program(find_recipe(str(data["recipe"]), roots), roots)
    return [p.name for p in program.network(data.get("network")).params]


# Folders of conf/ that hold no config group: `archc search`'s design spaces.
NOT_CONFIG_GROUPS = ("spaces",)


def cmd_profile(argv: list[str]) -> int:
    p = argparse.ArgumentParser(
        prog="archc profile", description="Build the module, measure its forward latency (warm-up, then "
        "medians) in total and per layer (torch.profiler), and write it beside the roofline's prediction "
        "per layer and per op class, with a log-log plot.")
    p.add_argument("config")
    p.add_argument("overrides", nargs="*")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1; 0: torch's default)")
    p.add_argument("--dtype", choices=["fp32", "bf16", "fp16"], default="fp32")
    p.add_argument("--channels-last", action="store_true", help="channels-last weights and inputs")
    p.add_argument("--deploy", action="store_true", help="the deployed graph (BN folded, branches fused)")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--runs", type=int, default=20, help="timed forward passes (the median is reported)")
    p.add_argument("--hardware", help="the preset that predicts (default: the calibrated "
                   "<device>_<threads>t if `archc calibrate` wrote one, else the config's first)")
    p.add_argument("--out", help="output folder (default: profiles/<config>/<date_time>)")
    a = p.parse_intermixed_args(argv)
    if a.batch < 1 or a.runs < 1 or a.warmup < 0 or a.threads < 0:
        p.error("--batch and --runs must be >= 1, --warmup and --threads >= 0")
    from archdsl.explore import measure

    out = Path(a.out) if a.out else _default_out("profiles", a.config)
    prof, notes = measure.profile(a.config, a.overrides, a.batch, a.threads, a.dtype, a.channels_last, a.deploy,
                                  a.device, a.warmup, a.runs, a.hardware, out)
    for note in notes:
        print(note, file=sys.stderr)
    t = prof.total
    print(f"{prof.name}: {t.median * 1e3:.3f} ms median (batch {prof.batch}, {prof.threads} thread(s), "
          f"{prof.dtype}); predicted at {prof.hardware.name}: {prof.predicted_s * 1e3:.3f} ms")
    print(f"wrote profile.md, layers.csv, classes.csv, predicted_vs_measured.png to {out}")
    return 0


def cmd_calibrate(argv: list[str]) -> int:
    p = argparse.ArgumentParser(
        prog="archc calibrate", description="Measure this machine with micro-benchmarks (peak MAC/s, "
        "bandwidth, per-class kernel efficiency, per-layer overhead) and write a hardware preset: "
        "choose it with hardware=NAME.")
    p.add_argument("--name", help="preset name (default <device>_<threads>t, e.g. cpu_1t)")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1; 0: torch's default)")
    p.add_argument("--dtype", choices=["fp32", "bf16", "fp16"], default="fp32")
    p.add_argument("--out", help="the YAML file to write (default: <user config folder>/hardware/NAME.yaml)")
    a = p.parse_args(argv)
    import re

    from archdsl.explore import measure

    name = a.name or f"{a.device.split(':')[0]}_{a.threads or 'all'}t"
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        p.error(f"--name: '{name}' must be a word (letters, digits, _), as hardware=NAME reads it")
    path = measure.calibrate(name, a.device, a.threads, a.dtype, Path(a.out) if a.out else None,
                             log=lambda s: print("  " + s, file=sys.stderr))
    print(f"wrote {path}; use it with hardware={name} (e.g. archc cost CONFIG hardware={name})")
    return 0


def cmd_rank(argv: list[str]) -> int:
    p = argparse.ArgumentParser(
        prog="archc rank", description="Constraints and objectives on latency over a search's or sweep's "
        "summary.csv: the fastest first, or MnasNet's reward ACC * (LAT/T)^w given an accuracy column.")
    p.add_argument("summary", help="a summary.csv (archc search, archc sweep [--cost-only])")
    p.add_argument("--latency", required=True, help="its latency column, e.g. time_cpu_1t_s (a calibrated preset)")
    p.add_argument("--accuracy", help="an accuracy column: rank by MnasNet's weighted product")
    p.add_argument("--target", type=float, help="MnasNet's target latency T, in seconds")
    p.add_argument("--alpha", type=float, default=-0.07, help="w when LAT <= T (default -0.07)")
    p.add_argument("--beta", type=float, default=-0.07, help="w when LAT > T (default -0.07; hard constraint: -1)")
    p.add_argument("--max", action="append", default=[], metavar="COL=V", help="keep rows with COL <= V")
    p.add_argument("--min", action="append", default=[], metavar="COL=V", help="keep rows with COL >= V")
    p.add_argument("--keep", type=int, default=0, help="rows to keep (default all)")
    p.add_argument("--out", help="output folder (default: next to the summary)")
    a = p.parse_args(argv)
    from archdsl.explore import rank

    rows = rank.rank(rank.read(Path(a.summary)), a.latency, a.accuracy, a.target, a.alpha, a.beta, a.max, a.min)
    rows = rows[:a.keep] if a.keep > 0 else rows
    out = Path(a.out) if a.out else Path(a.summary).parent
    rank.write(rows, out, a.latency, a.accuracy)
    for r in rows[:10]:
        print(f"{r.get('name') or r.get('job')}: objective {r['objective']:.5g}, {a.latency} {r[a.latency] * 1e3:.3f} ms")
    print(f"{len(rows)} rows kept; ranked.csv, pareto_latency.png in {out}")
    return 0


COMMANDS = {"build": cmd_build, "cost": cmd_cost, "diff": cmd_diff, "check": cmd_check, "presets": cmd_presets,
            "sweep": cmd_sweep, "search": cmd_search, "scale": cmd_scale, "profile": cmd_profile,
            "calibrate": cmd_calibrate, "rank": cmd_rank}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    saved = sys.stdout
    sys.stdout = _ClosedPipeSafe(saved)  # Hydra prints too, and reports what it catches
    try:
        return _dispatch(argv)
    except ArchError as e:
        return _fail(e)
    except BrokenPipeError:  # `archc ... | head`: the reader left; nothing more to say
        _drop_stdout()
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
    finally:
        sys.stdout = saved


def _dispatch(argv: list[str]) -> int:
    if any(a in ("-sc", "--shell-completion") for a in argv):  # wherever Hydra users put it
        return shell_completion(argv)
    if argv[:1] in (["--version"], ["-V"]):
        from importlib.metadata import PackageNotFoundError, version
        try:
            print(f"archc {version('archdsl')}")
        except PackageNotFoundError:  # run from a source tree that pip never installed
            print("archc (not installed: no version)")
        return 0
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        print(__doc__.strip())
        return 0 if argv and argv[0] in ("-h", "--help") else EXIT_USER_ERROR
    return COMMANDS[argv[0]](argv[1:])


class _ClosedPipeSafe:
    """stdout whose reader may leave (`archc ... | head`): from then on, output goes nowhere."""

    def __init__(self, stream):
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except BrokenPipeError:
            _drop_stdout()
            return len(text)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            _drop_stdout()

    def __getattr__(self, name: str):
        return getattr(self._stream, name)


def _drop_stdout() -> None:
    """Point stdout at /dev/null, so that the interpreter's last flush has nowhere to fail."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # no real stdout (captured): nothing will be flushed to a pipe
        pass


def entry() -> None:
    status = main()
    try:
        sys.stdout.flush()  # here, not at exit, where a closed pipe would print a traceback
    except BrokenPipeError:
        _drop_stdout()
    sys.exit(status)
