"""Fuzzing archc: every input must get an answer (issue #14).

    python bench/fuzz.py --cases 10000 [--seed 0] [--jobs 1]

Five families of cases, drawn with a seeded random generator (the same seed
gives the same cases):

- valid: random well-formed networks (convs, norms, activations, pools,
  residuals, repeats, loops, lets, conditionals, blocks with parameters):
  must succeed, and a module built on the meta device must have as many
  parameters as the cost report says;
- mutated: a shipped spec (recipes/, blocks/) with a few edits (a number made
  huge, zero, negative or 1e308; a line dropped or doubled; a byte inserted,
  NUL and non-UTF-8 among them; nesting added), compiled through a preset's
  config;
- adversarial: specs built to hang, recurse or allocate (the issue's
  reproducers, at random sizes), and adversarial configs and overrides
  (`archc cost` and `archc build`);
- configs: shipped presets' YAML mutated;
- cache: a parse-cache entry replaced (garbage, a crafted tree, a FIFO, a
  link to /dev/zero or out of the folder): the parse must equal a fresh one;
- explore: `archc search` on a small design space made hostile (its YAML
  mutated; one field given a wrong-kind, non-finite, huge or deeply nested
  value; bad samplers, constraints and base overrides; huge sample counts and
  bad options) and `archc scale` on small bases with hostile options
  (non-finite, negative, huge factors and lists, grids too fine) and configs;
- outputs: `archc build` (hydra.run.dir), sweeps, searches and scaling rules
  pointed at a folder that holds a user's file: it must be there, unchanged,
  afterwards unless --overwrite was given.

Each case runs in a worker process (`archc` in-process, in a fresh folder)
under a time limit (an interval timer, --seconds, 30 s for cases that run
Hydra jobs; the worker is killed past twice --seconds plus two minutes)
and a memory limit (RLIMIT_AS: what the worker holds after its imports plus
--mem-mb). Outcomes: ok, refused (archc's own error, exit 2, located at
file:line:col or naming the config key / override), and the failures:
unlocated, traceback, internal (exit 1, "internal error"), hang, memory,
crash (the worker died), wrong (a module that disagrees with its report).
The report gives the counts per family and one example of each failure.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FAILURES = ("unlocated", "traceback", "internal", "hang", "memory", "crash", "wrong")
FAMILIES = ("valid", "mutated", "adversarial", "configs", "cache", "explore", "outputs")

# ---------------------------------------------------------------- generating cases
OPS_1 = ["relu", "silu", "gelu", "sigmoid", "bn", "identity"]


def _valid_block(r: random.Random, depth: int, channels: int) -> list[str]:
    """Statements that keep a known channel count (so residuals always match)."""
    out = []
    for _ in range(r.randint(1, 4)):
        k = r.random()
        if k < 0.3:
            out.append(f"conv({channels}, {r.choice([1, 3, 5])}, groups: {r.choice([1, channels])})")
        elif k < 0.55:
            out.append(r.choice(OPS_1))
        elif k < 0.7 and depth < 3:
            body = " ".join(_valid_block(r, depth + 1, channels))
            out.append(f"residual {{ {body} }}")
        elif k < 0.8 and depth < 3:
            out.append(f"repeat {r.randint(0, 3)} {{ {' '.join(_valid_block(r, depth + 1, channels))} }}")
        elif k < 0.9 and depth < 3:
            out.append(f"if {r.choice(['true', 'false', 'in.c > 4', 'in.h % 2 == 0'])} "
                       f"{{ {' '.join(_valid_block(r, depth + 1, channels))} }} else {{ relu }}")
        else:
            out.append(f"b{r.randint(0, 1)}({channels})")
    return out


def valid_spec(r: random.Random) -> tuple[str, list[str]]:
    c = r.choice([4, 8, 16])
    res = r.choice([8, 16, 32])
    blocks = [f"block b{i}(c: int >= 1) {{ conv(c, 1) {r.choice(OPS_1)} }}" for i in range(2)]
    stages = []
    for s in range(r.randint(1, 3)):
        stride = r.choice([1, 2])
        body = " ".join(_valid_block(r, 0, c))
        var = r.choice(["", " as j"])
        stages.append(f"  stage repeat {r.randint(1, 3)}{var} {{ conv({c}, 3, stride: {stride}) {body} }}")
    lets = f"  let w = [{', '.join(str(r.randint(1, 9)) for _ in range(r.randint(1, 5)))}]\n"
    text = ("\n".join(blocks) + f"\nnetwork n(res = {res}, width = {c}) {{\n  input(3, res, res)\n" + lets
            + f"  stem {{ conv(width, 3) bn relu }}\n" + "\n".join(stages)
            + f"\n  head {{ global_pool linear({r.randint(1, 20)}) }}\n}}\n")
    return text, []


NUMBER = re.compile(r"(?<![\w.])\d+(?:\.\d+)?")
WEIRD_NUMBERS = ["0", "-1", "99999999999", "1e308", "2**62", "10**100", "9" * 5000, "0.0", "1.5", "-0"]
WEIRD_BYTES = [b"\0", b"\xe9", b"\xff\xfe", b"{", b"}", b"(", b"[", b"\n", b"\t", b'"', b"#", b"\x1b"]


def mutate_text(r: random.Random, data: bytes) -> bytes:
    for _ in range(r.randint(1, 3)):
        k = r.random()
        text = data.decode("utf-8", "surrogateescape")
        if k < 0.4:  # a number
            nums = list(NUMBER.finditer(text))
            if nums:
                m = r.choice(nums)
                text = text[:m.start()] + r.choice(WEIRD_NUMBERS) + text[m.end():]
            data = text.encode("utf-8", "surrogateescape")
        elif k < 0.6:  # a line dropped or doubled
            lines = data.split(b"\n")
            i = r.randrange(len(lines))
            lines[i:i + 1] = [] if r.random() < 0.5 else [lines[i], lines[i]]
            data = b"\n".join(lines)
        elif k < 0.8:  # a byte inserted
            i = r.randrange(len(data) + 1)
            data = data[:i] + r.choice(WEIRD_BYTES) + data[i:]
        elif k < 0.9:  # a span deleted
            i = r.randrange(len(data) + 1)
            data = data[:i] + data[i + r.randint(1, 40):]
        else:  # nesting added around a number
            nums = list(NUMBER.finditer(text))
            if nums:
                m, n = r.choice(nums), r.choice([10, 200, 2000])
                text = text[:m.start()] + "(" * n + m.group() + ")" * n + text[m.end():]
            data = text.encode("utf-8", "surrogateescape")
    return data


ADVERSARIAL_SPECS = [
    lambda r: f"  stage repeat 10**{r.randint(6, 12)} as i {{ relu }}",
    lambda r: f"  let x = {'1+' * r.randint(50, 5000)}1\n  stage {{ relu }}",
    lambda r: f"  let x = {'-' * r.randint(50, 5000)}1\n  stage {{ relu }}",
    lambda r: f"  let x = {'[' * (n := r.randint(50, 3000))}{']' * n}\n  stage {{ relu }}",
    lambda r: f"  stage {{ {'if true {' * (n := r.randint(50, 1000))} relu {'}' * n} }}",
    lambda r: f"  stage {{ {'residual {' * (n := r.randint(20, 500))} relu {'}' * n} }}",
    lambda r: f"  let x = {'9' * r.randint(100, 20000)}\n  stage {{ relu }}",
    lambda r: f"  let x = ((2**{r.randint(100, 5000)})**1000)**1000\n  stage {{ relu }}",
    lambda r: f"  let x = round(10**{r.randint(1, 100)}, -10**{r.randint(1, 18)})\n  stage {{ relu }}",
    lambda r: f'  let x = "a" * 10**{r.randint(6, 12)}\n  stage {{ relu }}',
    lambda r: f"  let x = [0] * 10**{r.randint(6, 12)}\n  stage {{ relu }}",
    lambda r: f"  stage {{ conv({r.choice(['10**9', '2**62', '2**40', '1e308', '-3', '0'])}, 3) }}",
    lambda r: f"  head {{ global_pool linear({r.choice(['10**12', '2**62', '10**9'])}) }}",
    lambda r: f"  for i in range({r.randint(10**5, 10**6)}) {{ for j in range(1000000) {{ let x = 1 }} }}\n  stage {{ relu }}",
    lambda r: "  let x = sum([[0] * 1000 for i in range(100000)], [])\n  stage { relu }",
    lambda r: f"  let x = 1\n  for i in range({r.randint(1000, 100000)}) {{ let x = x * 3 + x }}\n  stage {{ relu }}",
    lambda r: f"  stage {{ a({r.randint(20, 60)}) }}",
    lambda r: f"  stage {{ c({r.randint(20, 60)}) }}",
    lambda r: "  stage { d(0) }",
    lambda r: f"  stage {{ {' '.join(['relu'] * r.randint(1000, 21000))} }}",
]
RECURSIVE = ("block a(n) { if n > 0 { a(n - 1) a(n - 1) } else { relu } }\n"
             "block c(n, k = 0) { if n > 0 { c(n - 1, 0) c(n - 1, 1) } else { relu } }\n"
             "block d(n) { d(n + 1) }\n")

ADVERSARIAL_OVERRIDES = [
    "params.res={a:1}", "params.res=null", "params.res=[1,2]", "params.depths=[[[[1]]]]", "hardware=5",
    "params.res=" + "9" * 5000, "params.depths=[" + ",".join(["1"] * 50000) + "]", "dtype=fp64", "name=${oc.env:NOPE}",
    "name=${foo}", "params.res=1e308", "params.res=-1", "params.res=0", "limits.layers=-1", "limits.nope=1",
    "recipe=/dev/zero", "recipe=/etc/passwd", "network=nope", "params.res=2**62", "drop_path_rate=2",
    "params.res='\udce9'", "+params.new=1", "~params", "params=5", "hardware={x:1}",
]
ADVERSARIAL_CONFIGS = [
    "name: ${oc.env:NOPE}\n", "name: ${foo}\n", "name: ${name}\n", "dtype: fp32\ndtype: fp16\n",
    "name: !!python/object/apply:os.system ['true']\n", "\tparams: {}\n", "recipe: res\0net\n",
    "name: caf\udce9\n", "x: " + "[" * 5000 + "]" * 5000 + "\n", "params: {res: " + "9" * 5000 + "}\n",
    "a: &a [1,1,1,1,1,1,1,1,1]\n" + "".join(f"l{i}: &l{i} [" + ",".join(["*" + ("a" if i == 0 else f"l{i - 1}")] * 9)
                                          + "]\n" for i in range(9)),
    "params: [1, 2]\n", "params: {res: {a: 1}}\n", "hardware: 5\n", "limits: {layers: 10}\n",
]


# ---------------------------------------------------------------- search and scale
# A small design space (AnyNet at 32 px): 64 samples take well under a second.
SPACE = {
    "description": "fuzz", "base": "base", "overrides": ["recipe=anynet", "params.res=32"],
    "params": {
        "depths": {"sampler": "list", "length": 2, "item": {"sampler": "quantized", "low": 1, "high": 2, "step": 1}},
        "widths": {"sampler": "list", "length": 2, "item": {"sampler": "log_uniform", "low": 8, "high": 64, "step": 8}},
        "bottlenecks": {"sampler": "list", "length": 2, "item": {"sampler": "choice", "values": [1.0, 0.5]}},
        "group_ws": {"sampler": "list", "length": 2, "item": {"sampler": "power2", "low": 1, "high": 8}},
    },
    "constraints": {"macs": [0, 1.0e+9]},
}
# Where a hostile value goes (a path into SPACE; a missing last key is added).
SPACE_PATHS = [
    ("base",), ("overrides",), ("overrides", 0), ("overrides", 2), ("params",), ("params", "depths"),
    ("params", "depths", "sampler"), ("params", "depths", "length"), ("params", "depths", "item"),
    ("params", "depths", "item", "low"), ("params", "depths", "item", "high"), ("params", "depths", "item", "step"),
    ("params", "widths", "item", "low"), ("params", "widths", "item", "high"), ("params", "widths", "item", "step"),
    ("params", "group_ws", "item", "low"), ("params", "group_ws", "item", "high"),
    ("params", "bottlenecks", "item", "values"), ("params", "bottlenecks", "item", "values", 0),
    ("params", "nope"), ("params", "res"), ("constraints",), ("constraints", "macs"), ("constraints", "macs", 0),
    ("constraints", "macs", 1), ("constraints", "params"), ("constraints", "time_a100_s"),
    ("constraints", "time_nope_s"), ("constraints", "nope"), ("nope",), ("description",),
]
# Values as YAML flow text: wrong kinds, non-finite and huge numbers, deep nesting, bad strings.
HOSTILE_YAML = [
    "null", "true", "5", "-1", "0", "1.5", ".inf", "-.inf", ".nan", "1e308", "-1e308", "1e-300", "9" * 30,
    "9" * 2000, "4611686018427387904", "1000000000", "1000000", '"abc"', '"caf\u00e9"', "[]", "{}", "[1]",
    "[1, 2, 3]", "[null, 5]", "{a: 1}", "[" * 500 + "]" * 500, "{a: " * 300 + "1" + "}" * 300,
    "!!python/name:os.system", '"${oc.env:NOPE}"', '"${nope}"', "[.nan, .inf]", "[5, 1]", "[1e308, -1e308]",
    "[" + ", ".join(["1"] * 20000) + "]", '"\\0"', "&a [1, 2]", "*nope",
    # samplers and their pieces
    "{sampler: list, length: 1000000000, item: {sampler: choice, values: [1]}}",
    "{sampler: list, length: 1000000, item: {sampler: choice, values: [1]}}",
    "{sampler: list, length: 100, item: {sampler: list, length: 100, item: {sampler: list, length: 100, "
    "item: {sampler: choice, values: [1]}}}}",
    "{sampler: " + "list, length: 2, item: {sampler: " * 60 + "choice, values: [1]" + "}" * 61,
    "{sampler: quantized, low: 0, high: 1.0e+300, step: 1}", "{sampler: quantized, low: 0, high: 1, step: 1.0e-300}",
    "{sampler: uniform, low: -1.0e+308, high: 1.0e+308}", "{sampler: uniform, low: -.inf, high: .inf}",
    "{sampler: power2, low: 1, high: 1.0e+300}", "{sampler: power2, low: 4.9e-324, high: 1}",
    "{sampler: log_uniform, low: 1.0e-300, high: 1.0e+300}", "{sampler: log_uniform, low: 8, high: 64, step: 1.0e-300}",
    "{sampler: choice, values: [{a: 1}, [1, [2]], null, .nan]}", "{sampler: choice, values: []}",
    "{sampler: nope}", "{sampler: choice}", "{sampler: list, length: 2}",
    # strings for base and overrides
    '"/dev/zero"', '"/etc/passwd"', '"nope"', '""', '"s"', '"regnetx_004"', '"resnet18"', '"params.res={a:1}"',
    '"params.res=0"', '"==="', '"hydra.run.dir=x"', '"limits.layers=5"', '"recipe=/dev/zero"', '"-m"',
    '"params.res=99999999"', '"~params"', '"params.depths=[1,1]"', '"params.res=${oc.env:NOPE}"',
]
HOSTILE_SPACE_FILES = [
    "5\n", "[1, 2]\n", "", "base: base\nbase: base\n", "\tbase: base\n", "base: caf\udce9\n", "base: a\0b\n",
    "x: " + "[" * 5000 + "]" * 5000 + "\n",
    "a: &a [1,1,1,1,1,1,1,1,1]\n" + "".join(f"l{i}: &l{i} [" + ",".join(["*" + ("a" if i == 0 else f"l{i - 1}")] * 9)
                                          + "]\n" for i in range(9)),
    "base: !!python/object/apply:os.system ['true']\n", "base: base\nparams: {}\n",
    "x: " + "9" * 5000 + "\n", "#" * 2_000_001 + "\n",
]
SEARCH_OPTIONS = [
    ["--samples", "0"], ["--samples", "-1"], ["--samples", "1"], ["--samples", "9" * 5000], ["--samples", "1e3"],
    ["--samples", "10000000000000"], ["--samples", "200000"], ["--keep", "0"], ["--keep", "-1"],
    ["--keep", "1"], ["--keep", "9" * 40], ["--seed", "-1"], ["--seed", "9" * 40], ["--seed", "abc"],
    ["--seed", "18446744073709551616"], ["--hardware", "nope"], ["--hardware", ""], ["--hardware", "a100"],
    ["--hardware", "caf\udce9"], ["--engine", "nope"], ["--out", "/dev/null"], ["--out", "s.yaml"],
    ["--out", "held"], ["--out", "deep/er/folder"], ["--samples", "10000000000000", "--keep", "2"],
]
SCALE_BASES = {  # small bases of each kind: multipliers, per-stage lists, a bottleneck ResNet
    "mb.yaml": "defaults: [mobilenetv2_100, _self_]\nparams: {res: 32}\n",
    "rx.yaml": "defaults: [regnetx_002, _self_]\nparams: {res: 32}\n",
    "rn.yaml": "defaults: [resnet50, _self_]\nparams: {res: 32, depths: [1, 1, 1, 1]}\n",
}
SCALE_RULE = {"efficientnet": ["--phi", "1"], "dwr": ["--factor", "2"], "resnext": ["--groups", "1,2"]}
BAD_NUMBERS = ["0", "-1", "-0.5", "nan", "inf", "-inf", "1e308", "1e-308", "9" * 5000, "abc", "", "1e3"]
SCALE_OPTIONS = {
    "--phi": ["1..1000000000", "1..100000", "0", "-3", "1e308", "nan", "inf", ",", "1..", "..5", "5..1", "2**10",
              "100", "1,2," * 2000, "9" * 5000 + "..1"],
    "--factor": ["1..100000000", "1e308", "0", "-2", "nan", "inf", "1e-308", "1000000", "1,1,1"],
    "--groups": ["0", "-1", "1e308", "nan", "1..100000000", "1000000000", "2**40", "1.5", "64"],
    "--alpha": BAD_NUMBERS, "--beta": BAD_NUMBERS, "--gamma": BAD_NUMBERS, "--a": BAD_NUMBERS + ["2", "1"],
    "--grid-step": BAD_NUMBERS + ["1e-9", "0.001", "2", "0.25"], "--tolerance": BAD_NUMBERS + ["100"],
    "--keep": ["0", "-1", "1000000000", "9" * 40], "--objective": ["nope", "macs", "activations"],
    "--hardware": ["nope", "", "a100"], "--out": ["/dev/null", "mb.yaml", "held"],
}


def hostile_space(r: random.Random) -> tuple[str, str]:
    """A space file: SPACE with one value made hostile, or a mutated or hostile file."""
    k = r.random()
    if k < 0.15:
        return r.choice(HOSTILE_SPACE_FILES), "file"
    if k < 0.35:
        return mutate_text(r, json.dumps(SPACE, indent=1).encode()).decode("utf-8", "surrogateescape"), "mutated"
    import copy
    space = copy.deepcopy(SPACE)
    path = r.choice(SPACE_PATHS)
    holder = space
    for key in path[:-1]:
        holder = holder[key]
    last = path[-1]
    if isinstance(holder, list) and last >= len(holder):
        holder.append(None)
        last = len(holder) - 1
    holder[last] = "\0HOLE\0"
    value = r.choice(HOSTILE_YAML)
    return json.dumps(space, ensure_ascii=False).replace('"\\u0000HOLE\\u0000"', value), \
        f"{'.'.join(map(str, path))}={value[:30]}"


def explore_case(r: random.Random) -> dict:
    """archc search on a hostile space or with hostile options; archc scale with hostile options or bases."""
    files = {"held/mine.txt": "a user's file\n"}
    if r.random() < 0.55:
        options = ["--samples", "64", "--keep", "3", "--out", "o"]
        if r.random() < 0.6:
            text, what = hostile_space(r)
        else:
            text, what = json.dumps(SPACE), ""
            extra = r.choice(SEARCH_OPTIONS)
            options = [o for i, o in enumerate(options) if not (i % 2 == 0 and o in extra[::2])
                       and not (i % 2 == 1 and options[i - 1] in extra[::2])] + extra
            what = " ".join(x[:20] for x in extra)
        files["s.yaml"] = text
        return {"family": "explore", "what": f"search {what}", "files": files, "argv": ["search", "s.yaml", *options],
                "keeps": "held/mine.txt"}
    rule = r.choice(list(SCALE_RULE))
    base = {"efficientnet": "mb.yaml", "dwr": "rx.yaml", "resnext": "rn.yaml"}[rule]
    if r.random() < 0.1:
        base = r.choice(list(SCALE_BASES))  # a base that does not fit the rule
    files.update(SCALE_BASES)
    options = list(SCALE_RULE[rule])
    k = r.random()
    if k < 0.15:  # a hostile config
        files[base] = SCALE_BASES[base] + r.choice(ADVERSARIAL_CONFIGS)
        what = "config"
    elif k < 0.2:
        base, what = r.choice(["/dev/zero", "nope.yaml", "held", "/etc/passwd"]), "config path"
    else:
        for _ in range(r.randint(1, 2)):
            opt = r.choice(list(SCALE_OPTIONS))
            if opt in options:
                i = options.index(opt)
                del options[i:i + 2]
            options += [opt, r.choice(SCALE_OPTIONS[opt])]
        if rule == "efficientnet" and r.random() < 0.3:
            options += ["--search", "--grid-step", "0.25"] if "--grid-step" not in options else ["--search"]
        what = " ".join(x[:20] for x in options)
    if "--out" not in options:
        options += ["--out", "o"]
    return {"family": "explore", "what": f"scale {rule} {what}", "files": files,
            "argv": ["scale", rule, base, *options], "keeps": "held/mine.txt"}


# ---------------------------------------------------------------- outputs: a user's files stay
TINY = ["params.depths=[1,1]", "params.block=basic", "params.res=32", "save_weights=false"]


def outputs_case(r: random.Random) -> dict:
    """A command told to write where a user's file is; without --overwrite the file must stay."""
    where = r.choice(["held", ".", "held/sub/.."])
    overwrite = r.random() < 0.2
    flag = ["--overwrite"] if overwrite else []
    k = r.random()
    if k < 0.3:
        argv = ["build", "resnet18", *TINY, f"hydra.run.dir={where}", *flag]
    elif k < 0.55:
        argv = ["build", "resnet18", "-m", "params.res=32,40" if r.random() < 0.3 else "params.res=32", *TINY[:2],
                "save_weights=false",
                f"hydra.sweep.dir={where}", *flag]
    elif k < 0.7:
        argv = ["sweep", "resnet18", "params.res=32,40", *TINY[:2], "--cost-only", "--out", where, *flag]
    elif k < 0.85:
        argv = ["search", "s.yaml", "--samples", "32", "--keep", "2", "--out", where, *flag]
    else:
        argv = ["scale", "dwr", "rx.yaml", "--factor", "2", "--out", where, *flag]
    name = r.choice(["mine.txt", "summary.csv", "report.json", "config.yaml", "summary.json", "result.json"])
    files = {f"held/{name}": "a user's file\n", "s.yaml": json.dumps(SPACE), "rx.yaml": SCALE_BASES["rx.yaml"]}
    if where == ".":
        files[name] = "a user's file\n"
    return {"family": "outputs", "what": " ".join(a[:30] for a in argv[:2] + argv[-3:]), "files": files,
            "argv": argv, "keeps": None if overwrite else (name if where == "." else f"held/{name}"),
            # Hydra jobs (a build, a sweep of two): ~6 s alone, twice that on a busy 2-core machine
            "seconds": 30.0 if argv[0] == "build" else None}


