"""A fixed-seed sample of bench/fuzz.py's cases (issue #14): random valid networks,
mutated shipped specs and configs, adversarial specs, configs and overrides, a
tampered parse cache, hostile `archc search`/`archc scale` inputs, and commands told
to write where a user's file is, each in a worker process under a time and a memory limit.
Not one may end in a traceback, an internal error, a hang, a memory blow-up, an
unlocated error or a module that disagrees with its report.
(bench/fuzz.py --cases 10000 runs the full set.)"""
import importlib.util
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "bench" / "fuzz.py"


def load_fuzz():
    spec = importlib.util.spec_from_file_location("archdsl_bench_fuzz", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_fixed_sample_of_fuzz_cases_all_get_an_answer():
    fuzz = load_fuzz()
    # Every family, the adversarial ones weighted up (they find what breaks).
    cases = fuzz.cases(90, seed=0, weights={"valid": 0.15, "mutated": 0.25, "adversarial": 0.35,
                                            "configs": 0.1, "cache": 0.15})
    assert {c["family"] for c in cases} == set(fuzz.FAMILIES) - {"explore", "outputs"}  # (those: below)
    results = fuzz.run(cases, mem_mb=1024, seconds=10.0)
    failures = [r for r in results if r["outcome"] in fuzz.FAILURES]
    assert not failures, fuzz.report(results)
    assert sum(r["outcome"] == "ok" for r in results if r["family"] == "valid") == \
        sum(c["family"] == "valid" for c in cases)  # every random valid program compiles


def test_a_fixed_sample_of_search_scale_and_output_folder_cases_all_get_an_answer():
    fuzz = load_fuzz()
    cases = fuzz.explore_cases(40, seed=0, outputs=0.2)
    assert {c["family"] for c in cases} == {"explore", "outputs"}
    assert {c["argv"][0] for c in cases} >= {"search", "scale"}
    results = fuzz.run(cases, mem_mb=1024, seconds=10.0)
    failures = [r for r in results if r["outcome"] in fuzz.FAILURES]
    assert not failures, fuzz.report(results)
