"""archdsl.language.caches: one call forgets what a process learnt from specs and configs."""
from archdsl import api
from archdsl.compiler import elaborate
from archdsl.configs import quick_compose
from archdsl.language import caches, parsecache, program


def test_forget_makes_the_next_compile_read_and_elaborate_again(monkeypatch):
    api.compile("resnet18")
    assert program._CACHE and quick_compose._YAML and elaborate._LAYERS and elaborate._MEMOS
    caches.forget()
    assert not (program._CACHE or quick_compose._YAML or elaborate._LAYERS or elaborate._MEMOS)
    read = []
    real = parsecache.parse_file
    monkeypatch.setattr(program, "parse_file", lambda p: read.append(p) or real(p))
    api.compile("resnet18")
    assert len(read) >= 2  # the recipe and the blocks it uses


def test_forget_elaborated_keeps_the_parsed_files():
    api.compile("resnet18")
    parsed = dict(program._CACHE)
    caches.forget("elaborated")
    assert program._CACHE == parsed and quick_compose._YAML
    assert not (elaborate._LAYERS or elaborate._MEMOS)
