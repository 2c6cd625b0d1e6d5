"""Compose simple configs without Hydra's machinery.

Hydra's compose also builds its own config tree (logging, launchers, sweepers),
which costs ~40 ms a call; `archdsl.cost` should cost a few. This handles the
subset archc's configs use — a defaults list of config names, `group: option`
entries and an explicit `_self_`; overrides `key=v`, `+key=v`, `++key=v` and
`group=option` — and returns None for anything else, so that Hydra composes
(and reports errors). tests/test_config.py checks that both agree.
"""
from __future__ import annotations

import copy
import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from omegaconf import OmegaConf
from omegaconf._utils import get_yaml_loader

from archdsl.language import budget
from archdsl.language.ast import Loc
from archdsl.language.caches import process_cache
from archdsl.language.errors import SOURCES, ArchError, ConfigError
from archdsl.language.parsecache import yaml_data
from archdsl.language.parser import decode

# path -> (mtime, data, whether it may hold an interpolation)
_YAML: dict[str, tuple[float, dict, bool]] = process_cache("read")


class _Unsupported(Exception):
    pass


def _load(path: str) -> tuple[dict, bool]:
    """A config file's data (a copy), and whether it may hold an ${...} interpolation."""
    mtime = os.stat(path).st_mtime
    hit = _YAML.get(path)
    if hit is None or hit[0] != mtime:
        text = read_config_text(path)
        if "@package" in text:
            raise _Unsupported
        data = config_mapping(text, path)
        if not isinstance(data.get("defaults", []), list):
            raise ArchError("`defaults` is a list: defaults: [base, _self_]", Loc(path, 1, 1))
        # (The hydra: section, which only Hydra reads, is left out: see expand.)
        hit = (mtime, data, any(_interpolates(v) for k, v in data.items() if k != "hydra"))
        _YAML[path] = hit
    return _copied(hit[1]), hit[2]


def read_config_text(path: str) -> str:
    """A config file's text: UTF-8, at most the limit config_bytes."""
    limit = budget.current().config_bytes
    with open(path, "rb") as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise ConfigError(f"{path} is over the limit config_bytes={limit:,}", hint=budget.current().hint("config_bytes"))
    text = decode(data, path)
    SOURCES[path] = text
    bad = _UNREADABLE.search(text)
    if bad is not None:  # PyYAML would refuse it unlocated, or Python's int() with a ValueError
        line = text.count("\n", 0, bad.start()) + 1
        column = bad.start() - (text.rfind("\n", 0, bad.start()) + 1) + 1
        what = f"a number of {len(bad.group()):,} digits" if bad.group()[0].isdigit() else \
            f"the control character {bad.group()!r}"
        raise ArchError(f"a config file cannot hold {what}", Loc(path, line, column),
                        hint=budget.current().hint("int_bits") if bad.group()[0].isdigit() else None)
    return text


# Control characters YAML refuses (tab, newline and carriage return are YAML's), and
# digit runs longer than any number archc takes (Python's int() stops at 4300).
_UNREADABLE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]|\d{1000,}")


def yaml_error(e: Exception, path: str | None = None, text: str | None = None) -> ArchError:
    """PyYAML's error located at file:line:col (its marks count from 0), the line quoted."""
    mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
    problem = getattr(e, "problem", None) or str(e).splitlines()[0]
    name = mark.name if mark is not None and mark.name and not mark.name.startswith("<") else path
    if mark is None or name is None:
        return ConfigError(f"invalid YAML: {problem}") if path is None else \
            ArchError(f"invalid YAML: {problem}", Loc(path, 1, 1))
    if text is None:
        try:
            text = Path(name).read_text()
        except (OSError, UnicodeDecodeError):
            pass
    if text is not None:
        SOURCES[name] = text
    return ArchError(f"invalid YAML: {problem}", Loc(name, mark.line + 1, mark.column + 1))


def config_mapping(text: str, path: str, what: str = "config file") -> dict:
    """The mapping a config file (or a design space file) holds, read from its
    `text`: bounded in nesting and aliases (checked as it is loaded, before
    anything walks it: the cache's writer would), YAML errors located."""
    try:
        data = yaml_data(text, lambda t: _check_size(_parse_yaml(t), path))
    except RecursionError:
        raise ArchError("the YAML nests too deeply", Loc(path, 1, 1), hint=budget.current().hint("nesting")) from None
    except yaml.YAMLError as e:
        raise yaml_error(e, path, text) from None
    data = {} if data is None else data
    if not isinstance(data, dict):
        raise ArchError(f"a {what} holds keys and values (a mapping), not {data!r:.40}", Loc(path, 1, 1))
    return data


def _check_size(data, path: str):
    """Refuse YAML whose values, aliases expanded, are more than the limit config_nodes (a
    "billion laughs": 9 aliases of 9 aliases of ... read as a few lines, then expand to 10**9)."""
    limits = budget.current()
    todo, seen = [(data, 1)], 0
    while todo:
        v, depth = todo.pop()
        seen += 1
        if seen > limits.config_nodes:
            raise ArchError(f"more than the limit config_nodes={limits.config_nodes:,} values "
                            "(YAML aliases count once per use)", Loc(path, 1, 1), hint=limits.hint("config_nodes"))
        if depth > limits.nesting:
            raise ArchError(f"nested more than the limit nesting={limits.nesting} deep", Loc(path, 1, 1),
                            hint=limits.hint("nesting"))
        if type(v) is dict:
            todo.extend((x, depth + 1) for x in v.values())
        elif type(v) is list:
            todo.extend((x, depth + 1) for x in v)
    return data


