"""Every user mistake gets file:line:col, the source line with a caret, and a path."""
import pytest

import archdsl
from archdsl.compiler.elaborate import elaborate
from archdsl.language.errors import ArchError
from archdsl.language.parser import parse_text
from archdsl.language.program import load_program


def error_of(tmp_path, body, params=None, extra=""):
    f = tmp_path / "bad.arch"
    f.write_text(extra + "network n(res = 8) {\n  input(4, res, res)\n" + body + "\n}\n")
    with pytest.raises(ArchError) as info:
        elaborate(load_program(f), params or {})
    return info.value


def caret_column(rendered: str) -> int:
    line = [l for l in rendered.splitlines() if l.strip() == "^"][0]
    return line.index("^") - 4 + 1


@pytest.mark.parametrize("text,line,col,words", [
    ("block a(x) {\n  conv(3,, 2)\n}\n", 2, 10, "unexpected ','"),
    ("block a(x) {\n  conv(3, 2)\n", 2, 13, "end of file"),
    ("network n() {\n  let y = 3 $\n}\n", 2, 13, "unexpected character '$'"),
    ("block (x) { }\n", 1, 7, "expected a name"),
])
def test_syntax_errors(text, line, col, words):
    with pytest.raises(ArchError) as info:
        parse_text(text, "s.arch")
    e = info.value
    assert (e.loc.file, e.loc.line) == ("s.arch", line)
    assert words in e.message
    rendered = e.render()
    assert rendered.startswith(f"s.arch:{line}:")
    if line <= text.count("\n"):
        assert caret_column(rendered) == e.loc.column
    assert e.loc.column == col


def test_unknown_name_suggests(tmp_path):
    e = error_of(tmp_path, "  let width = 8\n  stage { conv(widht, 3) }")
    assert "unknown name 'widht'" in e.message and "width" in e.hint
    assert (e.loc.line, e.loc.column) == (4, 16)
    assert e.path == ["n", "stages.0", "conv"]
    r = e.render()
    assert "conv(widht, 3)" in r and "in n › stages.0 › conv" in r


def test_unknown_op_or_block(tmp_path):
    e = error_of(tmp_path, "  stage { covn(8, 3) }")
    assert "unknown op or block 'covn'" in e.message and "conv" in e.hint


def test_wrong_argument_counts_and_names(tmp_path):
    assert "at most 7 positional" in error_of(tmp_path, "  stage { conv(8, 3, 1, 1, 1, false, 0, 9) }").message
    assert "no argument 'strid'" in error_of(tmp_path, "  stage { conv(8, 3, strid: 2) }").message
    assert "missing argument(s): k" in error_of(tmp_path, "  stage { conv(8) }").message
    e = error_of(tmp_path, "  stage { b(1, 2) }", extra="block b(x) { bn }\n")
    assert "b takes at most 1 positional argument(s), got 2" in e.message


def test_wrong_types_and_bad_values(tmp_path):
    e = error_of(tmp_path, '  stage { conv("wide", 3) }')
    assert "argument 'out'" in e.message and "'wide'" in e.message
    e = error_of(tmp_path, "  stage { conv(-8, 3) }")
    assert "argument 'out' = -8" in e.message and "greater than 0" in e.message
    assert (e.loc.line, e.loc.column) == (3, 16)
    e = error_of(tmp_path, '  stage { act("relu7") }')
    assert "argument 'fn'" in e.message


def test_groups_must_divide_channels(tmp_path):
    e = error_of(tmp_path, "  stage { b() }", extra="block b() {\n  conv(8, 3, groups: 3)\n}\n")
    assert "groups (3) must divide the input channels (4)" in e.message
    assert e.path == ["n", "stages.0", "blocks.0 (b)", "conv"]
    assert (e.loc.line, e.loc.column) == (2, 3)


def test_residual_shape_mismatch(tmp_path):
    e = error_of(tmp_path, "  stage {\n    residual { conv(8, 3, stride: 2) }\n  }")
    assert "residual adds unequal shapes" in e.message and "(8, 4, 4)" in e.message and "(4, 8, 8)" in e.message
    assert "shortcut" in e.hint
    assert e.loc.line == 4


def test_concat_spatial_mismatch(tmp_path):
    e = error_of(tmp_path, "  stage { parallel concat { branch { conv(4, 3, stride: 2) } branch { } } }")
    assert "concat of unequal spatial sizes" in e.message


def test_type_errors_in_expressions(tmp_path):
    assert "cannot apply '+' to string and int" in error_of(tmp_path, '  let x = "a" + 1').message
    assert "division by zero" in error_of(tmp_path, "  let x = 1 // 0").message
    assert "index 5 out of range" in error_of(tmp_path, "  let x = [1][5]").message
    assert "unknown function 'eval'" in error_of(tmp_path, '  let x = eval("1")').message


def test_network_structure_errors(tmp_path):
    assert "put layers inside a section" in error_of(tmp_path, "  conv(8, 3)").message
    assert "branch { } may only appear inside" in error_of(tmp_path, "  stage { branch { } }").message
    assert "wrap it in branch" in error_of(tmp_path, "  stage { parallel sum { conv(4, 1) } }").message


def test_config_errors_name_key_and_override():
    with pytest.raises(ArchError) as info:
        archdsl.cost("resnet18", ["params.nope=1"])
    assert "config key 'params.nope'" in str(info.value) and "has no parameter 'nope'" in str(info.value)
    with pytest.raises(ArchError) as info:
        archdsl.cost("resnet18", ["nope=1"])
    assert "override 'nope=1'" in str(info.value) and "+nope" in str(info.value)
    with pytest.raises(ArchError) as info:
        archdsl.cost("resnet18", ["+params.nope=1"])
    assert "config key 'params.nope'" in str(info.value) and "override '+params.nope=1'" in str(info.value)
    with pytest.raises(ArchError) as info:
        archdsl.cost("resnet18", ["dtype=fp64"])
    assert "config key 'dtype'" in str(info.value) and "override 'dtype=fp64'" in str(info.value)
    with pytest.raises(ArchError, match="no config 'resnet19'"):
        archdsl.cost("resnet19")


def test_fail_reports_the_specs_own_message(tmp_path):
    e = error_of(tmp_path, '  let size = "medium"\n  let t = 1 if size in ["s", "l"] else fail("size must be s or l, got " + size)')
    assert e.message == "size must be s or l, got medium"
    assert (e.loc.line, e.loc.column) == (4, 40)