def make_case(family: str, r: random.Random) -> dict:
    """One case: files to write and the command to run (JSON-able)."""
    if family == "valid":
        text, _ = valid_spec(r)
        return {"family": family, "files": {"n.arch": text, "c.yaml": "defaults: [base, _self_]\nrecipe: ./n.arch\n"},
                "argv": ["cost", "c.yaml", "--json"], "check_module": r.random() < 0.3}
    if family == "mutated":
        specs = sorted((ROOT / "recipes").glob("*.arch"))
        spec = r.choice(specs)
        presets = sorted(p.stem for p in (ROOT / "conf").glob("*.yaml")
                         if f"recipe: {spec.stem}\n" in p.read_text())
        data = mutate_text(r, spec.read_bytes())
        files = {"m.arch": data.decode("utf-8", "surrogateescape")}
        if presets:
            files["c.yaml"] = f"defaults: [{r.choice(presets)}, _self_]\nrecipe: ./m.arch\n"
            return {"family": family, "files": files, "argv": ["cost", "c.yaml"], "what": spec.name}
        return {"family": family, "files": files, "argv": ["check", "m.arch"], "what": spec.name}
    if family == "adversarial":
        k = r.random()
        if k < 0.55:
            i = r.randrange(len(ADVERSARIAL_SPECS))
            body = ADVERSARIAL_SPECS[i](r)
            text = f"{RECURSIVE}network n() {{\n  input(3, 8, 8)\n{body}\n}}\n"
            cmd = r.choice([["check", "n.arch"], ["cost", "c.yaml", "--json"], ["load", "c.yaml"]])
            return {"family": family, "what": f"spec {i}", "argv": cmd,
                    "files": {"n.arch": text, "c.yaml": "defaults: [base, _self_]\nrecipe: ./n.arch\n"}}
        if k < 0.85:
            o = r.choice(ADVERSARIAL_OVERRIDES)
            return {"family": family, "what": f"override {o[:30]}", "files": {},
                    "argv": [r.choice(["cost", "cost", "build"]), "resnet18", o, "save_weights=false",
                             "params.res=32"] if not o.startswith("params.res") else
                            [r.choice(["cost", "build"]), "resnet18", o, "save_weights=false"]}
        c = r.choice(ADVERSARIAL_CONFIGS)
        text = "defaults: [base, _self_]\nrecipe: resnet\nparams: {depths: [1, 1], block: basic, res: 32}\n" + c
        return {"family": family, "what": f"config {c[:30]!r}", "files": {"c.yaml": text},
                "argv": [r.choice(["cost", "build"]), "c.yaml", "save_weights=false"]}
    if family == "explore":
        return explore_case(r)
    if family == "outputs":
        return outputs_case(r)
    if family == "configs":
        presets = sorted(p for p in (ROOT / "conf").glob("*.yaml") if p.stem != "base")
        p = r.choice(presets)
        data = mutate_text(r, p.read_bytes())
        return {"family": family, "what": p.name, "files": {"c.yaml": data.decode("utf-8", "surrogateescape")},
                "argv": ["cost", "c.yaml"]}
    # cache
    spec = r.choice(sorted((ROOT / "blocks").glob("*.arch")) + sorted((ROOT / "recipes").glob("*.arch")))
    how = r.choice(["garbage", "crafted", "fifo", "zero", "outside", "deep", "truncated", "wrong version"])
    return {"family": family, "what": f"{how} {spec.name}", "files": {}, "argv": ["cache", str(spec), how],
            "seed": r.randrange(2**31)}


