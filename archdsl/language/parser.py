"""Text -> located syntax tree (archdsl.language.ast), with lark's LALR parser."""
from __future__ import annotations

import threading
from functools import lru_cache
from pathlib import Path

from lark import Lark, Token, Transformer
from lark.tree import Tree
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from archdsl.language import ast as A
from archdsl.language import budget
from archdsl.language.errors import SOURCES, ArchError

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


class TooDeep(Exception):
    """Nesting over the limit, raised while parsing (parse_text words it)."""

    def __init__(self, loc: A.Loc, depth: int):
        self.loc, self.depth = loc, depth


def _located(method, chain: bool = False):
    """Give a rule method its location and its children without keyword/punctuation tokens.

    It also measures the nesting of what it builds (1 + its deepest child's;
    an operator chain `a + b + ...` nests once per operator) and refuses past
    the limit `nesting`: every later walk of the tree (the parse cache, the
    compiler, the elaborator) recurses once per level, so the tree's depth
    is what bounds their use of Python's stack.
    """
    def wrapper(self, children):
        loc = _first_loc(children, self.file) or A.Loc(self.file, 0, 0)
        kept = [c for c in children if not (isinstance(c, Token) and c.type not in _MEANINGFUL)]
        depths, depth, deepest = self.depths, 1, None
        for c in kept:
            hit = depths.get(id(c))
            if hit is not None and hit[0] is c and hit[1] >= depth:
                depth, deepest = hit[1] + 1, c
        if chain:
            depth += len(kept) // 2
        if depth > self.max_depth:  # located at the deepest part, where there is one
            raise TooDeep(getattr(deepest, "loc", None) or loc, depth)
        out = method(self, loc, kept)
        if not isinstance(out, (Token, Tree, str)) and not any(out is c for c in kept):  # a child passed up
            depths[id(out)] = (out, depth)  # the object too: its id is only unique while it lives
        return out
    wrapper.__name__ = method.__name__
    return wrapper


class _ToAst(Transformer):
    def __init__(self, file: str):
        super().__init__()
        self.file = file
        self.depths: dict[int, tuple] = {}  # id(node) -> (node, its nesting), for one parse
        self.misplaced: dict[int, A.Scalable] = {}  # `scalable` not (yet) at a network's top level
        self.max_depth = budget.DEFAULT.nesting

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
        d = self._definition("network", loc, ch)
        # Scaling declarations at its top level leave the body (they never elaborate).
        d.scaling = [s for s in d.body if isinstance(s, A.Scalable)]
        if d.scaling:
            d.body = [s for s in d.body if not isinstance(s, A.Scalable)]
            for s in d.scaling:
                del self.misplaced[id(s)]
        return d

    @_located
    def scalable_roles(self, loc, ch):
        return self._scalable(A.Scalable(loc, None, ch[0]))

    @_located
    def scalable_as(self, loc, ch):
        return self._scalable(A.Scalable(loc, str(ch[0]), ch[1]))

    def _scalable(self, s: A.Scalable) -> A.Scalable:
        self.misplaced[id(s)] = s  # until a network body takes it
        return s

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

    def sum(self, children):
        return self._chained(children)

    def product(self, children):
        return self._chained(children)

    _chained = _located(lambda self, loc, ch: self._chain(loc, ch), chain=True)

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
        if any(c in text for c in ".eE"):
            return A.Const(loc, float(text))
        bits = budget.current().int_bits
        # int() of a long text is quadratic (Python refuses past 4300 digits): count first.
        if len(text) > bits // 3 + 2 and (len(text) > 4000 or int(text).bit_length() > bits):
            raise ArchError(f"integer literal of {len(text):,} digits is over the limit int_bits={bits}",
                            loc, hint=budget.current().hint("int_bits"))
        return A.Const(loc, int(text))

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
    # The LALR tables come from the package (lalr_tables.py), not from lark's
    # pickle cache. Locations come from tokens (keep_all_tokens) rather than
    # lark's propagate_positions, which costs ~40% of parse time. The
    # transformer runs as the LALR parser reduces (no parse tree is built,
    # then walked): ~25% faster than transforming a finished tree.
    from archdsl.language import lalr_tables

    to_ast = _ToAst("<string>")
    return lalr_tables.load(_Layout(), to_ast), to_ast


# The inline transformer carries the file name of the parse in progress.
_PARSING = threading.Lock()


def parse_text(text: str, file: str = "<string>") -> A.SourceFile:
    """Parse .arch source text. Raises ArchError with file:line:col on bad syntax."""
    SOURCES[file] = text
    lark, to_ast = _lark()
    limits = budget.current()
    with _PARSING:
        to_ast.file = file
        to_ast.max_depth = limits.nesting
        try:
            items = lark.parse(text if text.endswith("\n") else text + "\n")
        except UnexpectedInput as e:
            raise _syntax_error(e, file) from None
        except TooDeep as e:
            raise ArchError(f"nested {e.depth} deep, over the limit nesting={limits.nesting} "
                            "(brackets, blocks, `if`s and operator chains count)", e.loc,
                            hint=limits.hint("nesting")) from None
        else:
            hit = to_ast.depths.get(id(items))
            nesting = hit[1] if hit is not None and hit[0] is items else 0
            misplaced = next(iter(to_ast.misplaced.values()), None)
            if misplaced is not None:
                raise ArchError("`scalable` declares how a network scales: it goes at the top level of a "
                                "network body (not in a block, section, loop or if)", misplaced.loc)
        finally:
            to_ast.depths.clear()
            to_ast.misplaced.clear()
    src = A.SourceFile(file, text, nesting=nesting)
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
    """A spec file's text: UTF-8, at most the limit source_bytes."""
    limit = budget.current().source_bytes
    try:
        with open(path, "rb") as f:
            data = f.read(limit + 1)
    except OSError as e:
        raise ArchError(f"cannot read {path}: {e.strerror}") from None
    if len(data) > limit:
        raise ArchError(f"{path} is over the limit source_bytes={limit:,}", hint=budget.current().hint("source_bytes"))
    return decode(data, str(path))


def decode(data: bytes, file: str) -> str:
    """`data` as UTF-8 text; an ArchError at the first byte that is not."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        column = e.start - (data.rfind(b"\n", 0, e.start) + 1) + 1
        SOURCES[file] = data.decode("utf-8", "replace")
        raise ArchError(f"not UTF-8 text: byte 0x{data[e.start]:02x} (save the file as UTF-8)",
                        A.Loc(file, line, column)) from None


def parse_file(path: str | Path) -> A.SourceFile:
    return parse_text(read_source(Path(path)), str(path))


if __name__ == "__main__":  # after a grammar change: store its LALR tables in the package
    from archdsl.language import lalr_tables

    lalr_tables.DATA_FILE.write_text(lalr_tables.source(_Layout()))
    print(f"wrote {lalr_tables.DATA_FILE}")
