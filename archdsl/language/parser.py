"""Text -> located syntax tree (archdsl.language.ast), with lark's LALR parser."""
from __future__ import annotations

import sys
import threading
from functools import lru_cache
from pathlib import Path

from lark import Lark, Token, Transformer
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from archdsl.language import ast as A
from archdsl.language.caches import disk_folder
from archdsl.language.errors import SOURCES, ArchError
from archdsl.language.resources import grammar_path

# Tokens before which a newline is only layout.
_GLUE_BEFORE = {"LBRACE", "ELSE", "SHORTCUT"}
_OPEN = {"LPAR", "LSQB"}
_CLOSE = {"RPAR", "RSQB"}

_TOKEN_NAMES = {
    "_NL": "end of line", "LPAR": "'('", "RPAR": "')'", "LSQB": "'['", "RSQB": "']'",
    "LBRACE": "'{'", "RBRACE": "'}'", "COMMA": "','", "COLON": "':'", "EQUAL": "'='",
    "NAME": "a name", "NUMBER": "a number", "STRING": "a string", "SEMICOLON": "';'",
    "$END": "end of file",
    "ADD_OP": "'+'/'-'", "MUL_OP": "an operator", "POW": "'**'",
}


class _Layout:
    """Post-lexer: drops newlines inside brackets and before `{`, `else`, `shortcut`."""

    always_accept = ("_NL",)

    def process(self, stream):
        depth = 0
        pending = None
        for tok in stream:
            if tok.type == "_NL":
                if depth == 0 and pending is None:
                    pending = tok
                continue
            if pending is not None:
                if tok.type not in _GLUE_BEFORE:
                    yield pending
                pending = None
            if tok.type in _OPEN:
                depth += 1
            elif tok.type in _CLOSE:
                depth = max(0, depth - 1)
            yield tok
        if pending is not None:
            yield pending




# Tokens that carry meaning; the others (keywords, punctuation) only locate.
_MEANINGFUL = {"NAME", "NUMBER", "STRING", "ADD_OP", "MUL_OP", "POW"}


def _first_loc(children, file: str) -> A.Loc | None:
    for c in children:
        if isinstance(c, Token):
            return A.Loc(file, c.line, c.column)
        loc = getattr(c, "loc", None)
        if loc is not None:
            return loc
        if isinstance(c, (list, tuple)):
            loc = _first_loc(c, file)
            if loc is not None:
                return loc
        elif hasattr(c, "children"):
            loc = _first_loc(c.children, file)
            if loc is not None:
                return loc
    return None


def _located(method):
    """Give a rule method its location and its children without keyword/punctuation tokens."""
    def wrapper(self, children):
        loc = _first_loc(children, self.file) or A.Loc(self.file, 0, 0)
        kept = [c for c in children if not (isinstance(c, Token) and c.type not in _MEANINGFUL)]
        return method(self, loc, kept)
    wrapper.__name__ = method.__name__
    return wrapper