# ---------------------------------------------------------------- running one case (in the worker)
# Located: at file:line:col, or naming the config key or override; a command-line option's
# error names the option (argparse's, or archc's `--out: ...`), and a missing config or
# space the argument as typed.
LOCATED = re.compile(r"(^|\n)\S+:\d+:\d+: |config key '|override '|archc \w+: error: (argument \S+|--\w)"
                     r"|(^|\n)error: --\w|(^|\n)error: (no (config|space)|Cannot find primary config) '")


class CaseTimeout(BaseException):
    """Raised by the interval timer: a BaseException, so no `except Exception` swallows it."""


def _timeout(signum, frame):
    raise CaseTimeout


def run_case(case: dict, seconds: float) -> dict:
    """Run `case` in this process under an interval timer; its outcome."""
    import signal

    folder = tempfile.mkdtemp(prefix="fuzz-")
    for name, text in case["files"].items():
        Path(folder, name).parent.mkdir(parents=True, exist_ok=True)
        Path(folder, name).write_bytes(text.encode("utf-8", "surrogateescape"))
    out, err = io.StringIO(), io.StringIO()
    cwd = os.getcwd()
    signal.signal(signal.SIGALRM, _timeout)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    result: dict = {}
    try:
        os.chdir(folder)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            result = _dispatch(case)
        kept = case.get("keeps")
        if kept and (not Path(folder, kept).is_file() or Path(folder, kept).read_bytes()
                     != case["files"][kept].encode("utf-8", "surrogateescape")):
            result = dict(result, outcome_if_ok="wrong")
            print(f"{kept} (a user's file) was changed", file=sys.stderr)
    except CaseTimeout:
        result = {"outcome": "hang"}
    except MemoryError:
        result = {"outcome": "memory"}
    except BaseException as e:  # noqa: BLE001 - whatever escaped archc is the finding
        import traceback
        result = {"outcome": "traceback", "detail": "".join(traceback.format_exception(e))[-1500:]}
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        os.chdir(cwd)
        _forget()
        import shutil
        shutil.rmtree(folder, ignore_errors=True)
    text = err.getvalue()
    if "outcome" not in result:
        rc = result.get("rc")
        if "Traceback" in text:
            result["outcome"] = "traceback"
        elif "MemoryError" in text:
            result["outcome"] = "memory"
        elif "internal error" in text or rc not in (0, 2):
            result["outcome"] = "internal"
        elif result.get("outcome_if_ok") == "wrong":
            result["outcome"] = "wrong"
        elif rc == 0:
            result["outcome"] = "ok"
        elif LOCATED.search(text):
            result["outcome"] = "refused"
        else:
            result["outcome"] = "unlocated"
    result.setdefault("detail", text[-800:])
    return result


