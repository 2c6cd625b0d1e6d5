"""Hydra multiruns of `archc build`: progress while the jobs run, a summary when they end.

`SweepCallback` is a Hydra callback (conf/hydra/callbacks/summary.yaml;
`archc build -m` selects it). It runs in the launching process only and
learns everything from disk — each job's result.json, which build.run_job
writes last and atomically — so it works the same for launchers that run
jobs in other processes or on other machines (joblib, submitit, Ray).

Before any job runs it checks the sweep folder (`conflict`): a folder that
holds another sweep's finished jobs or summary, or files that are no sweep's,
is left as it is and the sweep writes beside it (S-2, ...), saying so, unless
overwrite (`--overwrite`). The same sweep run again (resumed, or grown by
more values) goes on in its folder. With Hydra's basic sweeper the jobs are
known up front and compared one by one; with any other sweeper (Optuna,
Nevergrad, ...) they are not, so the sweep's definition — its overrides and
sweeper config, kept in the folder's sweep.json — must be the same.
"""
from __future__ import annotations

import json
import os
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback

from archdsl.build import _write as write_atomic
from archdsl.explore import plots, summary
from archdsl.explore.folders import Refused, beside, quoted
from archdsl.explore.progress import Meter
from archdsl.language.errors import ArchError

BASIC_SWEEPER = "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"
DEFINITION = "sweep.json"  # what sweep a folder holds: its overrides and sweeper (see `conflict`)


@dataclass
class Outcome:
    """What the last multirun in this process left: read by `archc build` for its exit status."""

    sweep_dir: Path
    rows: list[dict]
    notes: list[str]


LAST: Outcome | None = None
MOVED: str | None = None  # where the last multirun went instead of another sweep's folder, and why


def expected_jobs(config) -> list[list[str]] | None:
    """Each job's overrides, as Hydra's BasicSweeper splits the sweep; None for other sweepers."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    sweeper = config.hydra.sweeper
    if sweeper.get("_target_") != BASIC_SWEEPER:
        return None
    args = [f"{k}={v}" for k, v in (sweeper.get("params") or {}).items()]
    args += list(config.hydra.overrides.task)
    parsed = OverridesParser.create().parse_overrides(args)
    return [job for batch in BasicSweeper.split_arguments(parsed, None) for job in batch]


def _key(overrides) -> tuple[str, ...]:
    return tuple(sorted(overrides))


def scan(sweep_dir: Path) -> dict[tuple, tuple[str, dict, float]]:
    """Every result.json under the sweep: {overrides: (job folder, result, mtime)}."""
    found: dict[tuple, tuple[str, dict, float]] = {}
    if not sweep_dir.is_dir():
        return found
    for p in sweep_dir.glob("**/result.json"):
        try:
            res = json.loads(p.read_text())
            mtime = p.stat().st_mtime
        except (OSError, ValueError):  # vanished or being replaced right now: next poll
            continue
        job = p.parent.relative_to(sweep_dir).as_posix()
        key = _key(res.get("overrides", []))
        if key not in found or found[key][2] < mtime:
            found[key] = (job, res, mtime)
    return found


def definition(config) -> dict:
    """What makes a sweep the same sweep: its overrides and its sweeper's config."""
    from omegaconf import OmegaConf

    return {"overrides": sorted(config.hydra.overrides.task),
            "sweeper": OmegaConf.to_container(config.hydra.sweeper, resolve=False)}


def conflict(sweep_dir: Path, expected: set[tuple] | None, defined: dict | None = None) -> str | None:
    """Why running this sweep in `sweep_dir` would overwrite another sweep's finished
    jobs or summary, or files that are no sweep's; None when it would not (no folder
    or an empty one, this very sweep resumed or grown, or only failed jobs of
    another, which are computed again anyway).

    expected: the jobs' override keys (the basic sweeper's), None for a sweeper whose
    jobs are not known before they run; `defined` (see `definition`) must then be
    the one the folder's sweep.json holds."""
    try:
        held = sorted(p.name for p in sweep_dir.iterdir())
    except FileNotFoundError:
        return None
    except OSError as e:  # a file, or a folder that cannot be read
        return f"{sweep_dir} cannot be a sweep folder ({e.strerror})"
    if not held:
        return None
    if DEFINITION not in held and "multirun.yaml" not in held:
        shown = ", ".join(held[:5]) + (", ..." if len(held) > 5 else "")
        return f"{sweep_dir} holds files that are no sweep's ({shown})"
    if expected is None:
        try:
            same = json.loads((sweep_dir / DEFINITION).read_text()) == json.loads(json.dumps(defined, default=str))
        except (OSError, ValueError):
            same = False
        return None if same else f"{sweep_dir} holds another sweep (other overrides, or another sweeper)"
    others = sorted({key for key, (_, res, _) in scan(sweep_dir).items()
                     if key not in expected and res.get("status") == "ok"})
    try:
        rows = json.loads((sweep_dir / "summary.json").read_text())["rows"]
        others += sorted({_key(r.get("overrides", [])) for r in rows if r.get("status") == "ok"}
                         - expected - set(others))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        pass
    if not others:
        return None
    shown = "; ".join(" ".join(k) or "(no overrides)" for k in others[:3]) + (" ..." if len(others) > 3 else "")
    return f"{sweep_dir} holds another sweep's jobs ({shown})"


