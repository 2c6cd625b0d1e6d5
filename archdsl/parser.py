"""Text -> located syntax tree (archdsl.ast), with lark's LALR parser."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from lark import Lark, Token, Transformer, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from . import ast as A
from .errors import SOURCES, ArchError
from .resources import grammar_path

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


@lru_cache(maxsize=1)
def _lark() -> Lark:
    # cache=True: lark keeps the LALR tables in a temp file, keyed by the grammar.
    return Lark(grammar_path().read_text(), parser="lalr", propagate_positions=True,
                postlex=_Layout(), maybe_placeholders=True, cache=True)


class _ToAst(Transformer):
    def __init__(self, file: str):
        super().__init__()
        self.file = file

    def _loc(self, meta_or_tok) -> A.Loc:
        return A.Loc(self.file, getattr(meta_or_tok, "line", 0) or 0,
                     getattr(meta_or_tok, "column", 0) or 0)

    # ---- top level
    @v_args(meta=True)
    def start(self, meta, items):
        return items

    @v_args(meta=True)
    def use(self, meta, ch):
        return A.Use(self._loc(meta), ch[0][1:-1])

    def _definition(self, kind, meta, ch):
        name, params, body = ch
        return A.Definition(self._loc(meta), kind, str(name), params or [], body, None)

    @v_args(meta=True)
    def block_def(self, meta, ch):
        return self._definition("block", meta, ch)

    @v_args(meta=True)
    def network_def(self, meta, ch):
        return self._definition("network", meta, ch)

    def params(self, ch):
        return list(ch)

    @v_args(meta=True)
    def param(self, meta, ch):
        return A.Param(self._loc(meta), str(ch[0]), ch[1])

    def body(self, ch):
        return list(ch)

    # ---- statements
    @v_args(meta=True)
    def let(self, meta, ch):
        names, unpack = ch[0]
        return A.Let(self._loc(meta), names, unpack, ch[1])

    @v_args(meta=True)
    def if_stmt(self, meta, ch):
        test, then, other = ch
        if isinstance(other, A.If):
            other = [other]
        return A.If(self._loc(meta), test, then, other or [])

    @v_args(meta=True)
    def for_stmt(self, meta, ch):
        names, unpack = ch[0]
        return A.For(self._loc(meta), names, unpack, ch[1], ch[2])

    @v_args(meta=True)
    def repeat(self, meta, ch):
        return A.Repeat(self._loc(meta), ch[0], str(ch[1]), ch[2])

    def repeat_clause(self, ch):
        return (ch[0], str(ch[1]))

    @v_args(meta=True)
    def section(self, meta, ch):
        kind, clause, body = ch
        count, var = clause if clause else (None, None)
        return A.Section(self._loc(meta), str(kind.children[0]), count, var, body)

    @v_args(meta=True)
    def residual(self, meta, ch):
        return A.Residual(self._loc(meta), ch[0] or [], ch[1], ch[2])

    @v_args(meta=True)
    def parallel(self, meta, ch):
        return A.Parallel(self._loc(meta), str(ch[0]), ch[1] or [], ch[2])

    @v_args(meta=True)
    def split(self, meta, ch):
        return A.Split(self._loc(meta), ch[0] or [], ch[1])

    @v_args(meta=True)
    def gate(self, meta, ch):
        return A.Gate(self._loc(meta), ch[0] or [], ch[1])

    @v_args(meta=True)
    def branch(self, meta, ch):
        return A.Branch(self._loc(meta), ch[0])

    @v_args(meta=True)
    def call(self, meta, ch):
        return A.Call(self._loc(meta), str(ch[0]), ch[1] or [])

    def call_args(self, ch):
        return [self._arg(a) for a in ch if a is not None]

    def _arg(self, a):
        if isinstance(a, A.Arg):
            return a
        return A.Arg(a.loc, None, a)

    @v_args(meta=True)
    def kwarg(self, meta, ch):
        return A.Arg(self._loc(meta), str(ch[0]), ch[1])

    def target(self, ch):
        names = [str(c) for c in ch]
        return names, len(ch) > 1 or False

    # ---- expressions
    @v_args(meta=True)
    def cond(self, meta, ch):
        return A.Cond(self._loc(meta), ch[0], ch[1], ch[2])

    @v_args(meta=True)
    def or_expr(self, meta, ch):
        return A.BoolOp(self._loc(meta), "or", list(ch))

    @v_args(meta=True)
    def and_expr(self, meta, ch):
        return A.BoolOp(self._loc(meta), "and", list(ch))

    @v_args(meta=True)
    def not_(self, meta, ch):
        return A.Not(self._loc(meta), ch[0])

    @v_args(meta=True)
    def compare(self, meta, ch):
        rest = [(str(ch[i].children[0]), ch[i + 1]) for i in range(1, len(ch), 2)]
        return A.Compare(self._loc(meta), ch[0], rest)

    def _chain(self, meta, ch):
        left = ch[0]
        for i in range(1, len(ch), 2):
            left = A.BinOp(self._loc(meta), str(ch[i]), left, ch[i + 1])
        return left

    @v_args(meta=True)
    def sum(self, meta, ch):
        return self._chain(meta, ch)

    @v_args(meta=True)
    def product(self, meta, ch):
        return self._chain(meta, ch)

    @v_args(meta=True)
    def neg(self, meta, ch):
        return A.Neg(self._loc(meta), str(ch[0]), ch[1])

    @v_args(meta=True)
    def power(self, meta, ch):
        if ch[2] is None:
            return ch[0]
        return A.BinOp(self._loc(meta), "**", ch[0], ch[2])

    @v_args(meta=True)
    def index(self, meta, ch):
        return A.Index(self._loc(meta), ch[0], ch[1])

    @v_args(meta=True)
    def slice(self, meta, ch):
        return A.Slice(self._loc(meta), ch[0], ch[1], ch[2])

    @v_args(meta=True)
    def attr(self, meta, ch):
        return A.Attr(self._loc(meta), ch[0], str(ch[1]))

    @v_args(meta=True)
    def fcall(self, meta, ch):
        return A.FCall(self._loc(meta), str(ch[0]), [self._arg(a) for a in ch[1:] if a is not None])

    @v_args(meta=True)
    def number(self, meta, ch):
        text = str(ch[0])
        value = float(text) if any(c in text for c in ".eE") else int(text)
        return A.Const(self._loc(meta), value)

    @v_args(meta=True)
    def string(self, meta, ch):
        return A.Const(self._loc(meta), str(ch[0])[1:-1])

    @v_args(meta=True)
    def name(self, meta, ch):
        return A.Name(self._loc(meta), str(ch[0]))

    @v_args(meta=True)
    def input_shape(self, meta, ch):
        return A.InShape(self._loc(meta))

    @v_args(meta=True)
    def true(self, meta, ch):
        return A.Const(self._loc(meta), True)

    @v_args(meta=True)
    def false(self, meta, ch):
        return A.Const(self._loc(meta), False)

    @v_args(meta=True)
    def tuple(self, meta, ch):
        return A.TupleExpr(self._loc(meta), [c for c in ch if c is not None])

    @v_args(meta=True)
    def list(self, meta, ch):
        return A.ListExpr(self._loc(meta), [c for c in ch if c is not None])

    @v_args(meta=True)
    def listcomp(self, meta, ch):
        element, (names, _), iterable, condition = ch
        return A.ListComp(self._loc(meta), element, names, iterable, condition)


def _expected(tokens) -> str:
    names = sorted({_TOKEN_NAMES.get(t, f"'{t.lower()}'" if t.isupper() else t) for t in tokens})
    if len(names) > 8:
        names = names[:8] + ["…"]
    return ", ".join(names)


def parse_text(text: str, file: str = "<string>") -> A.SourceFile:
    """Parse .arch source text. Raises ArchError with file:line:col on bad syntax."""
    SOURCES[file] = text
    try:
        tree = _lark().parse(text if text.endswith("\n") else text + "\n")
    except UnexpectedInput as e:
        raise _syntax_error(e, file) from None
    items = _ToAst(file).transform(tree)
    src = A.SourceFile(file, text)
    for item in items:
        if isinstance(item, A.Use):
            src.uses.append(item)
        else:
            item.source = src
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


def parse_file(path: str | Path) -> A.SourceFile:
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise ArchError(f"cannot read {path}: {e.strerror}") from None
    return parse_text(text, str(path))
