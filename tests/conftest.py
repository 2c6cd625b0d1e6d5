import os
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

# The parse cache of the tests (and of the archc processes they start) lives in
# a temporary folder, never in the user's ~/.cache; set before archdsl is used.
_CACHE_DIR = tempfile.mkdtemp(prefix="archdsl-test-cache-")
os.environ["ARCHDSL_CACHE_DIR"] = _CACHE_DIR


def pytest_unconfigure(config):
    shutil.rmtree(_CACHE_DIR, ignore_errors=True)