def move_sweep(config, new: Path) -> None:
    """Point the multirun starting with `config` at the folder `new`: the launcher reads
    hydra.sweep.dir, and each job's config is composed again with hydra.overrides.hydra."""
    from omegaconf import read_write

    with read_write(config):
        config.hydra.sweep.dir = str(new)
        kept = [o for o in config.hydra.overrides.hydra if not o.split("=")[0].lstrip("+~") == "hydra.sweep.dir"]
        config.hydra.overrides.hydra = kept + [f"hydra.sweep.dir={quoted(new)}"]


def _job_order(job: str) -> tuple:
    return tuple(int(p) if p.isdigit() else p for p in job.split("/"))


def collect(sweep_dir: Path, jobs: list[list[str]] | None) -> list[dict]:
    """One summary row per job of the sweep; a job without a result.json is 'missing'.

    `job` is the job's number (Hydra's job.num), an int as in every summary;
    its folder is the row's output_dir.
    """
    found = scan(sweep_dir)
    if jobs is None:  # another sweeper: whatever the folder holds, in the folders' order
        items = sorted(found.values(), key=lambda x: _job_order(x[0]))
        return [summary.row(i, res.get("overrides", []), res) for i, (_, res, _) in enumerate(items)]
    rows = []
    for i, ov in enumerate(jobs):
        hit = found.get(_key(ov))
        rows.append(summary.row(i, ov, hit[1] if hit else None))
    return rows


def write_summary(sweep_dir: Path, rows: list[dict], hardware: str | None,
                  ridges: dict[str, float] | None, meta: dict) -> list[str]:
    """summary.csv, summary.json and pareto.png of a sweep folder; returns notes for the user."""
    summary.write(sweep_dir, rows, meta)
    note = plots.pareto_png(sweep_dir / "pareto.png", rows, hardware, ridges, title=str(meta.get("title", "")))
    return [note] if note else []


def ridge_points(config) -> dict[str, float]:
    """{preset: peak MACs / bandwidth} of the config's hardware presets (for the plot title)."""
    out = {}
    for k, v in (config.get("hardware") or {}).items():
        try:
            out[k] = float(v["peak_macs"]) / float(v["mem_bw"])
        except (KeyError, TypeError, ValueError, ZeroDivisionError):
            continue
    return out


class SweepCallback(Callback):
    """Progress while a sweep runs; summary.csv/json and pareto.png in the sweep folder at its end."""

    def __init__(self, hardware: str | None = None, interval: float = 1.0, overwrite: bool = False):
        self.hardware = hardware
        self.interval = interval
        self.overwrite = overwrite  # run even where another sweep's jobs are (they are replaced)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __getstate__(self) -> dict:
        # Launchers that run jobs elsewhere pickle the callbacks with the task;
        # the copies there need none of the progress thread's state.
        return {"hardware": self.hardware, "interval": self.interval, "overwrite": self.overwrite}

    def __setstate__(self, state: dict) -> None:
        self.__init__(**state)

    # ---------------------------------------------------------------- progress
    def _counts(self) -> tuple[int, int]:
        """(done, failed) among this sweep's jobs: results written since the start, or skipped."""
        done = failed = 0
        for key, (_, res, mtime) in scan(self.dir).items():
            if self.expected is not None and key not in self.expected:
                continue
            if mtime >= self.t0:
                done += 1
                failed += res.get("status") != "ok"
            elif key in self.before_ok:
                done += 1
        return done, failed

    def _poll(self) -> None:
        while not self._stop.wait(self.interval):
            self.meter.update(*self._counts())

    def on_multirun_start(self, config, **kwargs: Any) -> None:
        self.dir = Path(os.path.realpath(config.hydra.sweep.dir))  # as the system resolves it (`S/new/..` is S)
        self.t0 = time.time()
        try:
            self.jobs = expected_jobs(config)
        except Exception:  # noqa: BLE001 - Hydra itself reports a bad sweep; progress just has no total
            self.jobs = None
        self.expected = {_key(j) for j in self.jobs} if self.jobs is not None else None
        defined = definition(config)
        why = None if self.overwrite else conflict(self.dir, self.expected, defined)
        if why is not None:  # before any job runs: the other sweep (or the user's files) is left as it is
            global MOVED
            new = beside(self.dir)
            move_sweep(config, new)
            MOVED = f"note: {why}; this sweep writes beside it, in {new} (--overwrite: into it)"
            print(MOVED, file=sys.stderr)
            self.dir = new
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            write_atomic(self.dir / DEFINITION, json.dumps(defined, indent=1, default=str) + "\n")
        except OSError as e:
            raise Refused(ArchError(f"cannot write into the sweep folder {self.dir}: {e.strerror}")) from None
        self.before_ok = {k for k, (_, res, _) in scan(self.dir).items()
                          if res.get("status") == "ok" and (self.expected is None or k in self.expected)}
        self.meter = Meter(len(self.jobs) if self.jobs is not None else None, "sweep",
                           every=self.interval, start_done=len(self.before_ok))
        self._thread = threading.Thread(target=self._poll, name="archc-sweep-progress", daemon=True)
        self._thread.start()

    def on_multirun_end(self, config, **kwargs: Any) -> None:
        global LAST
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        rows = collect(self.dir, self.jobs)
        self.meter.update(sum(r["status"] != "missing" for r in rows),
                          sum(r["status"] == "error" for r in rows), force=True)
        meta = {"config": config.hydra.job.config_name, "sweep_dir": str(self.dir),
                "title": f"{config.hydra.job.config_name}: {len(rows)} jobs"}
        notes = write_summary(self.dir, rows, self.hardware, ridge_points(config), meta)
        LAST = Outcome(self.dir, rows, notes)
