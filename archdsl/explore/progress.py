"""A progress line for long runs: done/total, failures, rate, time left.

Printed to stderr at most once per `every` seconds (plain lines, so logs and
pipes read well), and once more at the end.
"""
from __future__ import annotations

import sys
import time


class Meter:
    def __init__(self, total: int | None, what: str = "jobs", every: float = 1.0, stream=None,
                 start_done: int = 0):
        self.total = total
        self.what = what
        self.every = every
        self.stream = stream
        self.t0 = time.perf_counter()
        self.start_done = start_done  # already done before this run (resumed jobs): not in the rate
        self.done = start_done
        self.failed = 0
        self._last = -1.0
        self._shown = None

    @property
    def rate(self) -> float:
        dt = time.perf_counter() - self.t0
        return (self.done - self.start_done) / dt if dt > 0 else 0.0

    def line(self) -> str:
        total = f"/{self.total}" if self.total is not None else ""
        parts = [f"{self.what}: {self.done}{total} done"]
        if self.failed:
            parts[0] += f" ({self.failed} failed)"
        if self.start_done:
            parts.append(f"{self.start_done} already done")
        rate = self.rate
        parts.append(f"{rate:.1f}/s" if rate < 100 else f"{rate:.0f}/s")
        if self.total is not None and rate > 0 and self.done < self.total:
            parts.append(f"~{(self.total - self.done) / rate:.0f} s left")
        return ", ".join(parts)

    def update(self, done: int, failed: int = 0, force: bool = False) -> None:
        self.done, self.failed = done, failed
        now = time.perf_counter()
        if not force and now - self._last < self.every:
            return
        state = (self.done, self.failed)
        if force or state != self._shown:
            print(self.line(), file=self.stream or sys.stderr, flush=True)
            self._shown = state
        self._last = now