def _forget() -> None:
    """What archc keeps in the process between loads: each case starts as a new process would."""
    from archdsl.compiler.elaborate import forget_blocks
    from archdsl.language.caches import forget
    from archdsl.language.errors import SOURCES

    forget()
    forget_blocks()
    SOURCES.clear()


def _dispatch(case: dict) -> dict:
    from archdsl.cli import main

    argv = case["argv"]
    if argv[0] == "load":
        return _load(argv[1])
    if argv[0] == "cache":
        return _cache(Path(argv[1]), argv[2], case["seed"])
    try:
        rc = main(list(argv))
    except SystemExit as e:  # argparse's usage errors (exit 2): archc's main lets them through
        rc = e.code if isinstance(e.code, int) else 2
    res = {"rc": rc}
    if rc == 0 and case.get("check_module"):
        import archdsl
        net = archdsl.load(argv[1], device="meta")
        params = sum(p.numel() for p in net.parameters())
        want = archdsl.cost(argv[1]).total.params
        if params != want:
            res["outcome_if_ok"] = "wrong"
            print(f"module has {params} parameters, its report {want}", file=sys.stderr)
    return res


def _load(config: str) -> dict:
    """archdsl.load through the API: only ArchError may escape."""
    import archdsl
    from archdsl.language.errors import ArchError

    try:
        archdsl.load(config)
    except ArchError as e:
        print(e.render(), file=sys.stderr)
        return {"rc": 2}
    return {"rc": 0}