def _interpolates(value) -> bool:
    """Does plain YAML data hold an ${...} interpolation?"""
    if type(value) is str:
        return "${" in value
    if type(value) is dict:
        return any(_interpolates(k) or _interpolates(v) for k, v in value.items())
    if type(value) is list:
        return any(_interpolates(v) for v in value)
    return False


def _parse_yaml(text: str) -> Any:
    return yaml.load(text, Loader=_yaml_loader())


@lru_cache(maxsize=1)
def _yaml_loader() -> type:
    """OmegaConf's YAML loader (its implicit resolvers and constructors: YAML
    1.2 floats, no timestamps; duplicate keys refused) on PyYAML's C parser
    where PyYAML has one: ~10x faster on a config file (0.84 -> 0.08 ms for
    conf/base.yaml). tests/test_config.py checks both load alike."""
    omegaconf_loader = get_yaml_loader()
    c_loader = getattr(yaml, "CSafeLoader", None)
    if c_loader is None:
        return omegaconf_loader

    class Loader(c_loader):
        yaml_implicit_resolvers = omegaconf_loader.yaml_implicit_resolvers
        yaml_constructors = omegaconf_loader.yaml_constructors

        def construct_mapping(self, node, deep=False):
            seen = set()
            for k, _ in node.value:
                if k.tag == yaml.resolver.BaseResolver.DEFAULT_SCALAR_TAG:
                    if k.value in seen:  # located at the second one, as OmegaConf's loader does
                        raise yaml.constructor.ConstructorError("while constructing a mapping", node.start_mark,
                                                                f"found duplicate key {k.value}", k.start_mark)
                    seen.add(k.value)
            return super().construct_mapping(node, deep=deep)
    return Loader


def _copied(value):
    """A deep copy of plain YAML data (dicts, lists, scalars): copy.deepcopy's
    result, without its bookkeeping for shared and cyclic objects."""
    if type(value) is dict:
        return {k: _copied(v) for k, v in value.items()}
    if type(value) is list:
        return [_copied(v) for v in value]
    return value


class _Composer:
    def __init__(self, search: list[str], choices: dict[str, str]):
        self.search = search
        self.choices = choices
        self.interpolates = False  # may a file read hold an ${...} interpolation?

    def find(self, rel: str) -> str:
        for d in self.search:
            p = os.path.join(d, rel + ".yaml")
            if os.path.isfile(p):
                return p
        raise _Unsupported

    def is_group(self, name: str) -> bool:
        return any(os.path.isdir(os.path.join(d, name)) for d in self.search)

    def expand(self, rel: str) -> list[dict]:
        data, interpolates = _load(self.find(rel))
        self.interpolates |= interpolates
        data.pop("hydra", None)  # output folders: only `archc build` (Hydra itself) uses them
        defaults = data.pop("defaults", [])
        if not defaults:
            return [data]
        if "_self_" not in defaults:
            raise _Unsupported
        parts: list[dict] = []
        for entry in defaults:
            if entry == "_self_":
                parts.append(data)
            elif isinstance(entry, str) and "/" not in rel:
                parts += self.expand(entry)
            elif isinstance(entry, dict) and len(entry) == 1:
                group, option = next(iter(entry.items()))
                if not isinstance(option, str) or " " in group or "@" in group or "/" in rel:
                    raise _Unsupported
                option = self.choices.get(group, option)
                sub = self.expand(f"{group}/{option}")
                for s in sub:
                    parts.append({group: s})
            else:
                raise _Unsupported
        return parts


def _merge(into: dict, other: dict) -> None:
    """OmegaConf's merge of plain data: dicts merge key by key, anything else replaces."""
    for k, v in other.items():
        if isinstance(v, dict) and isinstance(into.get(k), dict):
            _merge(into[k], v)
        else:
            into[k] = v


def _with_omegaconf(parts: list[dict], values: list) -> dict:
    cfg = OmegaConf.merge(*[OmegaConf.create(p) for p in parts])
    for o, key, value in values:
        exists = OmegaConf.select(cfg, key, default=_Unsupported) is not _Unsupported
        if (o.is_add() and exists) or (not o.is_add() and not o.is_force_add() and not exists):
            raise _Unsupported
        OmegaConf.update(cfg, key, value, merge=True, force_add=True)
    return OmegaConf.to_container(cfg, resolve=True)


@lru_cache(maxsize=1)
def _overrides_parser():
    from hydra.core.override_parser.overrides_parser import OverridesParser

    return OverridesParser.create()  # building Hydra's ANTLR parser costs ~3 ms


