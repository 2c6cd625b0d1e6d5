"""Shared pieces of the benchmarks: presets, reference models, timing, results.

Every benchmark measures archc and its reference side by side in the same
process, alternating the two within each round (A B, then B A, ...), and
reports medians of paired per-round ratios, so slow drift on a noisy machine
hits both sides alike.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"

# Both sides always run with the same torch thread count. The default is 1:
# on a 2-core machine shared with other jobs, 2 intra-op threads make a forward
# pass stall on thread barriers (resnet18 batch 1 measured 28 ms with 1 thread,
# 200-960 ms with 2 while another process ran), which swamps any difference.
DEFAULT_THREADS = 1

# One preset per family: what the benchmarks run when --presets is not given
# (load and latency as is; cost_vs_flopcounter swaps in its goal preset).
DEFAULT_PRESETS = ["resnet50", "regnety_080", "efficientnet_b0", "mobilenetv2_100", "shufflenet_v2_x1_0",
                   "repvgg_a0"]

# Presets whose reference model has another name.
REF_ALIASES = {"regnety_8gf": "regnety_080"}


# ---------------------------------------------------------------- presets

def available_presets() -> list[str]:
    """The bundled presets present right now (what `archc presets` lists)."""
    from archdsl.language.resources import conf_dir

    return sorted(p.stem for p in conf_dir().glob("*.yaml") if p.stem != "base")


def select_presets(requested: str | None, default: list[str] | None = None) -> tuple[list[str], list[str]]:
    """(presets to run, requested ones that do not exist). `requested`: 'a,b', 'all' or None."""
    have = available_presets()
    if requested == "all":
        return have, []
    want = [p.strip() for p in requested.split(",") if p.strip()] if requested else (default or have)
    return [p for p in want if p in have], [p for p in want if p not in have]


# ---------------------------------------------------------------- references

def reference_name(preset: str) -> tuple[str, str]:
    """(library, model name) of a preset's reference: timm, or torchvision for ShuffleNetV2."""
    name = REF_ALIASES.get(preset, preset)
    if name.startswith("shufflenet_v2_x"):
        return "torchvision", name
    return "timm", name


def reference_label(preset: str) -> str:
    lib, name = reference_name(preset)
    return f"{lib}:{name}"


def has_reference(preset: str) -> bool:
    lib, name = reference_name(preset)
    if lib == "torchvision":
        import torchvision

        return name in torchvision.models.list_models()
    import timm

    return timm.is_model(name)


def build_reference(preset: str, device: str | None = None):
    """The reference module with default (random) init, as a user would build it."""
    lib, name = reference_name(preset)
    if lib == "torchvision":
        import torchvision

        if device is None:
            return torchvision.models.get_model(name, weights=None)
        import torch

        with torch.device(device):
            return torchvision.models.get_model(name, weights=None)
    import timm

    if device is None:
        return timm.create_model(name, pretrained=False)
    import torch

    with torch.device(device):
        return timm.create_model(name, pretrained=False)


def latency_setup(description: str, default: list[str], argv: list[str] | None = None):
    """The shared start of the latency benchmarks: options (incl. --batches),
    thread count, environment, denormals flushed, presets chosen.
    Returns (args, threads, env, batches, presets, missing)."""
    p = parser(description, default)
    p.add_argument("--batches", default="1,8", help="comma-separated batch sizes (default: 1,8)")
    args = p.parse_args(argv)
    threads = set_threads(args.threads)
    env = environment()  # at the start: the commit measured
    import torch

    torch.set_flush_denormal(True)
    batches = [int(b) for b in args.batches.split(",")]
    presets, missing = select_presets(args.presets, default)
    return args, threads, env, batches, presets, missing


def measure_each(presets: list[str], measure: Callable[[str], list[dict]],
                 needs_reference: bool = True) -> tuple[list[dict], dict[str, str], dict[str, str]]:
    """Run `measure(preset)` (which returns result rows) for each preset in turn.

    A preset without a reference is skipped and one that fails is recorded, so
    the others still run. Returns (rows, errors, skipped)."""
    rows: list[dict] = []
    errors: dict[str, str] = {}
    skipped: dict[str, str] = {}
    for p in presets:
        if needs_reference and not has_reference(p):
            skipped[p] = f"no reference model {reference_label(p)}"
            log(f"{p}: skipped ({skipped[p]})")
            continue
        log(f"{p} ...")
        collect()
        try:
            rows += measure(p)
        except Exception as e:  # noqa: BLE001 - report a broken preset, measure the rest
            errors[p] = f"{type(e).__name__}: {e}"
            log(f"{p}: ERROR {errors[p]}")
    return rows, errors, skipped


