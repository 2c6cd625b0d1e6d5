"""An on-disk cache of parsed .arch files, as Python keeps __pycache__.

Parsing is most of a small model's load time when a process starts (lark
runs in Python: ~14 ms for recipes/mobilenetv4.arch); reading the stored
tree back takes ~1.5 ms. An entry is keyed by a hash of the file's text, the
grammar, the code that builds the tree and archdsl's version, so an edit to
any of them simply misses. Entries are JSON (archdsl.astdata): reading one
can only build syntax-tree nodes, never run code.

Where: $ARCHDSL_CACHE_DIR, else $XDG_CACHE_HOME/archdsl, else ~/.cache/archdsl
(never next to the specs). ARCHDSL_NO_CACHE=1 turns it off. Any entry that
cannot be read or written is ignored: the file is parsed as if no cache
existed. The folder may be deleted at any time.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from functools import lru_cache
from pathlib import Path

from . import ast as A
from . import astdata, parser
from .errors import SOURCES
from .resources import grammar_path

ENV_DIR = "ARCHDSL_CACHE_DIR"
ENV_OFF = "ARCHDSL_NO_CACHE"
FORMAT = 1  # bump when the stored form changes


def cache_dir() -> Path | None:
    """The cache folder, or None when the cache is turned off."""
    if os.environ.get(ENV_OFF, "") not in ("", "0"):
        return None
    return archdsl_cache_folder()


def archdsl_cache_folder() -> Path | None:
    """Where archdsl keeps what it caches (None: no home to put it in)."""
    if os.environ.get(ENV_DIR):
        return Path(os.environ[ENV_DIR])
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    if os.path.isabs(xdg):  # the XDG spec ignores relative paths
        return Path(xdg) / "archdsl"
    try:
        return Path.home() / ".cache" / "archdsl"
    except RuntimeError:  # no home directory
        return None


@lru_cache(maxsize=1)
def _fingerprint() -> bytes | None:
    """What a parse depends on besides the text; None (no cache) if it cannot be read."""
    from . import __version__

    h = hashlib.sha256(f"archdsl {__version__}, format {FORMAT}\0".encode())
    try:
        for p in (grammar_path(), Path(parser.__file__), Path(A.__file__), Path(astdata.__file__)):
            h.update(p.read_bytes() + b"\0")
    except OSError:
        return None
    return h.digest()


def entry_path(text: str) -> Path | None:
    """Where the parse of `text` is stored; None when the cache is off."""
    folder, fingerprint = cache_dir(), _fingerprint()
    if folder is None or fingerprint is None:
        return None
    key = hashlib.sha256(fingerprint + text.encode("utf-8", "surrogatepass")).hexdigest()
    return folder / "ast" / f"{key}.json"


def _read(entry: Path, file: str, text: str) -> A.SourceFile | None:
    try:
        data = json.loads(entry.read_bytes())
        if type(data) is not dict or data.get("archdsl_ast") != FORMAT:
            return None
        src = astdata.file_from_data(data.get("items"), file, text)
    except (OSError, ValueError, RecursionError):  # missing, unreadable, corrupt: parse instead
        return None
    SOURCES[file] = text  # as the parser would: errors quote the line
    return src


def _write(entry: Path, src: A.SourceFile) -> None:
    data = json.dumps({"archdsl_ast": FORMAT, "items": astdata.file_to_data(src)}, separators=(",", ":"))
    tmp = None
    try:
        entry.parent.mkdir(parents=True, exist_ok=True)
        # Written beside the entry, then renamed over it: a reader sees all or nothing.
        fd, tmp = tempfile.mkstemp(dir=entry.parent, prefix=".tmp-", suffix=".json")
        with os.fdopen(fd, "w") as f:
            f.write(data)
        os.replace(tmp, entry)
    except OSError:  # read-only or full disk: the cache is an optimization only
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass


def parse_text(text: str, file: str) -> A.SourceFile:
    """parser.parse_text, through the cache."""
    entry = entry_path(text)
    if entry is not None:
        src = _read(entry, file, text)
        if src is not None:
            return src
    src = parser.parse_text(text, file)
    if entry is not None:
        _write(entry, src)
    return src


def parse_file(path: str | Path) -> A.SourceFile:
    """parser.parse_file, through the cache."""
    return parse_text(parser.read_source(Path(path)), str(path))
