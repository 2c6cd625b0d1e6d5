"""The on-disk parse cache: stored trees and config data equal fresh parses,
locations survive, bad entries and unusable folders fall back to parsing, the
switch turns it off."""
import json
import os
from pathlib import Path

import pytest

from archdsl.compiler.elaborate import elaborate
from archdsl.language import astdata, parsecache, parser, program
from archdsl.language.errors import SOURCES, ArchError
from archdsl.language.resources import blocks_dir, recipes_dir

SPECS = sorted(recipes_dir().glob("*.arch")) + sorted(blocks_dir().glob("*.arch"))


def comparable(src):
    """A SourceFile as plain values."""
    return src.path, src.text, src.uses, src.definitions


@pytest.fixture
def cache(tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    monkeypatch.setenv("ARCHDSL_CACHE_DIR", str(folder))
    monkeypatch.delenv("ARCHDSL_NO_CACHE", raising=False)
    return folder


def entries(folder: Path) -> list[Path]:
    return sorted((folder / "ast").glob("*.json")) if (folder / "ast").is_dir() else []


def test_the_tests_never_use_the_real_cache():
    assert "ARCHDSL_CACHE_DIR" in os.environ
    assert parsecache.cache_dir() == Path(os.environ["ARCHDSL_CACHE_DIR"])
    assert not str(parsecache.cache_dir()).startswith(str(Path.home() / ".cache"))


@pytest.mark.parametrize("spec", SPECS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_plain_data_round_trip_equals_a_fresh_parse(spec):
    src = parser.parse_file(spec)
    data = json.loads(json.dumps(astdata.file_to_data(src)))  # plain data only, or dumps fails
    back = astdata.file_from_data(data, str(spec), src.text)
    assert comparable(back) == comparable(src)
    assert all(d.loc.file == str(spec) for d in back.definitions)


def test_second_parse_reads_the_cache(cache, monkeypatch):
    fresh = {str(p): parsecache.parse_file(p) for p in SPECS}
    assert len(entries(cache)) == len({p.read_text() for p in SPECS})
    monkeypatch.setattr(parser, "parse_text", lambda *a: pytest.fail("parsed instead of reading the cache"))
    for p in SPECS:
        assert comparable(parsecache.parse_file(p)) == comparable(fresh[str(p)])


def test_errors_from_a_cached_file_name_file_line_column_and_quote_the_line(cache, tmp_path, monkeypatch):
    spec = tmp_path / "net.arch"
    spec.write_text("network n(res = 8) {\n  input(4, res, res)\n  stage { conv(widht, 3) }\n}\n")
    parsecache.parse_file(spec)  # stored
    SOURCES.clear()
    program._CACHE.clear()
    monkeypatch.setattr(parser, "parse_text", lambda *a: pytest.fail("parsed instead of reading the cache"))
    with pytest.raises(ArchError) as info:
        elaborate(program.load_program(spec), {})
    e = info.value
    assert (e.loc.file, e.loc.line, e.loc.column) == (str(spec.resolve()), 3, 16)
    lines = e.render().splitlines()
    assert lines[0].startswith(f"{spec.resolve()}:3:16: unknown name 'widht'")
    assert lines[1].strip() == "stage { conv(widht, 3) }" and lines[2].index("^") == 4 + 15


def test_same_text_elsewhere_is_located_in_its_own_file(cache, tmp_path):
    text = "block b(x) {\n  conv(x, 3)\n}\n"
    (tmp_path / "a.arch").write_text(text)
    (tmp_path / "b.arch").write_text(text)
    parsecache.parse_file(tmp_path / "a.arch")
    src = parsecache.parse_file(tmp_path / "b.arch")
    assert len(entries(cache)) == 1
    assert src.definitions[0].body[0].loc == type(src.definitions[0].loc)(str(tmp_path / "b.arch"), 2, 3)


def test_an_edit_misses(cache, tmp_path):
    spec = tmp_path / "b.arch"
    spec.write_text("block b(x) { conv(x, 3) }\n")
    parsecache.parse_file(spec)
    spec.write_text("block b(x) { conv(x, 5) }\n")
    assert parsecache.parse_file(spec).definitions[0].body[0].args[1].value.value == 5
    assert len(entries(cache)) == 2


@pytest.mark.parametrize("content", [
    b"", b"{not json", b"\xff\xfe", b"[]", b'{"archdsl_ast": 999, "payload": []}',
    b'{"archdsl_ast": FORMAT, "payload": 3}',
    b'{"archdsl_ast": FORMAT, "payload": [["Loc", 1, 1, "f", 1, 1]]}',          # not a node class
    b'{"archdsl_ast": FORMAT, "payload": [["Popen", 1, 1, "rm -rf /"]]}',      # not an archdsl.ast class
    b'{"archdsl_ast": FORMAT, "payload": [["Name", 1, 1, "x"]]}',               # an expression at top level
    b'{"archdsl_ast": FORMAT, "payload": [["Use", 1, 1, 42]]}',                 # wrong field type
    b'{"archdsl_ast": FORMAT, "payload": [["Use", "1", 1, "x"]]}',              # bad location
    b'{"archdsl_ast": FORMAT, "payload": [["Use", 1, 1]]}',                     # missing field
    b'{"archdsl_ast": FORMAT, "payload": [["Definition", 1, 1, "block", "b", [], [["Use", 1, 1, "x"]]]]}',
])
def test_a_corrupt_entry_falls_back_to_parsing_and_is_replaced(cache, tmp_path, content):
    spec = tmp_path / "b.arch"
    spec.write_text('use "se"\nblock b(x) {\n  conv(x, 3)\n}\n')
    expected = parser.parse_file(spec)
    entry = parsecache.entry_path(spec.read_text())
    entry.parent.mkdir(parents=True)
    entry.write_bytes(content.replace(b"FORMAT", str(parsecache.FORMAT).encode()))
    assert comparable(parsecache.parse_file(spec)) == comparable(expected)
    assert json.loads(entry.read_bytes())["archdsl_ast"] == parsecache.FORMAT  # rewritten


def test_decoding_checks_field_types():
    with pytest.raises(astdata.BadData, match="not a Expr"):
        astdata.file_from_data([["Let", 1, 1, "x", ["Use", 1, 1, "y"]]], "f", "")
    with pytest.raises(astdata.BadData, match="expected str"):
        astdata.file_from_data([["Repeat", 1, 1, ["Const", 1, 1, 2], 5, []]], "f", "")
    with pytest.raises(astdata.BadData, match="constant"):
        astdata.file_from_data([["Let", 1, 1, "x", ["Const", 1, 1, {"a": 1}]]], "f", "")


def test_an_unusable_folder_falls_back_silently(tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("ARCHDSL_CACHE_DIR", str(blocker))  # cannot hold a folder
    spec = SPECS[0]
    assert comparable(parsecache.parse_file(spec)) == comparable(parser.parse_file(spec))


def test_the_switch_turns_it_off(cache, monkeypatch):
    monkeypatch.setenv("ARCHDSL_NO_CACHE", "1")
    assert parsecache.cache_dir() is None and parsecache.entry_path("x") is None
    parsecache.parse_file(SPECS[0])
    assert entries(cache) == [] and not cache.exists()
    monkeypatch.setenv("ARCHDSL_NO_CACHE", "0")
    parsecache.parse_file(SPECS[0])
    assert len(entries(cache)) == 1


def test_where_the_cache_lives(tmp_path, monkeypatch):
    monkeypatch.delenv("ARCHDSL_NO_CACHE", raising=False)
    monkeypatch.setenv("ARCHDSL_CACHE_DIR", str(tmp_path / "x"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert parsecache.cache_dir() == tmp_path / "x"
    monkeypatch.delenv("ARCHDSL_CACHE_DIR")
    assert parsecache.cache_dir() == tmp_path / "xdg" / "archdsl"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/path")  # ignored, as the XDG spec says
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert parsecache.cache_dir() == tmp_path / "home" / ".cache" / "archdsl"


def test_the_parser_tables_come_from_the_package_not_a_pickle(cache, monkeypatch):
    """lark's table cache is a pickle (code, when loaded): archc keeps its tables in the
    package instead (archdsl/language/_lalr_tables_data.py), and writes no lark cache."""
    import pickle

    from archdsl.language import lalr_tables

    monkeypatch.setattr(pickle, "load", lambda *a, **k: pytest.fail("a pickle was loaded"))
    parser._lark.cache_clear()
    try:
        parser.parse_text("network n() { input(3, 8, 8) }\n", "<t>")
    finally:
        parser._lark.cache_clear()
    assert not (cache / "lark").exists()
    from archdsl.language import _lalr_tables_data as stored
    assert stored.KEY == lalr_tables.grammar_key(), "run: python -m archdsl.language.parser"


# ---------------------------------------------------------------- config YAML
def yaml_entries(folder: Path) -> list[Path]:
    return sorted((folder / "yaml").glob("*.json")) if (folder / "yaml").is_dir() else []


def test_stored_config_data_equals_a_fresh_yaml_load_and_is_read_back(cache, monkeypatch):
    from archdsl.configs import quick_compose
    from archdsl.language.resources import conf_dir

    files = sorted(conf_dir().rglob("*.yaml"))
    fresh = {f: quick_compose._parse_yaml(f.read_text()) for f in files}
    assert [parsecache.yaml_data(f.read_text(), quick_compose._parse_yaml) for f in files] == list(fresh.values())
    assert len(yaml_entries(cache)) == len({f.read_text() for f in files})
    monkeypatch.setattr(quick_compose, "_parse_yaml", lambda text: pytest.fail("loaded instead of reading"))
    for f in files:
        back = parsecache.yaml_data(f.read_text(), quick_compose._parse_yaml)
        assert back == fresh[f] and repr(back) == repr(fresh[f])  # 1 stays 1, 1.0 stays 1.0


def test_a_composed_config_is_the_same_from_the_cache(cache):
    import archdsl
    from archdsl.language.caches import forget

    forget()  # configs composed by earlier tests are remembered in-process
    first = archdsl.compile("regnety_8gf", ["params.wm=2.5"]).config
    assert yaml_entries(cache)
    forget()
    assert archdsl.compile("regnety_8gf", ["params.wm=2.5"]).config == first


def test_yaml_data_json_cannot_hold_exactly_is_loaded_every_time(cache):
    calls = []

    def load(text):
        calls.append(text)
        return {1: "int key", "d": [1.5, None, True]}
    assert parsecache.yaml_data("1: int key", load) == {1: "int key", "d": [1.5, None, True]}
    assert parsecache.yaml_data("1: int key", load) == {1: "int key", "d": [1.5, None, True]}
    assert len(calls) == 2 and yaml_entries(cache) == []


@pytest.mark.parametrize("content", [b"", b"{not json", b"[]", b'{"archdsl_yaml": 999, "payload": {"value": 1}}',
                                     b'{"archdsl_yaml": FORMAT, "payload": 7}'])
def test_a_corrupt_yaml_entry_falls_back_to_loading(cache, content):
    text = "recipe: resnet\nparams: {depth: 50}\n"
    parsecache.yaml_data(text, lambda t: {"recipe": "resnet", "params": {"depth": 50}})
    (entry,) = yaml_entries(cache)
    entry.write_bytes(content.replace(b"FORMAT", str(parsecache.FORMAT).encode()))
    assert parsecache.yaml_data(text, lambda t: {"reloaded": True}) == {"reloaded": True}


def test_the_switch_turns_the_yaml_cache_off_too(cache, monkeypatch):
    monkeypatch.setenv("ARCHDSL_NO_CACHE", "1")
    calls = []
    for _ in range(2):
        parsecache.yaml_data("a: 1", lambda t: calls.append(t) or {"a": 1})
    assert len(calls) == 2 and not cache.exists()
