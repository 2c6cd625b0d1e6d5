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
  link to /dev/zero or out of the folder): the parse must equal a fresh one.

Each case runs in a worker process (`archc` in-process, in a fresh folder)
under a time limit (an interval timer; the worker is killed past twice that)
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
FAMILIES = ("valid", "mutated", "adversarial", "configs", "cache")

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
LOCATED = re.compile(r"(^|\n)\S+:\d+:\d+: |config key '|override '")


class CaseTimeout(BaseException):
    """Raised by the interval timer: a BaseException, so no `except Exception` swallows it."""


def _timeout(signum, frame):
    raise CaseTimeout


def run_case(case: dict, seconds: float) -> dict:
    """Run `case` in this process under an interval timer; its outcome."""
    import signal

    folder = tempfile.mkdtemp(prefix="fuzz-")
    for name, text in case["files"].items():
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
        elif rc == 0:
            result["outcome"] = result.get("outcome_if_ok", "ok")
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
    rc = main(list(argv))
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
    with open("/proc/self/status") as f:
        vm = next(int(x.split()[1]) * 1024 for x in f if x.startswith("VmSize:"))
    resource.setrlimit(resource.RLIMIT_AS, (vm + mem_mb * 2**20, resource.RLIM_INFINITY))
    real_stdout = sys.stdout
    for line in sys.stdin:
        case = json.loads(line)
        started = time.perf_counter()
        res = run_case(case, seconds)
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
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--seconds", type=float, default=10.0, help="time limit of one case")
    p.add_argument("--mem-mb", type=int, default=1024, help="memory a case may add to the worker's")
    p.add_argument("--out", help="write the results (JSON) here too")
    a = p.parse_args()
    started = time.perf_counter()
    results = run(cases(a.cases, a.seed), a.mem_mb, a.seconds, progress=True)
    print(report(results))
    print(f"\n{len(results)} cases in {time.perf_counter() - started:.0f} s (seed {a.seed})")
    if a.out:
        Path(a.out).write_text(json.dumps(results, indent=1))
    return 1 if any(x["outcome"] in FAILURES for x in results) else 0


if __name__ == "__main__":
    sys.exit(main())
