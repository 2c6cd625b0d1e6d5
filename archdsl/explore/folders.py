"""Output folders of `archc build`: never into a folder that holds someone's files.

`RunDirCallback` is the Hydra callback of a single build
(conf/hydra/callbacks/run_dir.yaml; `archc build` selects it). It runs
before Hydra makes the job's folder, so it sees the folder as the user left
it: one that holds files is refused when the user named it
(`hydra.run.dir=...`: the error names the override), and replaced by a new
folder beside it (`<folder>-2`, ...) when it came from the config or the
default (two builds in one second); `--overwrite` writes into it anyway.
Sweeps do the same in archdsl.explore.sweep.

A refusal inside a Hydra callback is raised as `Refused`, a BaseException:
Hydra reports any Exception itself, with a traceback, and exits 1; `archc
build` renders the error it carries and exits 2.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback

from archdsl.language.errors import ArchError, ConfigError


class Refused(BaseException):
    """An ArchError raised where Hydra would catch an Exception (see the module docstring)."""

    def __init__(self, error: ArchError):
        super().__init__(error.message)
        self.error = error


def beside(folder: Path) -> Path:
    """The first free folder next to `folder`: F-2, F-3, ... (`.` is named by its path)."""
    folder = Path(os.path.abspath(folder))
    n = 2
    while Path(f"{folder}-{n}").exists():
        n += 1
    return Path(f"{folder}-{n}")


def quoted(path: Path | str) -> str:
    """`path` as a quoted value of a Hydra override, whatever it holds (quotes, commas,
    backslashes): Hydra's grammar unescapes \\' and the backslashes before a quote."""
    import re

    text = re.sub(r"(\\+)(?='|$)", r"\1\1", str(path)).replace("'", "\\'")
    return f"'{text}'"


def given(config, key: str) -> str | None:
    """The override of `key` (hydra.run.dir, hydra.sweep.dir) on the command line, as typed."""
    return next((o for o in config.hydra.overrides.hydra if o.split("=")[0].lstrip("+~") == key), None)


class RunDirCallback(Callback):
    """A single build's folder: refused, or a new one beside it, when it holds files."""

    def __init__(self, overwrite: bool = False):
        self.overwrite = overwrite

    def on_run_start(self, config, **kwargs: Any) -> None:
        from omegaconf import read_write

        from archdsl.explore.summary import refuse_existing

        out = Path(os.path.realpath(config.hydra.run.dir))  # as the system resolves it: `held/new/..` is `held`
        try:
            refuse_existing(out, self.overwrite)
        except ArchError as e:
            typed = given(config, "hydra.run.dir")
            if typed is not None or not out.is_dir():
                raise Refused(ConfigError(e.message, key=None if typed else "hydra.run.dir", override=typed,
                                          hint=e.hint)) from None
            new = beside(out)  # the default folder (or the config's) is taken: a new one, said so
            with read_write(config):
                config.hydra.run.dir = str(new)
            print(f"note: {out} already holds files; this build writes beside it, in {new}", file=sys.stderr)
