import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

# The parse cache of the tests (and of the archc processes they start) lives in
# a temporary folder, never in the user's ~/.cache; set before archdsl is used.
_CACHE_DIR = tempfile.mkdtemp(prefix="archdsl-test-cache-")
os.environ["ARCHDSL_CACHE_DIR"] = _CACHE_DIR
# Nor do the user's own presets (~/.config/archdsl: hardware `archc calibrate`
# measured, say) take part: the tests see the bundled configs only.
_CONFIG_DIR = tempfile.mkdtemp(prefix="archdsl-test-config-")
os.environ["ARCHDSL_CONFIG_DIR"] = _CONFIG_DIR


def pytest_unconfigure(config):
    shutil.rmtree(_CACHE_DIR, ignore_errors=True)
    shutil.rmtree(_CONFIG_DIR, ignore_errors=True)


@pytest.fixture
def one_thread():
    """1 torch thread for the test: on a small shared machine 2 intra-op threads
    stall on barriers whenever another process holds a core (bench/README.md)."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture
def program_of(tmp_path):
    """program_of(text): the Program of an .arch text (written to a temporary
    file), with no elaborated block bodies kept from earlier tests."""
    from archdsl.compiler.elaborate import forget_blocks
    from archdsl.language.program import load_program

    def load(text: str, name: str = "spec.arch"):
        f = tmp_path / name
        f.write_text(text)
        forget_blocks()
        return load_program(f)
    return load


def small_res(preset: str, want: int = 64) -> int:
    """`want`, or the smallest input the preset's network declares it takes
    (`res: int >= 75`: Inception's unpadded convolutions need that much)."""
    from archdsl.explore.points import Base
    from archdsl.language import ast as A

    least = want
    for p in Base(preset).network.params:
        if p.name != "res" or p.type is None:
            continue
        for alt in p.type.alternatives:
            for op, bound in alt.bounds:
                if op in (">=", ">") and isinstance(bound, A.Const):
                    least = max(least, bound.value + (op == ">"))
    return least