def count_macs(module, input_shape, device: str = "cpu") -> int:
    """MACs of one batch-1 forward pass as FlopCounterMode counts them (FLOPs / 2)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    module.eval()
    x = torch.zeros((1, *input_shape), device=device)
    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        module(x)
    return fc.get_total_flops() // 2


def n_params(module) -> int:
    return sum(p.numel() for p in module.parameters())


def input_shape(preset: str) -> tuple[int, ...]:
    """The preset's input (C, H, W), from its elaborated spec."""
    import archdsl

    return tuple(archdsl.compile(preset).spec.in_shape)


# ---------------------------------------------------------------- timing

def timed(fn: Callable[[], object]) -> float:
    """Seconds one call of `fn` takes.

    The garbage collector is left alone: collections during a call are part
    of its cost as a user sees it, and a forced gc.collect() per measurement
    costs ~0.2 s once torch and timm are loaded (medians absorb the rare
    gen-2 collection). Call `collect()` between presets instead.
    """
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


# glibc's malloc keeps freed memory for reuse, unless it lies at the top of
# the heap (then it goes back to the OS). Which side of an A/B pair inherits
# the other's freed pages depends on what each left allocated last: measured
# on ghostnet_100, whichever tool ran second-after-the-other skipped ~2,800
# page faults (~7 ms) and the other paid them, flipping with the order. A
# load in a new process always pays them. `fresh_heap()` returns every free
# page first (malloc_trim(0)), so both sides start as a new process would.
def _malloc_trim():
    try:
        import ctypes
        import ctypes.util

        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):  # not glibc: nothing to equalize this way
        return None
    trim.argtypes = [ctypes.c_size_t]
    return trim


_TRIM = _malloc_trim() if sys.platform.startswith("linux") else None
HEAP_TRIM_AVAILABLE = _TRIM is not None


def fresh_heap() -> None:
    """Collect garbage, then give freed heap pages back to the OS (outside any
    timing; the trim is a no-op off glibc). The collection also resets the
    collector's counters, so a timed call's own allocations decide which
    collections run inside it, as in a new process (see freeze_preloaded)."""
    gc.collect()
    if _TRIM is not None:
        _TRIM(0)


# A full (generation-2) collection scans every object the process holds: with
# torch, timm and torchvision loaded, ~200 ms. When one fell inside a timed
# call depended on what earlier calls had left counted (measured: 2 of 3 cold
# loads of efficientnet_b7 took 460 ms instead of 262 ms, 200 ms of it in one
# such collection). Benchmarks that time single builds freeze what is loaded
# before they start, so a collection costs only what the calls themselves
# made, and fresh_heap() collects before each call, so none is left pending.
def freeze_preloaded() -> None:
    """Put every object alive now (imported libraries, the harness) out of the collector's scans."""
    gc.collect()
    gc.freeze()


def minor_faults() -> int:
    """Minor page faults of this process so far (pages first touched)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def timed_fresh_heap(fn: Callable[[], object], faults: list[int] | None = None,
                     setup: Callable[[], object] | None = None) -> float:
    """`timed(fn)` from a collected, trimmed heap (see fresh_heap), after `setup()` (untimed);
    appends the call's page faults to `faults`."""
    if setup is not None:
        setup()
    fresh_heap()
    f = minor_faults()
    s = timed(fn)
    if faults is not None:
        faults.append(minor_faults() - f)
    return s


def timed_loop(fn: Callable[[], object], n: int) -> float:
    """Seconds per call of `fn`, averaged over `n` back-to-back calls."""
    t = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t) / n


def collect() -> None:
    """Free the previous preset's models before the next one (outside any timing)."""
    gc.collect()


def interleave(fns: dict[str, Callable[[], float]], rounds: int, warmup: int = 1) -> dict[str, list[float]]:
    """Run each measurement once per round, rotating the order each round.

    Each fn returns the seconds it measured (so it can time one call, or a
    loop). Warm-up rounds are run and dropped. Returns {name: [seconds per round]}.
    """
    names = list(fns)
    out = {n: [] for n in names}
    for r in range(warmup + rounds):
        k = r % len(names)
        order = names[k:] + names[:k]
        if r % 2:
            order = order[::-1]
        for n in order:
            s = fns[n]()
            if r >= warmup:
                out[n].append(s)
    return out


def median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def quartiles(xs: list[float]) -> tuple[float, float]:
    """(25th, 75th) percentiles; equal to the median for fewer than 2 samples."""
    if len(xs) < 2:
        m = median(xs)
        return m, m
    q = statistics.quantiles(xs, n=4, method="inclusive")
    return q[0], q[2]


