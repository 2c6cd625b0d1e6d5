"""One table for many evaluated points: summary.csv, summary.json and Pareto fronts.

Every multi-point command (a Hydra sweep, `archc sweep --cost-only`,
`archc search`, `archc scale`) ends here, so their tables have the same
columns: job, status, overrides, error, name, params, macs, activations,
bytes, time_<hardware>_s per hardware preset, output_dir, then one column per
overridden or sampled key (`params.wm`, ...).
"""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any, Iterable

from archdsl.backends.units import significant
from archdsl.build import _write as write_atomic

COST_KEYS = ("params", "macs", "activations", "bytes")


def time_key(hw: str) -> str:
    return f"time_{hw}_s"


def override_values(overrides: Iterable[str]) -> dict[str, str]:
    """`++params.wm=2.2` -> {'params.wm': '2.2'}: the swept values as columns."""
    out = {}
    for o in overrides:
        if "=" in o:
            k, v = o.split("=", 1)
            out[k.lstrip("+~")] = v
    return out


def row(job: Any, overrides: list[str], result: dict | None, values: dict | None = None) -> dict:
    """A flat row from a job's result (build.run_job's result.json, or an evaluated point).

    `result` None: the job never wrote one (killed, or still queued).
    `values`: the point's parameter values when they are not spelled as overrides.
    """
    r: dict[str, Any] = {"job": job, "status": "missing", "overrides": list(overrides), "error": ""}
    if result is None:
        r["error"] = "no result.json: the job did not finish"
    else:
        r["status"] = result.get("status", "error")
        r["error"] = result.get("error", "")
        r["name"] = result.get("name")
        for k in COST_KEYS:
            if k in result:
                r[k] = result[k]
        for hw, s in (result.get("roofline_s") or {}).items():
            r[time_key(hw)] = s
        if "output_dir" in result:
            r["output_dir"] = result["output_dir"]
    r.update(override_values(overrides))
    if values:
        r.update({f"params.{k}": v for k, v in values.items()})
    return r


def columns(rows: list[dict]) -> list[str]:
    head = ["job", "status", "overrides", "error", "name", *COST_KEYS]
    seen = dict.fromkeys(head)
    for r in rows:
        for k in r:
            if k.startswith("time_"):
                seen.setdefault(k)
    seen.setdefault("output_dir")
    for r in rows:
        for k in r:
            seen.setdefault(k)
    return list(seen)


def hardware_names(rows: list[dict]) -> list[str]:
    names = []
    for r in rows:
        for k in r:
            if k.startswith("time_") and k.endswith("_s") and k[5:-2] not in names:
                names.append(k[5:-2])
    return names


def to_csv(rows: list[dict]) -> str:
    cols = columns(rows)
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(cols)
    for r in rows:
        w.writerow([" ".join(r[c]) if c == "overrides" else _cell(r.get(c), c) for c in cols])
    return buf.getvalue()


def _cell(v: Any, column: str = "") -> Any:
    if v is None:
        return ""
    if isinstance(v, (list, tuple, dict)):
        return json.dumps(v)
    if isinstance(v, float):  # roofline times are estimates: 4 digits; others lose float noise only
        return significant(v, 4 if column.startswith("time_") else 12)
    return v


def write(out: Path, rows: list[dict], meta: dict | None = None) -> list[str]:
    """summary.csv and summary.json, each written atomically."""
    out.mkdir(parents=True, exist_ok=True)
    write_atomic(out / "summary.csv", to_csv(rows))
    counts = {s: sum(r["status"] == s for r in rows) for s in ("ok", "error", "missing")}
    doc = {"meta": dict(meta or {}, jobs=len(rows), **counts), "rows": rows}
    write_atomic(out / "summary.json", json.dumps(doc, indent=1, default=str))
    return ["summary.csv", "summary.json"]


def refuse_existing(out: Path, overwrite: bool, flag: str = "--overwrite") -> None:
    """An --out folder that already holds files is the user's (or another run's): refuse
    to write into it unless `overwrite` (the command's `flag`) says so."""
    from archdsl.language.errors import ArchError

    try:
        held = sorted(p.name for p in Path(out).iterdir())
    except FileNotFoundError:
        return
    except NotADirectoryError:
        raise ArchError(f"{out} is a file, not a folder to write into") from None
    except OSError as e:
        raise ArchError(f"cannot read {out}: {e.strerror}") from None
    if held and not overwrite:
        shown = ", ".join(held[:5]) + (", ..." if len(held) > 5 else "")
        raise ArchError(f"{out} already holds files ({shown}); archc would replace some of them",
                        hint=f"choose another folder, or pass {flag} to write into it anyway")


def read(out: Path) -> list[dict]:
    return json.loads((Path(out) / "summary.json").read_text())["rows"]


def pareto(rows: list[dict], cost: str, gain: str) -> list[int]:
    """Indices of the ok rows no other row beats: none has cost <= and gain >= (one strictly).

    MACs play the gain (the work a network does, what buys accuracy at a
    given shape) and params or time the cost, so the front is the most
    compute for a parameter or latency budget.
    """
    pts = sorted((r[cost], -r[gain], i) for i, r in enumerate(rows)
                 if r.get("status") == "ok" and r.get(cost) is not None and r.get(gain) is not None)
    front, best = [], None
    for c, neg_g, i in pts:
        if best is None or -neg_g > best:
            front.append(i)
            best = -neg_g
    return front


def failed(rows: list[dict]) -> int:
    return sum(r["status"] != "ok" for r in rows)
