"""`archc build`: one Hydra job = one compiled network, written to the job's output dir."""
from __future__ import annotations

import json
import os
from pathlib import Path

import yaml

from archdsl.api import Compiled, compile_config
from archdsl.backends.cost import Report
from archdsl.backends.render import render
from archdsl.configs.schema import validate
from archdsl.language.errors import ArchError


def _write(path: Path, text: str) -> None:
    """Write atomically: a killed job never leaves a half-written file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_outputs(c: Compiled, out: Path) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    rep = c.report()
    _write(out / "report.json", rep.to_json())
    _write(out / "report.md", rep.to_markdown())
    _write(out / "layers.csv", rep.to_csv())
    _write(out / "network.txt", render(c.spec))
    # The resolved config, loadable by archdsl.load(out) / archc build out/config.yaml.
    cfg = c.config.model_dump()
    recipe_file = Path(c.program.files[-1])
    cfg["recipe"] = str(recipe_file)
    _write(out / "config.yaml", yaml.safe_dump(cfg, sort_keys=False))
    spec_text = "".join(f"# ---- {f}\n{Path(f).read_text()}\n" for f in c.program.files)
    _write(out / "spec.arch", spec_text)
    files = ["report.json", "report.md", "layers.csv", "network.txt", "config.yaml", "spec.arch"]
    if c.config.save_weights:
        import torch
        net = c.module()
        tmp = out / "model.pt.tmp"
        torch.save(net.state_dict(), tmp)
        os.replace(tmp, out / "model.pt")
        files.append("model.pt")
    return {"status": "ok", "name": c.config.name, **costs(rep), "output_dir": str(out), "files": files}


def costs(rep: Report) -> dict:
    """The totals a job's result (and a sweep's summary row) carries."""
    t = rep.total
    return {"params": t.params, "macs": t.macs, "activations": t.activations, "bytes": t.bytes,
            "roofline_s": rep.rooflines()}


def completed(out: Path, overrides: list[str]) -> dict | None:
    """The result of an earlier, finished run of this very job in `out` (a resumed sweep skips it).

    result.json is written last, so "ok" there means every file it lists was
    written in full; a job killed earlier left none, or one for other overrides.
    """
    try:
        prev = json.loads((out / "result.json").read_text())
    except (OSError, ValueError):
        return None
    if prev.get("status") != "ok" or sorted(prev.get("overrides", [])) != sorted(overrides):
        return None
    if not all((out / f).is_file() for f in prev.get("files", [])):
        return None
    return prev


def run_job(data: dict, name: str, overrides: list[str], out: Path, config_dir: Path | None) -> dict:
    """Compile and write one job; errors are recorded, not raised, so sweeps go on."""
    try:
        cfg = validate(data, name, overrides)
        c = compile_config(cfg, overrides, config_dir)
        result = write_outputs(c, out)
    except ArchError as e:
        out.mkdir(parents=True, exist_ok=True)
        _write(out / "error.txt", e.render() + "\n")
        result = {"status": "error", "name": name, "error": e.render(), "output_dir": str(out)}
    _write(out / "result.json", json.dumps(dict(result, overrides=overrides), indent=1))
    return result