def paired_ratio(num: list[float], den: list[float]) -> dict:
    """Median, 25th and 75th percentile of per-round ratios num[i] / den[i]."""
    rs = [a / b for a, b in zip(num, den) if b > 0]
    lo, hi = quartiles(rs)
    return {"median": median(rs), "p25": lo, "p75": hi, "n": len(rs)}


def summary(xs: list[float]) -> dict:
    lo, hi = quartiles(xs)
    return {"median": median(xs), "p25": lo, "p75": hi, "min": min(xs) if xs else float("nan"), "n": len(xs)}


# ---------------------------------------------------------------- CLI, output

def parser(description: str, default_presets: list[str] | None = None) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    default = ",".join(default_presets) if default_presets else "every preset present"
    p.add_argument("--presets", help=f"comma-separated preset names, or 'all' (default: {default})")
    p.add_argument("--quick", action="store_true", help="fewer repeats (a smoke run; noisier figures)")
    p.add_argument("--threads", type=int, default=DEFAULT_THREADS,
                   help=f"torch threads for both sides (default {DEFAULT_THREADS}; 0: torch's default)")
    p.add_argument("--no-write", action="store_true", help="print only; leave bench/results alone")
    return p


def set_threads(n: int | None) -> int:
    import torch

    if n:
        torch.set_num_threads(n)
    return torch.get_num_threads()


def environment() -> dict:
    import torch

    env = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
        "processor": _cpu_name(),
        "when": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    for mod in ("timm", "torchvision", "archdsl"):
        try:
            env[mod] = __import__(mod).__version__
        except Exception:  # noqa: BLE001 - informational only
            env[mod] = None
    try:
        env["git_commit"] = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=BENCH_DIR,
                                           capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "archdsl", "conf", "recipes", "blocks"],
                               cwd=BENCH_DIR.parent, capture_output=True, text=True, timeout=10).stdout
        env["git_dirty"] = bool(dirty.strip())
    except Exception:  # noqa: BLE001
        env["git_commit"] = None
    return env


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def fmt_time(s: float) -> str:
    if s != s:  # nan
        return "-"
    if s >= 1:
        return f"{s:.2f} s"
    if s >= 1e-3:
        return f"{s * 1e3:.2f} ms"
    return f"{s * 1e6:.0f} us"


def fmt_ratio(r: float, digits: int = 2) -> str:
    return "-" if r != r else f"{r:.{digits}f}"


def markdown_table(headers: list[str], rows: list[list[object]]) -> str:
    cells = [[str(c) for c in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    line = lambda r: "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |"  # noqa: E731
    return "\n".join([line(headers), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
                     + [line(r) for r in cells])


def listing(names: list[str], shown: int = 6) -> str:
    """'a, b, c, ...' — at most `shown` names for a table cell (the JSON has them all)."""
    return ", ".join(names[:shown]) + (", ..." if len(names) > shown else "")


def verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("PASS" if ok else "FAIL")


def not_measured(missing: list[str], problems: dict[str, str]) -> list[str]:
    """The closing "Not measured" section of a results page (empty when all ran)."""
    if not missing and not problems:
        return []
    return (["", "## Not measured", ""] + [f"- {p}: no such preset (yet)" for p in missing]
            + [f"- {p}: {why}" for p, why in problems.items()])


def write_results(name: str, data: dict, markdown: str, no_write: bool = False) -> None:
    """Print the markdown; write bench/results/<name>.json and .md."""
    print(markdown, flush=True)
    if no_write:
        return
    RESULTS_DIR.mkdir(exist_ok=True)
    (RESULTS_DIR / f"{name}.json").write_text(json.dumps(_clean(data), indent=2, default=str) + "\n")
    (RESULTS_DIR / f"{name}.md").write_text(markdown + "\n")
    print(f"\nwrote {RESULTS_DIR / name}.json and .md", file=sys.stderr)


def _clean(o):
    """JSON-ready: NaN -> null, tuples -> lists."""
    if isinstance(o, float) and o != o:
        return None
    if isinstance(o, dict):
        return {str(k): _clean(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_clean(v) for v in o]
    return o


def env_markdown(env: dict, argv: list[str]) -> str:
    return (f"`python {' '.join(argv)}` — {env['when']}, commit {env.get('git_commit')}"
            f"{' (+ uncommitted core changes)' if env.get('git_dirty') else ''}; "
            f"{env['processor']} ({env['cpu_count']} cores), torch {env['torch']} "
            f"({env['threads']} threads), timm {env['timm']}, torchvision {env['torchvision']}, "
            f"Python {env['python']}")


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)
