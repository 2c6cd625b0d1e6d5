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


def pytest_unconfigure(config):
    shutil.rmtree(_CACHE_DIR, ignore_errors=True)


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
