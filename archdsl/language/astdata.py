"""A parsed file's syntax tree as plain data (lists, str, int, float, bool, None) and back.

The on-disk parse cache (archdsl.language.parsecache) stores this form as JSON. Reading
it back can only build the node classes of archdsl.language.ast, each where its
parent's annotation allows it (an `Expr` field takes an `Expr` subclass, a
`str` field a str, ...): like a spec, a cache file cannot run code.

A node is `[class name, line, column, field, ...]` in the dataclass's field
order; its file is the one being read, so it is not stored. Anything that does
not fit the schema raises `BadData`.
"""
from __future__ import annotations

import dataclasses
import types
import typing
from functools import lru_cache
from typing import Any, Callable

from archdsl.language import ast as A


class BadData(ValueError):
    """The data is not a syntax tree this version of archdsl writes."""


# Fields not stored: the location (flattened into the node's head) and a
# definition's compiled closures (made again when needed).
_SKIPPED = {"loc", "compiled"}
# Const.value is annotated Any; a literal is one of these.
_LITERALS = (bool, int, float, str)


def _stored_fields(cls: type) -> list[str]:
    return [f.name for f in dataclasses.fields(cls) if f.name not in _SKIPPED]


# ---------------------------------------------------------------- writing
def to_data(value: Any) -> Any:
    """Plain data for a node, a list of nodes, or a field's value."""
    if dataclasses.is_dataclass(value):
        loc = value.loc
        return [type(value).__name__, loc.line, loc.column, *(to_data(getattr(value, f))
                                                              for f in _stored_fields(type(value)))]
    if isinstance(value, (list, tuple)):
        return [to_data(v) for v in value]
    return value


def file_to_data(src: A.SourceFile) -> list:
    """The file's `use`s and definitions, in source order."""
    items = sorted([*src.uses, *src.definitions], key=lambda n: (n.loc.line, n.loc.column))
    return to_data(items)


# ---------------------------------------------------------------- reading
Decoder = Callable[[Any, str], Any]  # (data, file) -> value


def _scalar(kind: type) -> Decoder:
    def decode(v, file):
        # bool is an int subclass: an int field must not take true/false.
        if type(v) is not kind and not (kind is float and type(v) is int):
            raise BadData(f"expected {kind.__name__}, got {type(v).__name__}")
        return v
    return decode


def _literal(v, file):
    if type(v) is list:  # a tuple target: names, nested
        return [_literal(x, file) for x in v]
    if type(v) not in _LITERALS:
        raise BadData(f"a constant cannot be {type(v).__name__}")
    return v


def _optional(inner: Decoder) -> Decoder:
    return lambda v, file: None if v is None else inner(v, file)


def _list_of(inner: Decoder) -> Decoder:
    def decode(v, file):
        if type(v) is not list:
            raise BadData(f"expected a list, got {type(v).__name__}")
        return [inner(x, file) for x in v]
    return decode


def _tuple_of(inners: tuple[Decoder, ...]) -> Decoder:
    def decode(v, file):
        if type(v) is not list or len(v) != len(inners):
            raise BadData(f"expected a list of {len(inners)}")
        return tuple(d(x, file) for d, x in zip(inners, v))
    return decode


def _node_of(base: type) -> Decoder:
    """A node whose class is `base` or one of its subclasses in archdsl.language.ast."""
    allowed: dict[str, tuple[type, list[Decoder], int]] = {}  # filled on first use (_NODES is then)

    def decode(v, file):
        if not allowed:
            allowed.update((name, (cls, fields, 3 + len(fields))) for name, (cls, fields) in _NODES.items()
                           if issubclass(cls, base))
        try:
            cls, fields, size = allowed[v[0]]
        except (KeyError, TypeError, IndexError):  # not a list headed by a class name it allows
            raise BadData(f"not a {base.__name__} node: {str(v)[:40]}") from None
        if type(v) is not list or len(v) != size:
            raise BadData(f"a {v[0]} node has {size - 3} fields, got {len(v) - 3}")
        line, column = v[1], v[2]
        if type(line) is not int or type(column) is not int:
            raise BadData("a location is two integers")
        loc = A.Loc(file, line, column)
        if size == 4:  # most nodes have one field (names, constants)
            return cls(loc, fields[0](v[3], file))
        return cls(loc, *[d(x, file) for d, x in zip(fields, v[3:])])
    return decode


def _decoder(hint: Any) -> Decoder:
    """The decoder for a field annotated `hint` (an archdsl.language.ast annotation)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        rest = [a for a in args if a is not type(None)]
        if len(rest) != 1 or len(args) != 2:
            raise TypeError(f"unsupported annotation {hint}")
        return _optional(_decoder(rest[0]))
    if origin is list:
        return _list_of(_decoder(args[0]))
    if origin is tuple:
        return _tuple_of(tuple(_decoder(a) for a in args))
    if hint is Any:
        return _literal
    if hint in (str, int, float, bool):
        return _scalar(hint)
    if isinstance(hint, type) and hint.__module__ == A.__name__:
        return _node_of(hint)
    raise TypeError(f"unsupported annotation {hint}")


def _node_classes() -> dict[str, tuple[type, list[Decoder]]]:
    """Every located node class of archdsl.language.ast, with one decoder per stored field."""
    out = {}
    for cls in vars(A).values():
        if isinstance(cls, type) and dataclasses.is_dataclass(cls) and cls.__module__ == A.__name__:
            hints = typing.get_type_hints(cls)
            if hints.get("loc") is not A.Loc:
                continue  # Loc and SourceFile are not nodes
            fields = dataclasses.fields(cls)
            stored = _stored_fields(cls)
            # Positional arguments: the location, then the stored fields; the
            # skipped ones come last and take their defaults.
            if [f.name for f in fields[:1 + len(stored)]] != ["loc", *stored] or any(
                    f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
                    for f in fields[1 + len(stored):]):
                raise TypeError(f"{cls.__name__}: skipped fields must come last, with defaults")
            out[cls.__name__] = (cls, [_decoder(hints[f]) for f in stored])
    return out


# class name -> (class, decoders of its stored fields)
_NODES: dict[str, tuple[type, list[Decoder]]] = {}


@lru_cache(maxsize=1)
def _items_decoder() -> Decoder:
    _NODES.update(_node_classes())
    return _list_of(_node_of(object))


def file_from_data(data: Any, path: str, text: str) -> A.SourceFile:
    """Rebuild the SourceFile that `file_to_data` described; raises BadData."""
    src = A.SourceFile(path, text)
    for item in _items_decoder()(data, path):
        if isinstance(item, A.Use):
            src.uses.append(item)
        elif isinstance(item, A.Definition):
            src.definitions.append(item)
        else:
            raise BadData(f"a file holds uses and definitions, not {type(item).__name__}")
    return src