def _cache(spec: Path, how: str, seed: int) -> dict:
    """Tamper with the parse-cache entry of `spec`; parsing it must still give a fresh parse."""
    from archdsl.language import astdata, parsecache, parser

    r = random.Random(seed)
    text = spec.read_text()
    fresh = parser.parse_text(text, str(spec))
    entry = parsecache.entry_path(text)
    if entry is None:
        return {"rc": 0}
    entry.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    if entry.exists() or entry.is_symlink():
        entry.unlink()
    if how == "garbage":
        entry.write_bytes(bytes(r.randrange(256) for _ in range(r.randint(0, 2000))))
    elif how == "fifo":
        os.mkfifo(entry)
    elif how == "zero":
        entry.symlink_to("/dev/zero")
    elif how in ("crafted", "outside", "truncated", "wrong version", "deep"):
        other = r.choice(sorted((ROOT / "blocks").glob("*.arch")))
        otext = other.read_text()
        src = parser.parse_text(otext, str(other))
        import hashlib
        payload = {"nesting": src.nesting, "items": astdata.file_to_data(src)}
        data = json.dumps({parsecache.AST_TAG: parsecache.FORMAT if how != "wrong version" else 0,
                           "text": hashlib.sha256(text.encode()).hexdigest(), "payload": payload})
        if how == "deep":  # nested past what json (or any walk) can take: written as text
            deep = ("[" * 100000 + "]" * 100000 if r.random() < 0.5
                    else '["Definition",1,1,"block","b",[],[' * 20000 + "]]" * 20000)
            data = data.replace('"items":', '"items":' + deep + ',"was":', 1)
        if how == "truncated":
            data = data[:r.randrange(len(data))]
        if how == "outside":
            planted = Path(tempfile.mkdtemp()) / "planted.json"
            planted.write_text(data)
            entry.symlink_to(planted)
        else:
            entry.write_text(data)
            if how == "crafted":  # in a folder others may write: must not be read
                os.chmod(entry.parent, 0o777)
    try:
        got = parsecache.parse_text(text, str(spec))
    finally:
        os.chmod(entry.parent, 0o700)
        if entry.exists() or entry.is_symlink():
            entry.unlink()
    same = (got.uses, got.definitions) == (fresh.uses, fresh.definitions)
    if not same:
        print(f"cache entry ({how}) read as another tree", file=sys.stderr)
    return {"rc": 0, "outcome_if_ok": "ok" if same else "wrong"}