def _parse_overrides(overrides: list[str]) -> list:
    """Overrides as Hydra parses them. The plainest — `a.b=1`, `+a=1.5e-3`,
    `++a=true`, `a=relu`, `a=[8, 16]` — are read here: Hydra's ANTLR parser takes ~1 ms
    each, half of a design-space point's `archdsl.cost` (tests check both
    readings agree); anything else goes to Hydra."""
    plain = [_plain(o) for o in overrides]
    rest = [o for o, p in zip(overrides, plain) if p is None]
    if rest:  # each line is parsed on its own: Hydra reads the others, in their places
        theirs = iter(_overrides_parser().parse_overrides(rest))
        plain = [p if p is not None else next(theirs) for p in plain]
    return plain


_KEY_VALUE = re.compile(r"(\+\+|\+)?([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)=(.*)", re.ASCII | re.DOTALL)
_INT = re.compile(r"[+-]?(?:0|[1-9][0-9]*)", re.ASCII)
_FLOAT = re.compile(r"[+-]?(?:(?:[0-9]+\.[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|[0-9]+[eE][+-]?[0-9]+)", re.ASCII)
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*", re.ASCII)
_KEYWORDS = {"true", "false", "null", "inf", "nan"}  # Hydra reads these (in any case) as values, not names
_NOT_PLAIN = object()


def _plain_value(text: str, in_list: bool = False) -> Any:
    if len(text) > 40 and not text.startswith("["):  # long numbers: Hydra's parser, and its limits
        return _NOT_PLAIN
    if _INT.fullmatch(text):
        return int(text)
    if _FLOAT.fullmatch(text):
        return float(text)
    if text in ("true", "false"):
        return text == "true"
    if _NAME.fullmatch(text) and text.lower() not in _KEYWORDS:
        return text  # an unquoted name: a string
    if not in_list and text.startswith("[") and text.endswith("]"):
        inner = text[1:-1]
        items = [_plain_value(x.strip(" "), True) for x in inner.split(",")] if inner.strip(" ") else []
        return _NOT_PLAIN if any(v is _NOT_PLAIN for v in items) else items
    return _NOT_PLAIN


class _PlainOverride:
    """A `key=value` override with a number, a bool or a flat list of them: what
    Hydra's parser would give, for the questions quick_compose asks."""

    __slots__ = ("key_or_group", "_value", "input_line", "_prefix")
    package = None

    def __init__(self, prefix: str | None, key: str, value: Any, line: str):
        self.key_or_group, self._value, self.input_line, self._prefix = key, value, line, prefix

    def value(self) -> Any:
        return self._value

    def is_sweep_override(self) -> bool:
        return False

    def is_delete(self) -> bool:
        return False

    def is_add(self) -> bool:
        return self._prefix == "+"

    def is_force_add(self) -> bool:
        return self._prefix == "++"


def _plain(line: str) -> _PlainOverride | None:
    m = _KEY_VALUE.fullmatch(line)
    if m is None:
        return None
    value = _plain_value(m.group(3))
    return None if value is _NOT_PLAIN else _PlainOverride(m.group(1), m.group(2), value, line)


def quick_compose(config_dir: Path, name: str, overrides: list[str], bundled: Path, user=()) -> dict | None:
    """The composed config as a plain dict, or None when Hydra must do it.
    `user`: folders searched after the bundled one (the user's config folder)."""
    try:
        # No overrides, no parser: importing Hydra for it is ~70 ms of a fresh process.
        parsed = _parse_overrides(overrides) if overrides else []
        search = ([str(config_dir)] if config_dir == bundled else [str(config_dir), str(bundled)]) + list(user)
        composer = _Composer(search, {})
        values: list[tuple[Any, str, Any]] = []
        for o in parsed:
            key = o.key_or_group
            if o.is_sweep_override() or o.is_delete() or o.package or key.startswith("hydra"):
                raise _Unsupported
            if "." not in key and not o.is_add() and not o.is_force_add() and composer.is_group(key):
                if not isinstance(o.value(), str):
                    raise ConfigError(f"'{key}' is a config group: it takes the name of one of its configs, "
                                      f"not {o.value()!r}", key=key, override=o.input_line)
                composer.choices[key] = o.value()
            else:
                values.append((o, key, o.value()))
        parts = composer.expand(name)
        if composer.interpolates or (values and "${" in repr([v for _, _, v in values])):
            return _with_omegaconf(parts, values)  # interpolations: OmegaConf resolves them
        cfg: dict = {}
        for p in parts:
            _merge(cfg, p)
        for o, key, value in values:
            *path, last = key.split(".")
            node = cfg
            for k in path:
                node = node.get(k) if isinstance(node, dict) else None
                if not isinstance(node, dict):
                    raise _Unsupported
            exists = last in node
            if (o.is_add() and exists) or (not o.is_add() and not o.is_force_add() and not exists):
                raise _Unsupported  # Hydra's own message says what is wrong
            if isinstance(value, dict) and isinstance(node.get(last), dict):
                _merge(node[last], copy.deepcopy(value))
            else:
                node[last] = copy.deepcopy(value)
        return cfg
    except ArchError:  # ours: located already
        raise
    except Exception:  # anything unusual: Hydra composes, and words any error
        return None
