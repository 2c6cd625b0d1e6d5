"""archc: the command line.

    archc build CONFIG [hydra overrides] [-m]   compile, write report + weights
    archc cost CONFIG [overrides] [--json]      print the analytic cost report
    archc check FILE.arch ...                   parse and validate only
    archc presets                               list the bundled configs
"""
from __future__ import annotations

import argparse
import json
import os
import sys

from .errors import ArchError

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

    from .build import run_job
    from .config import locate, open_params, search_path_override

    config_dir, name = locate(argv[0])
    results: list[dict] = []

    @hydra.main(config_path=str(config_dir), config_name=name, version_base="1.3")
    def task(cfg) -> dict:
        hc = HydraConfig.get()
        overrides = list(hc.overrides.task)
        data = OmegaConf.to_container(cfg, resolve=True)
        out = Path(hc.runtime.output_dir)
        result = run_job(data, name, overrides, out, config_dir)
        results.append(result)
        label = f"[{' '.join(overrides)}] " if overrides else ""
        if result["status"] == "ok":
            rl = ", ".join(f"{k} {v * 1e3:.3f} ms" for k, v in result["roofline_s"].items())
            print(f"{label}{result['name']}: {result['params'] / 1e6:.3f} M params, "
                  f"{result['macs'] / 1e9:.3f} GMACs, {result['activations'] / 1e6:.2f} M activations\n"
                  f"  roofline: {rl}\n  wrote {', '.join(result['files'])} to {out}")
        else:
            print(f"{label}failed:\n{result['error']}", file=sys.stderr)
        return {k: v for k, v in result.items() if k in ("status", "params", "macs", "output_dir")}

    saved = sys.argv
    sys.argv = ["archc build"] + open_params(argv[1:]) + search_path_override(config_dir)
    try:
        task()
    except SystemExit as e:
        if e.code not in (0, None):
            return EXIT_USER_ERROR
    finally:
        sys.argv = saved
    failed = sum(r["status"] != "ok" for r in results)
    if len(results) > 1:
        print(f"{len(results) - failed}/{len(results)} jobs succeeded")
    return EXIT_USER_ERROR if failed else 0


def cmd_cost(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="archc cost", description="Print the analytic cost report.")
    p.add_argument("config")
    p.add_argument("overrides", nargs="*")
    p.add_argument("--json", action="store_true", help="print the JSON report")
    p.add_argument("--layers", action="store_true", help="print the per-layer CSV")
    a = p.parse_args(argv)
    from .api import cost

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
    from .check import check_file

    for f in a.files:
        for note in check_file(f):
            print(note)
    return 0


def cmd_presets(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="archc presets", description="List the bundled configs.")
    p.add_argument("--table", action="store_true", help="a markdown table of their costs")
    a = p.parse_args(argv)
    from .resources import conf_dir

    names = sorted(f.stem for f in conf_dir().glob("*.yaml") if f.stem != "base")
    if not a.table:
        print("\n".join(names))
        return 0
    from .api import compile

    print("| preset | recipe | input | params | GMACs | activations (M) |")
    print("|---|---|---|---:|---:|---:|")
    for n in names:
        c = compile(n)
        t = c.report().total
        print(f"| {n} | {c.config.recipe} | {'x'.join(map(str, c.spec.in_shape[1:]))} | "
              f"{t.params:,} | {t.macs / 1e9:.3f} | {t.activations / 1e6:.2f} |")
    return 0


COMMANDS = {"build": cmd_build, "cost": cmd_cost, "check": cmd_check, "presets": cmd_presets}


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
