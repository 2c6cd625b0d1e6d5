"""An on-disk cache of parsed files, as Python keeps __pycache__.

Two kinds of file are parsed on every load: .arch specs and config YAML.
Parsing a spec is most of a small model's load time when a process starts
(lark runs in Python: ~14 ms for recipes/mobilenetv4.arch; reading the
stored tree back takes ~1.5 ms), and a config file's YAML 0.08 ms on
PyYAML's C parser, 0.8 ms without it (a preset reads three files). An entry is keyed by a hash of the
file's text and of what its parse depends on (for a spec: the grammar, the
code that builds the tree; for YAML: the YAML loader's
versions), so an edit to any of them simply misses. Entries are JSON: a
spec's tree is read back through archdsl.language.astdata, which can only build
syntax-tree nodes, and YAML data is plain data already, so reading an entry
never runs code.

Where: $ARCHDSL_CACHE_DIR, else $XDG_CACHE_HOME/archdsl, else ~/.cache/archdsl
(never next to the specs). ARCHDSL_NO_CACHE=1 turns it off. Any entry that
cannot be read or written is ignored: the file is parsed as if no cache
existed. The folder may be deleted at any time.

What is read is checked, as a cache folder may be shared or tampered with:
the folder must be the user's own and writable by no one else (else the
cache is not used), an entry must be a regular file of the user's (never a
link, FIFO or device) of bounded size, and it carries the hash of the text it
stands for, which must be the text being parsed. A syntax tree is also no
deeper than the limit `nesting` allows now (a tree stored under a higher
limit is parsed again, which reports it).
"""
from __future__ import annotations

import hashlib
import json
import os
import stat
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

from archdsl.language import ast as A
from archdsl.language import astdata, budget, parser
from archdsl.language.caches import ENV_DIR, home_folder
from archdsl.language.errors import SOURCES
from archdsl.language.resources import grammar_path

ENV_OFF = "ARCHDSL_NO_CACHE"
FORMAT = 3  # bump when the stored form changes


def cache_dir() -> Path | None:
    """The cache folder, or None when the cache is turned off."""
    folder = _folder()
    return None if folder is None else Path(folder)


def _folder() -> str | None:
    """cache_dir() as a string (read on every load: strings are cheaper than Paths)."""
    env = os.environ
    if env.get(ENV_OFF, "") not in ("", "0"):
        return None
    return home_folder(env.get(ENV_DIR, ""), env.get("XDG_CACHE_HOME", ""), env.get("HOME", ""))


def _entry(kind: str, fingerprint: bytes | None, text: str) -> tuple[str, str] | None:
    """(the entry's path, the hash of `text` it must carry); None when the cache is off."""
    folder = _folder()
    if folder is None or fingerprint is None:
        return None
    data = text.encode("utf-8", "surrogatepass")
    key = hashlib.sha256(fingerprint + data).hexdigest()
    return os.path.join(folder, kind, key + ".json"), hashlib.sha256(data).hexdigest()


def _private(folder: str) -> bool:
    """Is `folder` a real folder of this user's that no one else may write?"""
    try:
        st = os.lstat(folder)
    except OSError:
        return False
    return (stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid()
            and not st.st_mode & (stat.S_IWGRP | stat.S_IWOTH))


# An entry is a few times the text it stands for; anything far larger is not ours.
_MAX_ENTRY = 64 << 20


def _read(entry: tuple[str, str], tag: str) -> Any:
    """The payload of a stored entry; None when it is missing, unreadable, unsafe or not ours."""
    path, text_hash = entry
    folder = os.path.dirname(path)
    if not (_private(folder) and _private(os.path.dirname(folder))):
        return None
    try:
        # No links followed, no waiting on a FIFO: only a regular file of ours is read.
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid() or st.st_size > _MAX_ENTRY:
            return None
        with os.fdopen(fd, "rb") as f:
            fd = -1
            data = json.loads(f.read(_MAX_ENTRY + 1))
    except (OSError, ValueError, RecursionError):
        return None
    finally:
        if fd >= 0:
            os.close(fd)
    if type(data) is not dict or data.get(tag) != FORMAT or data.get("text") != text_hash:
        return None
    return data.get("payload")


