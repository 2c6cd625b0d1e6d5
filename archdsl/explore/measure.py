"""`archc profile` and `archc calibrate`: measuring on this machine, and
the files they leave (backends/torch/profile.py and calibrate.py measure)."""
from __future__ import annotations

from pathlib import Path

import torch

from archdsl.api import compile
from archdsl.backends.cost import Hardware
from archdsl.backends.torch import calibrate as calib
from archdsl.backends.torch import profile as prof
from archdsl.backends.torch.timing import steady_heap
from archdsl.language.errors import ConfigError
from archdsl.language.resources import user_conf_dir


def default_hardware(device: str, threads: int) -> str:
    """The name `archc calibrate` gives this device and thread count by default."""
    return f"{device.split(':')[0]}_{threads or 'all'}t"


def hardware_for(config: str, overrides: list[str], wanted: str | None, device: str, threads: int
                 ) -> tuple[Hardware, list[str]]:
    """The preset that predicts: `wanted` (a machine of the config's hardware
    group, or a hardware group of its own, e.g. a calibrated one), else the
    calibrated preset of this device and thread count, else the config's
    first machine (with a note saying so)."""
    own = compile(config, overrides).config.hardware_list()
    if wanted is not None:
        hit = next((h for h in own if h.name == wanted), None)
        if hit is not None:
            return hit, []
        group = compile(config, [*overrides, f"hardware={wanted}"]).config.hardware_list()
        return group[0], []
    name = default_hardware(device, threads)
    if (user_conf_dir() / "hardware" / f"{name}.yaml").is_file():
        return compile(config, [*overrides, f"hardware={name}"]).config.hardware_list()[0], []
    if not own:
        raise ConfigError("the config has no hardware preset to predict with", key="hardware",
                          hint=f"run `archc calibrate` (it writes the preset {name})")
    return own[0], [f"note: predicting with the nominal preset '{own[0].name}'; `archc calibrate` measures this "
                    f"machine (preset {name}), which `archc profile` then uses"]


def profile(config: str, overrides: list[str], batch: int = 1, threads: int = 1, dtype: str = "fp32",
            channels_last: bool = False, deploy: bool = False, device: str = "cpu", warmup: int = 5,
            runs: int = 20, hardware: str | None = None, out: Path | None = None
            ) -> tuple[prof.Profile, list[str]]:
    """Build, measure, compare; writes profile.md, layers.csv, classes.csv and
    predicted_vs_measured.png to `out` when given."""
    if threads:
        torch.set_num_threads(threads)
    if device == "cpu":  # as archc calibrate measures (backends/torch/timing.py)
        steady_heap()
    overrides = list(overrides) + (["deploy=true"] if deploy else []) + (
        ["channels_last=true"] if channels_last else [])
    hw, notes = hardware_for(config, overrides, hardware, device, threads)
    c = compile(config, overrides)
    torch.manual_seed(0)
    net = c.module()
    p = prof.profile(net, c.spec, c.report(), hw, batch, calib.TORCH_DTYPES[dtype], device, warmup, runs)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "profile.md").write_text(p.to_markdown())
        (out / "layers.csv").write_text(p.to_csv())
        (out / "classes.csv").write_text(p.classes_csv())
        p.plot(out / "predicted_vs_measured.png")
    return p, notes


def calibrate(name: str, device: str = "cpu", threads: int = 1, dtype: str = "fp32", path: Path | None = None,
              log=None) -> Path:
    """Measure this machine; write the preset to `path` (default: the user's
    config folder, hardware/NAME.yaml, where `hardware=NAME` finds it)."""
    c = calib.calibrate(name, device, threads, dtype, log=log)
    path = path or user_conf_dir() / "hardware" / f"{name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(c.yaml())
    if log:
        log(f"took {c.seconds:.1f} s")
    return path
