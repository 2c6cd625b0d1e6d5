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
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from omegaconf import OmegaConf
from omegaconf._utils import get_yaml_loader

from archdsl.language.caches import process_cache
from archdsl.language.parsecache import yaml_data

# path -> (mtime, data, whether it may hold an interpolation)
_YAML: dict[str, tuple[float, dict, bool]] = process_cache("read")


class _Unsupported(Exception):
    pass


def _load(path: str) -> tuple[dict, bool]:
    """A config file's data (a copy), and whether it may hold an ${...} interpolation."""
    mtime = os.stat(path).st_mtime
    hit = _YAML.get(path)
    if hit is None or hit[0] != mtime:
        with open(path, encoding="utf-8") as f:
            text = f.read()
        if "@package" in text:
            raise _Unsupported
        data = yaml_data(text, _parse_yaml) or {}
        if not isinstance(data, dict):
            raise _Unsupported
        # (The hydra: section, which only Hydra reads, is left out: see expand.)
        hit = (mtime, data, any(_interpolates(v) for k, v in data.items() if k != "hydra"))
        _YAML[path] = hit
    return _copied(hit[1]), hit[2]


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
            keys = [k.value for k, _ in node.value if k.tag == yaml.resolver.BaseResolver.DEFAULT_SCALAR_TAG]
            if len(keys) != len(set(keys)):
                raise yaml.constructor.ConstructorError("while constructing a mapping", node.start_mark,
                                                        "found a duplicate key", node.start_mark)
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


def quick_compose(config_dir: Path, name: str, overrides: list[str], bundled: Path) -> dict | None:
    """The composed config as a plain dict, or None when Hydra must do it."""
    try:
        # No overrides, no parser: importing Hydra for it is ~70 ms of a fresh process.
        parsed = _overrides_parser().parse_overrides(overrides) if overrides else []
        search = [str(config_dir)] if config_dir == bundled else [str(config_dir), str(bundled)]
        composer = _Composer(search, {})
        values: list[tuple[Any, str, Any]] = []
        for o in parsed:
            key = o.key_or_group
            if o.is_sweep_override() or o.is_delete() or o.package or key.startswith("hydra"):
                raise _Unsupported
            if "." not in key and not o.is_add() and not o.is_force_add() and composer.is_group(key):
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
    except Exception:  # anything unusual: Hydra composes, and words any error
        return None