class _ToAst(Transformer):
    def __init__(self, file: str):
        super().__init__()
        self.file = file

    # ---- top level
    @_located
    def start(self, loc, items):
        return items

    @_located
    def use(self, loc, ch):
        return A.Use(loc, ch[0][1:-1])

    def _definition(self, kind, loc, ch):
        name, params, body = ch
        return A.Definition(loc, kind, str(name), params or [], body)

    @_located
    def block_def(self, loc, ch):
        return self._definition("block", loc, ch)

    @_located
    def network_def(self, loc, ch):
        return self._definition("network", loc, ch)

    @_located
    def params(self, loc, ch):
        return list(ch)

    @_located
    def param(self, loc, ch):
        # NAME, then the optional type and default (None placeholders when absent).
        rest = [c for c in ch[1:] if c is not None]
        typ = next((c for c in rest if isinstance(c, A.TypeSpec)), None)
        default = next((c for c in rest if not isinstance(c, A.TypeSpec)), None)
        return A.Param(loc, str(ch[0]), default, typ)

    @_located
    def ptype(self, loc, ch):
        return A.TypeSpec(loc, list(ch))

    @_located
    def type_name(self, loc, ch):
        item = ch[1] if len(ch) > 1 and isinstance(ch[1], A.TypeSpec) else None
        rest = [c for c in ch[1:] if c is not None and not isinstance(c, A.TypeSpec)]
        bounds = [(str(rest[i].children[0]), rest[i + 1]) for i in range(0, len(rest), 2)]
        return A.TypeAlt(loc, str(ch[0]), None, bounds, item)

    @_located
    def type_literal(self, loc, ch):
        tok = ch[0]
        value = self.string([tok]) if tok.type == "STRING" else self.number([tok])
        return A.TypeAlt(loc, None, value, [], None)

    @_located
    def type_true(self, loc, ch):
        return A.TypeAlt(loc, None, A.Const(loc, True), [], None)

    @_located
    def type_false(self, loc, ch):
        return A.TypeAlt(loc, None, A.Const(loc, False), [], None)

    @_located
    def body(self, loc, ch):
        return list(ch)

    # ---- statements
    @_located
    def let(self, loc, ch):
        return A.Let(loc, ch[0], ch[1])

    @_located
    def if_stmt(self, loc, ch):
        test, then, other = ch[0], ch[1], ch[-1] if len(ch) > 2 else None
        if isinstance(other, A.If):
            other = [other]
        return A.If(loc, test, then, other or [])

    @_located
    def for_stmt(self, loc, ch):
        return A.For(loc, ch[0], ch[1], ch[2])

    @_located
    def repeat(self, loc, ch):
        # Without `as`, the optional group leaves a placeholder per item (two).
        return A.Repeat(loc, ch[0], None if ch[1] is None else str(ch[1]), ch[-1])

    @_located
    def repeat_clause(self, loc, ch):
        return (ch[0], None if ch[1] is None else str(ch[1]))

    @_located
    def section(self, loc, ch):
        kind, clause, body = ch
        count, var = clause if clause else (None, None)
        return A.Section(loc, str(kind.children[0]), count, var, body)

    @_located
    def residual(self, loc, ch):
        return A.Residual(loc, ch[0] or [], ch[1], ch[-1] if len(ch) > 2 else None)

    @_located
    def parallel(self, loc, ch):
        return A.Parallel(loc, str(ch[0]), ch[1] or [], ch[2])

    @_located
    def split(self, loc, ch):
        return A.Split(loc, ch[0] or [], ch[1])

    @_located
    def gate(self, loc, ch):
        return A.Gate(loc, ch[0] or [], ch[1])

    @_located
    def branch(self, loc, ch):
        return A.Branch(loc, ch[0])

    @_located
    def name_value(self, loc, ch):
        return A.NameValue(loc, ch[0])

    @_located
    def from_stmt(self, loc, ch):
        return A.From(loc, ch[0], ch[1] if len(ch) > 1 else None)

    @_located
    def order(self, loc, ch):
        return A.Order(loc, self.number([ch[0]]).value)  # the elaborator wants a whole number

    @_located
    def call(self, loc, ch):
        return A.Call(loc, str(ch[0]), ch[1] or [])

    @_located
    def call_args(self, loc, ch):
        return [self._arg(a) for a in ch if a is not None]

    def _arg(self, a):
        if isinstance(a, A.Arg):
            return a
        return A.Arg(a.loc, None, a)

    @_located
    def kwarg(self, loc, ch):
        return A.Arg(loc, str(ch[0]), ch[1])

    @_located
    def target(self, loc, ch):
        # `(a)` is the name a; `(a, b)` and nested tuples unpack.
        items = [c if isinstance(c, list) else str(c) for c in ch]
        return items if len(items) > 1 else items[0]

    # ---- expressions
    @_located
    def cond(self, loc, ch):
        return A.Cond(loc, ch[0], ch[1], ch[2])

    @_located
    def or_expr(self, loc, ch):
        return A.BoolOp(loc, "or", list(ch))

    @_located
    def and_expr(self, loc, ch):
        return A.BoolOp(loc, "and", list(ch))

    @_located
    def not_(self, loc, ch):
        return A.Not(loc, ch[0])

    @_located
    def compare(self, loc, ch):
        rest = [(str(ch[i].children[0]), ch[i + 1]) for i in range(1, len(ch), 2)]
        return A.Compare(loc, ch[0], rest)

    def _chain(self, loc, ch):
        left = ch[0]
        for i in range(1, len(ch), 2):
            left = A.BinOp(loc, str(ch[i]), left, ch[i + 1])
        return left

    @_located
    def sum(self, loc, ch):
        return self._chain(loc, ch)

    @_located
    def product(self, loc, ch):
        return self._chain(loc, ch)

    @_located
    def neg(self, loc, ch):
        return A.Neg(loc, str(ch[0]), ch[1])

    @_located
    def power(self, loc, ch):
        if ch[2] is None:
            return ch[0]
        return A.BinOp(loc, "**", ch[0], ch[2])

    @_located
    def index(self, loc, ch):
        return A.Index(loc, ch[0], ch[1])

    @_located
    def slice(self, loc, ch):
        return A.Slice(loc, ch[0], ch[1], ch[2])

    @_located
    def attr(self, loc, ch):
        return A.Attr(loc, ch[0], str(ch[1]))

    @_located
    def fcall(self, loc, ch):
        return A.FCall(loc, str(ch[0]), [self._arg(a) for a in ch[1:] if a is not None])

    @_located
    def atom(self, loc, ch):  # "(" expr ")": the parentheses only group
        return ch[0]

    @_located
    def number(self, loc, ch):
        text = str(ch[0])
        value = float(text) if any(c in text for c in ".eE") else int(text)
        return A.Const(loc, value)

    @_located
    def string(self, loc, ch):
        return A.Const(loc, str(ch[0])[1:-1])

    @_located
    def name(self, loc, ch):
        return A.Name(loc, str(ch[0]))

    @_located
    def input_shape(self, loc, ch):
        return A.InShape(loc)

    @_located
    def true(self, loc, ch):
        return A.Const(loc, True)

    @_located
    def false(self, loc, ch):
        return A.Const(loc, False)

    @_located
    def tuple(self, loc, ch):
        return A.TupleExpr(loc, [c for c in ch if c is not None])

    @_located
    def list(self, loc, ch):
        return A.ListExpr(loc, [c for c in ch if c is not None])

    @_located
    def listcomp(self, loc, ch):
        element, target, iterable = ch[:3]
        condition = ch[3] if len(ch) == 4 else None
        return A.ListComp(loc, element, target, iterable, condition)


