"""`archc build`: one Hydra job = one compiled network, written to the job's output dir."""
from __future__ import annotations

import json
import os
from pathlib import Path

import yaml

from archdsl.api import Compiled, compile_config
from archdsl.backends import html, memory
from archdsl.backends.cost import Report
from archdsl.backends.render import render
from archdsl.configs.schema import validate
from archdsl.language.errors import ArchError
from archdsl.language.program import parse_cached


def _write(path: Path, text: str) -> None:
    """Write atomically: a killed job never leaves a half-written file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_outputs(c: Compiled, out: Path) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    rep = c.report()
    _write(out / "report.json", rep.to_json())
    _write(out / "report.md", report_markdown(c, rep))
    _write(out / "report.html", html.page(rep, with_figures=c.config.figures))
    _write(out / "layers.csv", rep.to_csv())
    _write(out / "network.txt", render(c.spec))
    # The resolved config, loadable by archdsl.load(out) / archc build out/config.yaml
    # wherever the folder goes: its recipe is the folder's own spec.arch.
    cfg = c.config.model_dump()
    cfg["recipe"] = SPEC_FILE
    _write(out / "config.yaml", yaml.safe_dump(cfg, sort_keys=False))
    _write(out / SPEC_FILE, one_spec(c.program.files))
    files = ["report.json", "report.md", "report.html", "layers.csv", "network.txt", "config.yaml", "spec.arch"]
    if c.config.save_weights:
        import torch
        net = c.module()
        tmp = out / "model.pt.tmp"
        torch.save(net.state_dict(), tmp)
        os.replace(tmp, out / "model.pt")
        files.append("model.pt")
    return {"status": "ok", "name": c.config.name, **costs(rep), "output_dir": str(out), "files": files}


SPEC_FILE = "spec.arch"


def report_markdown(c: Compiled, rep: Report) -> str:
    """report.md: the cost report, then the memory section (inference peak,
    training memory per batch size; archdsl.backends.memory)."""
    return rep.to_markdown() + "\n" + memory.markdown(c.spec, rep.total.params, rep.dtype)


def one_spec(files: list[str]) -> str:
    """Every .arch file a build used, as one file that loads on its own.

    `files` come as load_program lists them, each after the files it uses, so
    a `use` line's definitions are already above it: it is commented out.
    """
    parts = []
    for f in files:
        lines = Path(f).read_text().splitlines()
        for u in parse_cached(f).uses:
            lines[u.loc.line - 1] = "# (inlined above) " + lines[u.loc.line - 1]
        parts.append(f"# ---- {f}\n" + "\n".join(lines) + "\n")
    return "".join(parts)


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


def run_job(data: dict, name: str, overrides: list[str], out: Path, config_dir: Path | None,
            typed: list[str] | None = None) -> dict:
    """Compile and write one job; errors are recorded, not raised, so sweeps go on.

    `typed`: the overrides as the user wrote them, for error messages
    (`overrides`, Hydra's, are what result.json records).
    """
    try:
        cfg = validate(data, name, typed or overrides)
        c = compile_config(cfg, typed or overrides, config_dir)
        result = write_outputs(c, out)
    except Exception as e:  # noqa: BLE001 - recorded, whatever it is: the sweep's other jobs go on
        text = e.render() if isinstance(e, ArchError) else f"internal error: {type(e).__name__}: {e}"
        out.mkdir(parents=True, exist_ok=True)
        _write(out / "error.txt", text + "\n")
        result = {"status": "error", "name": name, "error": text, "output_dir": str(out)}
    _write(out / "result.json", json.dumps(dict(result, overrides=overrides), indent=1))
    return result
