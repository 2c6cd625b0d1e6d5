"""What each cache archc keeps is worth, in the workflow it serves.

Each cache (archdsl/language/caches.py lists them) is timed on and off in
the same run, alternating, on the workflow it exists for:

  new process    `archdsl.cost(preset)` in a fresh interpreter: the on-disk
                 parse cache (trees and YAML) warm vs ARCHDSL_NO_CACHE=1, and
                 lark's LALR tables stored vs built (an empty cache folder)
  sweep          `archdsl.cost(preset, overrides)` over configs a sweep would
                 visit, in one process: each in-process cache kept vs never
                 storing anything (the others kept)
  compose        quick_compose vs Hydra's compose API on the same configs

    python bench/cache_gains.py [--rounds 5]
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import write_results  # noqa: E402

PRESETS = ["resnet50", "efficientnet_b0", "regnetx_016", "mobilenetv4_conv_medium"]
# A sweep's configs: the same recipe at other widths and depths.
SWEEP = {
    "regnetx_016": [[f"params.depth={d}", f"params.wm={wm}"] for d in (14, 18, 22) for wm in (2.2, 2.5, 2.8)],
    "efficientnet_b0": [[f"params.width_mult={w}", f"params.depth_mult={d}"] for w in (1.0, 1.1, 1.2) for d in (1.0, 1.2, 1.4)],
}


class _NoStore(dict):
    """A cache that never keeps anything: the work is done on every call."""

    def __setitem__(self, key, value):
        pass


def _in_process_caches():
    from archdsl.compiler import elaborate
    from archdsl.configs import quick_compose
    from archdsl.language import program

    return {  # name: (module, global)
        "parsed files (program)": (program, "_CACHE"),
        "config YAML data (quick_compose)": (quick_compose, "_YAML"),
        "block memo (elaborate)": (elaborate, "_MEMOS"),
        "layer memo (elaborate)": (elaborate, "_LAYERS"),
    }


def _sweep_time(rounds: int) -> dict[str, tuple[float, float]]:
    import archdsl
    from archdsl.language.caches import forget

    def one_pass() -> float:
        t = time.perf_counter()
        n = 0
        for preset, grid in SWEEP.items():
            for ov in grid:
                archdsl.cost(preset, ov)
                n += 1
        return (time.perf_counter() - t) / n

    out = {}
    for name, (mod, attr) in _in_process_caches().items():
        kept, dropped = [], []
        original = getattr(mod, attr)
        for _ in range(rounds):
            forget()
            one_pass()  # warm: a sweep's later configs are what it serves
            kept.append(one_pass())
            setattr(mod, attr, _NoStore())
            try:
                dropped.append(one_pass())
            finally:
                setattr(mod, attr, original)
        out[name] = (statistics.median(kept), statistics.median(dropped))
    return out


def _fresh_process(preset: str, env: dict) -> float:
    code = ("import time, archdsl; t = time.perf_counter(); archdsl.cost(%r); "
            "print(time.perf_counter() - t)" % preset)
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return float(r.stdout.strip().splitlines()[-1])


def _process_time(rounds: int) -> dict[str, dict[str, float]]:
    base = dict(os.environ, OMP_NUM_THREADS="1")
    warm_dir = tempfile.mkdtemp(prefix="archdsl-cache-")
    out = {}
    for preset in PRESETS:
        _fresh_process(preset, dict(base, ARCHDSL_CACHE_DIR=warm_dir))  # fill the cache
        t = {"warm": [], "no parse cache": [], "nothing cached": []}
        for _ in range(rounds):
            t["warm"].append(_fresh_process(preset, dict(base, ARCHDSL_CACHE_DIR=warm_dir)))
            t["no parse cache"].append(_fresh_process(preset, dict(base, ARCHDSL_CACHE_DIR=warm_dir,
                                                                   ARCHDSL_NO_CACHE="1")))
            t["nothing cached"].append(_fresh_process(preset, dict(base, ARCHDSL_CACHE_DIR=tempfile.mkdtemp())))
        out[preset] = {k: statistics.median(v) for k, v in t.items()}
    return out


def _compose_time(rounds: int) -> dict[str, tuple[float, float]]:
    from archdsl.configs.compose import hydra_compose, locate, open_params
    from archdsl.configs.quick_compose import quick_compose
    from archdsl.language.caches import forget
    from archdsl.language.resources import conf_dir

    out = {}
    for preset in PRESETS:
        d, name = locate(preset)
        ov = open_params([])
        quick, hydra = [], []
        for _ in range(rounds):
            forget()
            t = time.perf_counter()
            assert quick_compose(d, name, ov, conf_dir()) is not None
            quick.append(time.perf_counter() - t)
            t = time.perf_counter()
            hydra_compose(d, name, ov)
            hydra.append(time.perf_counter() - t)
        out[preset] = (statistics.median(quick), statistics.median(hydra))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    sweep, proc, comp = _sweep_time(args.rounds), _process_time(args.rounds), _compose_time(args.rounds)
    lines = ["# Cache gains", "", f"Medians of {args.rounds} rounds, this machine, 1 torch thread.", "",
             "## A sweep in one process (per config, `archdsl.cost(preset, overrides)`, 18 configs)", "",
             "| cache | kept | never stored | gain |", "|---|---:|---:|---:|"]
    for name, (k, d) in sweep.items():
        lines.append(f"| {name} | {k * 1e3:.2f} ms | {d * 1e3:.2f} ms | {d / k:.2f}x |")
    lines += ["", "## A new process (`archdsl.cost(preset)`, first call)", "",
              "| preset | warm | no parse cache | nothing cached (lark builds its tables) |", "|---|---:|---:|---:|"]
    for p, t in proc.items():
        lines.append(f"| {p} | {t['warm'] * 1e3:.1f} ms | {t['no parse cache'] * 1e3:.1f} ms | "
                     f"{t['nothing cached'] * 1e3:.1f} ms |")
    lines += ["", "## Composing a preset (YAML read, no in-process cache)", "",
              "| preset | quick_compose | Hydra compose API | gain |", "|---|---:|---:|---:|"]
    for p, (q, h) in comp.items():
        lines.append(f"| {p} | {q * 1e3:.2f} ms | {h * 1e3:.2f} ms | {h / q:.0f}x |")
    text = "\n".join(lines) + "\n"
    write_results("cache_gains", {"sweep": sweep, "process": proc, "compose": comp}, text)


if __name__ == "__main__":
    main()
