"""Every cache archc keeps: the workflow each serves, what it measured, and
how to make a process forget.

Measured by bench/cache_gains.py (bench/results/cache_gains.md: this
2-core machine, 1 torch thread), each cache on vs off in the same run.

On disk (in $ARCHDSL_CACHE_DIR, else $XDG_CACHE_HOME/archdsl, else
~/.cache/archdsl; never next to the specs):

- Parse cache (parsecache.py): each .arch file's syntax tree and each config
  YAML file's data, as JSON, keyed by a hash of the text and of the code that
  reads it. Serves every new process — each `archc build`, each sweep job a
  launcher starts, each notebook restart. First `archdsl.cost(preset)` of a
  process: 7-11 ms warm vs 27-56 ms parsing (resnet50, efficientnet_b0,
  regnetx_016, mobilenetv4_conv_medium). ARCHDSL_NO_CACHE=1 turns it off.
- Parse-cache entries are read only from a folder of the user's own that no
  one else may write, only as regular files (no links, FIFOs, devices), and
  must carry the hash of the text they stand for (parsecache.py).

In the package: lark's LALR tables (lalr_tables.py), as plain Python data, not
lark's pickle cache (a pickle runs code when loaded). Serves the first parse of
a process: 210-280 ms without them (lark builds its tables).

In the process (made with `process_cache(stage)`, emptied by `forget()`):

- Parsed files ("read", program.py) by path and modification time. Serves
  sweeps, grids and searches run in one process, and repeated loads in a
  notebook: a sweep's config costs 0.89 ms with it, 9.3 ms without (10x).
- Config YAML data ("read", configs/quick_compose.py) by path and
  modification time. Same workflows: 1.26x per config.
- Block memo ("elaborated", compiler/elaborate.py): elaborated block bodies
  by (block, input shape, arguments). Serves every compile (equal blocks of
  one network are elaborated once) and sweeps (configs share most blocks):
  1.66x per sweep config. Beside it, sections (stem, stages, head) by
  (statement, index, input shape, the values of the names they read), each
  with its cost rows for sums: a search's networks share about half their
  stages (RegNetX points: 20 block calls a point became 14; ~1.08x).
- Layer memo ("elaborated", compiler/elaborate.py), by op and argument
  values: the validated attributes (pydantic checks each distinct layer
  once; 1.03-1.16x on a config never elaborated before) and the IR op made
  on each input shape — an equal op on an equal input is one node, as equal
  block calls share one body. Serves design-space searches and grids, whose
  configs share most layers even where their blocks differ: random RegNetX
  points ~1.6x per config, presets never elaborated before 1.04-1.07x.
- The block memo drops its least recently used quarter when full (32,768
  bodies); the section memo, the layer memo and the op memo their oldest
  quarter (8,192 sections; 16,384 layers; 65,536 ops, each a layer on one
  input shape: bn and relu, one layer each, meet every shape of a network),
  so a long search keeps its recent, most shared entries.
- Programs whose names and parameter types were checked ("read",
  compiler/elaborate.py): a property of the parsed files, checked once.

Not a cache but in the same spirit: quick_compose merges plain configs
without building Hydra's config tree (0.4 ms vs Hydra's compose API's
56-67 ms); Hydra composes anything it cannot follow exactly.

Two earlier caches went, as they served no workflow measurably: per-layer
costs (1.01x on a sweep; tried again keyed by shared op: slower on a first
compile) and interned `in` shapes (0.97x). What is keyed by
code rather than by specs (op signatures, compiled closures on syntax-tree
nodes) is made once per process, as it imports or first runs.

Stages: "read" holds what reading files produced; "elaborated" what
elaborating configs produced. Benchmarks and tests call `forget()` to time or
check a load as a new process would run it.
"""
from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

ENV_DIR = "ARCHDSL_CACHE_DIR"

STAGES = ("read", "elaborated")
_CACHES: dict[str, list[dict]] = {stage: [] for stage in STAGES}


def process_cache(stage: str) -> dict:
    """A new in-process cache, emptied by forget(stage) and forget()."""
    cache: dict = {}
    _CACHES[stage].append(cache)
    return cache


def drop_oldest(cache: dict) -> None:
    """Drop the oldest quarter of a full cache's entries (dicts keep insertion
    order): a long search keeps what it made recently instead of starting over."""
    for old in list(cache)[:max(1, len(cache) // 4)]:
        del cache[old]


def forget(*stages: str) -> None:
    """Empty the in-process caches of `stages` (default: all of them)."""
    for stage in stages or STAGES:
        for cache in _CACHES[stage]:
            cache.clear()


@lru_cache(maxsize=8)
def home_folder(explicit: str, xdg: str, home: str) -> str | None:
    """The on-disk cache folder: $ARCHDSL_CACHE_DIR, else $XDG_CACHE_HOME/archdsl, else ~/.cache/archdsl."""
    if explicit:
        return explicit
    if os.path.isabs(xdg):  # the XDG spec ignores relative paths
        return os.path.join(xdg, "archdsl")
    try:
        return os.path.join(home or str(Path.home()), ".cache", "archdsl")
    except RuntimeError:  # no home directory
        return None


def disk_folder() -> Path | None:
    """Where archdsl keeps what it caches on disk (None: no home to put it in)."""
    folder = home_folder(os.environ.get(ENV_DIR, ""), os.environ.get("XDG_CACHE_HOME", ""),
                         os.environ.get("HOME", ""))
    return None if folder is None else Path(folder)