def _write(entry: tuple[str, str], tag: str, payload: Any) -> None:
    path, text_hash = entry
    try:
        data = json.dumps({tag: FORMAT, "text": text_hash, "payload": payload}, separators=(",", ":"))
    except (ValueError, RecursionError):  # not plain data after all: not cached
        return
    tmp = None
    folder = os.path.dirname(path)
    try:
        os.makedirs(folder, mode=0o700, exist_ok=True)
        if not (_private(folder) and _private(os.path.dirname(folder))):
            return  # someone else's or shared: nothing of ours goes there
        # Written beside the entry, then renamed over it: a reader sees all or nothing.
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".json")
        with os.fdopen(fd, "w") as f:
            f.write(data)
        os.replace(tmp, path)
    except OSError:  # read-only or full disk: the cache is an optimization only
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass


# ---------------------------------------------------------------- .arch syntax trees
AST_TAG = "archdsl_ast"


@lru_cache(maxsize=1)
def _ast_fingerprint() -> bytes | None:
    """What a parse depends on besides the text; None (no cache) if it cannot be read."""
    h = hashlib.sha256(f"archdsl parse cache, format {FORMAT}\0".encode())
    try:
        for p in (grammar_path(), Path(parser.__file__), Path(A.__file__), Path(astdata.__file__)):
            h.update(p.read_bytes() + b"\0")
    except OSError:
        return None
    return h.digest()


def entry_path(text: str) -> Path | None:
    """Where the parse of spec `text` is stored; None when the cache is off."""
    entry = _entry("ast", _ast_fingerprint(), text)
    return None if entry is None else Path(entry[0])


def parse_text(text: str, file: str) -> A.SourceFile:
    """parser.parse_text, through the cache."""
    entry = _entry("ast", _ast_fingerprint(), text)
    if entry is not None:
        stored = _read(entry, AST_TAG)
        if type(stored) is dict and type(stored.get("nesting")) is int \
                and stored["nesting"] <= budget.current().nesting:
            try:
                src = astdata.file_from_data(stored.get("items"), file, text)
            except (ValueError, RecursionError):  # not a tree this version writes: parse instead
                src = None
            if src is not None:
                src.nesting = stored["nesting"]
                SOURCES[file] = text  # as the parser would: errors quote the line
                return src
    src = parser.parse_text(text, file)
    if entry is not None:
        _write(entry, AST_TAG, {"nesting": src.nesting, "items": astdata.file_to_data(src)})
    return src


def parse_file(path: str | Path) -> A.SourceFile:
    """parser.parse_file, through the cache."""
    return parse_text(parser.read_source(Path(path)), str(path))


# ---------------------------------------------------------------- config YAML
YAML_TAG = "archdsl_yaml"


@lru_cache(maxsize=1)
def _yaml_fingerprint() -> bytes:
    import omegaconf
    import yaml

    # The loader is OmegaConf's (PyYAML's safe loader with OmegaConf's resolvers).
    return f"archdsl parse cache, format {FORMAT}, PyYAML {yaml.__version__}, " \
           f"omegaconf {omegaconf.__version__}\0".encode()


def _exact_in_json(value: Any) -> bool:
    """Does JSON give `value` back as it is (str keys, no tuples, sets or dates)?"""
    t = type(value)
    if t is dict:
        return all(type(k) is str and _exact_in_json(v) for k, v in value.items())
    if t is list:
        return all(_exact_in_json(v) for v in value)
    return t in (str, int, float, bool, type(None))


def yaml_data(text: str, load: Callable[[str], Any]) -> Any:
    """`load(text)` (a YAML loader), through the cache. Data JSON cannot hold
    exactly is loaded every time."""
    entry = _entry("yaml", _yaml_fingerprint(), text)
    if entry is not None:
        data = _read(entry, YAML_TAG)
        if type(data) is dict and "value" in data:
            return data["value"]
    value = load(text)
    if entry is not None and _exact_in_json(value):
        _write(entry, YAML_TAG, {"value": value})
    return value