def _expected(tokens) -> str:
    names = sorted({_TOKEN_NAMES.get(t, f"'{t.lower()}'" if t.isupper() else t) for t in tokens})
    if len(names) > 8:
        names = names[:8] + ["…"]
    return ", ".join(names)


@lru_cache(maxsize=1)
def _lark() -> tuple[Lark, _ToAst]:
    """The parser and the transformer it applies inline (one object, retargeted per file)."""
    # lark keeps the LALR tables (~8 ms to load, ~60-170 ms to build) in a file
    # it checks against the grammar; it is a pickle, so it lives in the user's
    # own cache folder, not in the shared temp folder lark would choose.
    # Locations come from tokens (keep_all_tokens) rather than lark's
    # propagate_positions, which costs ~40% of parse time. The transformer runs
    # as the LALR parser reduces (no parse tree is built, then walked): ~25%
    # faster than transforming a finished tree.
    to_ast = _ToAst("<string>")
    return Lark(grammar_path().read_text(), parser="lalr", keep_all_tokens=True, postlex=_Layout(),
                maybe_placeholders=True, cache=_tables_file(), transformer=to_ast), to_ast


def _tables_file() -> str | bool:
    import lark

    folder = disk_folder()
    if folder is None:
        return False
    try:
        (folder / "lark").mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError:
        return False
    return str(folder / "lark" / f"tables-lark{lark.__version__}-py{sys.version_info[0]}.{sys.version_info[1]}.pickle")


# The inline transformer carries the file name of the parse in progress.
_PARSING = threading.Lock()


def parse_text(text: str, file: str = "<string>") -> A.SourceFile:
    """Parse .arch source text. Raises ArchError with file:line:col on bad syntax."""
    SOURCES[file] = text
    lark, to_ast = _lark()
    with _PARSING:
        to_ast.file = file
        try:
            items = lark.parse(text if text.endswith("\n") else text + "\n")
        except UnexpectedInput as e:
            raise _syntax_error(e, file) from None
    src = A.SourceFile(file, text)
    for item in items:
        if isinstance(item, A.Use):
            src.uses.append(item)
        else:
            src.definitions.append(item)
    return src


def _syntax_error(e: UnexpectedInput, file: str) -> ArchError:
    loc = A.Loc(file, e.line if e.line and e.line > 0 else 1, e.column if e.column and e.column > 0 else 1)
    if isinstance(e, UnexpectedCharacters):
        return ArchError(f"syntax error: unexpected character {e.char!r}", loc)
    if isinstance(e, UnexpectedToken):
        tok: Token = e.token
        if tok.type == "$END":
            return ArchError(f"syntax error: unexpected end of file; expected {_expected(e.expected)}", loc)
        shown = "end of line" if tok.type == "_NL" else repr(str(tok))
        return ArchError(f"syntax error: unexpected {shown}; expected {_expected(e.expected)}", loc)
    if isinstance(e, UnexpectedEOF):
        return ArchError(f"syntax error: unexpected end of file; expected {_expected(e.expected)}", loc)
    return ArchError(f"syntax error: {e}", loc)


def read_source(path: Path) -> str:
    try:
        return path.read_text()
    except OSError as e:
        raise ArchError(f"cannot read {path}: {e.strerror}") from None


def parse_file(path: str | Path) -> A.SourceFile:
    return parse_text(read_source(Path(path)), str(path))