def worker(mem_mb: int, seconds: float) -> None:
    """Read cases (JSON lines) on stdin, answer outcomes (JSON lines) on stdout."""
    import resource

    import archdsl.cli  # noqa: F401 - imported before the limit: the limit is on what a case adds
    import archdsl.api  # noqa: F401
    import torch  # noqa: F401
    torch.set_num_threads(1)
    if os.environ.get("FUZZ_PROMOTE_AFTER"):  # --promote-after: the compiled tier from the first evaluations
        from archdsl.language import bytecode
        bytecode.PROMOTE_AFTER = int(os.environ["FUZZ_PROMOTE_AFTER"])
    with open("/proc/self/status") as f:
        vm = next(int(x.split()[1]) * 1024 for x in f if x.startswith("VmSize:"))
    resource.setrlimit(resource.RLIMIT_AS, (vm + mem_mb * 2**20, resource.RLIM_INFINITY))
    real_stdout = sys.stdout
    for line in sys.stdin:
        case = json.loads(line)
        started = time.perf_counter()
        res = run_case(case, case.get("seconds") or seconds)
        res["seconds"] = round(time.perf_counter() - started, 3)
        real_stdout.write(json.dumps(res) + "\n")
        real_stdout.flush()


# ---------------------------------------------------------------- the parent
class Pool:
    """One worker process; restarted when it dies or overruns a case."""

    def __init__(self, mem_mb: int, seconds: float, cache_dir: str):
        self.mem_mb, self.seconds, self.cache_dir = mem_mb, seconds, cache_dir
        self.proc: subprocess.Popen | None = None
        self.done = 0  # cases the worker ran

    def _start(self) -> None:
        env = dict(os.environ, ARCHDSL_CACHE_DIR=self.cache_dir, OMP_NUM_THREADS="1",
                   PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
        env.pop("ARCHDSL_NO_CACHE", None)
        self.proc = subprocess.Popen([sys.executable, __file__, "--worker", str(self.mem_mb), str(self.seconds)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     text=True, env=env, cwd=ROOT)

    def run(self, case: dict) -> dict:
        import select

        if self.proc is not None and self.done >= 500:  # a fresh worker now and then: no slow creep
            self.close()
        if self.proc is None or self.proc.poll() is not None:
            self._start()
            self.done = 0
        self.done += 1
        self.proc.stdin.write(json.dumps(case) + "\n")
        self.proc.stdin.flush()
        # The first case also waits for the imports; later ones for the timer and some slack.
        ready, _, _ = select.select([self.proc.stdout], [], [], self.seconds * 2 + 120)
        line = self.proc.stdout.readline() if ready else ""
        if line:
            return json.loads(line)
        outcome = "hang" if not ready else "crash"
        self.close()
        return {"outcome": outcome, "detail": "the worker " + ("overran its timer" if not ready else "died")}

    def close(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None


def cases(n: int, seed: int, weights: dict[str, float] | None = None) -> list[dict]:
    r = random.Random(seed)
    weights = weights or {"valid": 0.2, "mutated": 0.3, "adversarial": 0.3, "configs": 0.1, "cache": 0.1}
    fams = list(weights)
    return [make_case(r.choices(fams, [weights[f] for f in fams])[0], r) for _ in range(n)]


def explore_cases(n: int, seed: int, outputs: float = 0.2) -> list[dict]:
    """Cases of `archc search`/`scale` and of output folders, from their own generator:
    adding them leaves the first families' cases of a seed as they were."""
    r = random.Random(f"{seed}-explore")
    return [make_case("outputs" if r.random() < outputs else "explore", r) for _ in range(n)]


def run(all_cases: list[dict], mem_mb: int = 1024, seconds: float = 10.0, progress: bool = False) -> list[dict]:
    results = []
    with tempfile.TemporaryDirectory(prefix="fuzz-cache-") as cache_dir:
        os.chmod(cache_dir, 0o700)
        pool = Pool(mem_mb, seconds, cache_dir)
        try:
            for i, case in enumerate(all_cases):
                res = dict(pool.run(case), family=case["family"], what=case.get("what", ""),
                           argv=[a[:80] for a in case["argv"]])
                results.append(res)
                if progress and (i + 1) % 100 == 0:
                    bad = sum(x["outcome"] in FAILURES for x in results)
                    print(f"{i + 1}/{len(all_cases)} cases, {bad} failures", file=sys.stderr, flush=True)
        finally:
            pool.close()
    return results


def report(results: list[dict]) -> str:
    outcomes = ["ok", "refused", *FAILURES]
    per: dict[str, Counter] = defaultdict(Counter)
    for x in results:
        per[x["family"]][x["outcome"]] += 1
    lines = ["| family | cases | " + " | ".join(outcomes) + " |", "|---|---:|" + "---:|" * len(outcomes)]
    for fam in FAMILIES:
        if per[fam]:
            lines.append(f"| {fam} | {sum(per[fam].values())} | " + " | ".join(str(per[fam][o]) for o in outcomes) + " |")
    total = Counter()
    for c in per.values():
        total.update(c)
    lines.append(f"| all | {len(results)} | " + " | ".join(str(total[o]) for o in outcomes) + " |")
    slow = sorted(results, key=lambda x: -x.get("seconds", 0))[:3]
    lines.append("\nslowest: " + "; ".join(f"{x['family']} {x['what']} {x.get('seconds')} s" for x in slow))
    for o in FAILURES:
        ex = next((x for x in results if x["outcome"] == o), None)
        if ex:
            lines.append(f"\nfirst {o}: {ex['family']} {ex['what']} {ex['argv']}\n{ex.get('detail', '')[-600:]}")
    return "\n".join(lines)


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker(int(sys.argv[2]), float(sys.argv[3]))
        return 0
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cases", type=int, default=10000)
    p.add_argument("--explore-cases", type=int, default=2000,
                   help="cases of archc search/scale and output folders, beside --cases")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--seconds", type=float, default=10.0, help="time limit of one case")
    p.add_argument("--mem-mb", type=int, default=1024, help="memory a case may add to the worker's")
    p.add_argument("--out", help="write the results (JSON) here too")
    p.add_argument("--promote-after", type=int,
                   help="compile expressions to bytecode after this many evaluations (archdsl.language.bytecode; "
                        "1: every expression runs compiled, so each error takes the fallback to the closures)")
    a = p.parse_args()
    if a.promote_after:
        os.environ["FUZZ_PROMOTE_AFTER"] = str(a.promote_after)
    started = time.perf_counter()
    results = run(cases(a.cases, a.seed) + explore_cases(a.explore_cases, a.seed), a.mem_mb, a.seconds,
                  progress=True)
    print(report(results))
    print(f"\n{len(results)} cases in {time.perf_counter() - started:.0f} s (seed {a.seed})")
    if a.out:
        Path(a.out).write_text(json.dumps(results, indent=1))
    return 1 if any(x["outcome"] in FAILURES for x in results) else 0


if __name__ == "__main__":
    sys.exit(main())
