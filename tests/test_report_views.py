"""Reading a model: archc diff, archc cost --layers / --top, Report in notebooks, report.html."""
import base64
import re
from html.parser import HTMLParser

import pytest
import torch

import archdsl
from archdsl.cli import main

SMALL = ["params.res=64"]


def _rows(text: str) -> list[list[str]]:
    """The rows of an aligned text table (split on runs of 2+ spaces), without the rule."""
    lines = [l for l in text.splitlines() if l.strip() and not set(l) <= {"-", " "}]
    return [re.split(r"\s{2,}", l.strip()) for l in lines]


def test_diff_shows_totals_sections_blocks_and_changed_keys(capsys):
    import timm.models.regnet as reference

    assert main(["diff", "regnetx_002", "regnetx_004", *SMALL]) == 0
    out = capsys.readouterr().out
    a, b = archdsl.cost("regnetx_002", SMALL), archdsl.cost("regnetx_004", SMALL)
    rows = {r[0]: r[1:] for r in _rows(out)}
    assert rows["params"] == [f"{a.total.params / 1e6:.3f} M", f"{b.total.params / 1e6:.3f} M",
                              f"{b.total.params / a.total.params:.2f}x"]
    assert rows["MACs, fvcore's count"][:2] == [f"{a.total.fvcore_macs / 1e9:.3f} G", f"{b.total.fvcore_macs / 1e9:.3f} G"]
    assert set(a.by_section()) | {"section"} <= set(rows)
    # One call of the RegNet block per layer of depth, as timm's configs give it.
    depth_a, depth_b = (reference.model_cfgs[n].depth for n in ("regnetx_002", "regnetx_004"))
    assert rows["regnet_bottleneck"][:2] == [str(depth_a), str(depth_b)]
    assert rows["params.depth"] == [str(depth_a), str(depth_b)]
    assert "params.res" not in rows  # set alike on both sides
    # The same config with one side's override: only that key differs.
    assert main(["diff", "regnetx_002", "regnetx_002", *SMALL, "-b", "params.wm=3"]) == 0
    changed = _rows(capsys.readouterr().out.split("config key that differs")[1])
    assert changed[1:] == [["params.wm", "2.49", "3"]]


def _module_params(net: torch.nn.Module, prefix: str) -> int:
    return sum(p.numel() for n, p in net.named_parameters() if n.startswith(prefix + "."))


def test_layer_table_has_every_layer_and_block_subtotals(capsys):
    assert main(["cost", "regnetx_002", *SMALL, "--layers", "--hardware", "h100"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].split() == ["layer", "kind", "output", "params", "MACs", "bytes", "MACs/B", "h100"]
    # aligned: every row's params column ends where the header's does
    end = lines[0].index("params") + len("params")
    assert all(l[end - 1].isdigit() for l in lines[2:]), out
    rows = _rows(out)[1:]
    rep = archdsl.cost("regnetx_002", SMALL)
    assert [r[0] for r in rows if not r[1].startswith("[")][:-1] == [l.name for l in rep.layers]
    net = archdsl.load("regnetx_002", SMALL, device="meta")
    blocks = [r for r in rows if r[1].startswith("[")]
    assert len(blocks) == 13 and all(r[1] == "[regnet_bottleneck]" for r in blocks)
    for r in blocks:  # a block's subtotal is its module's parameter count
        assert int(r[2].replace(",", "")) == _module_params(net, r[0]), r
    assert rows[-1][0] == "total" and int(rows[-1][1].replace(",", "")) == rep.total.params


def test_top_layers_by_macs_are_the_heaviest_modules(capsys, one_thread):
    from torch.utils.flop_counter import FlopCounterMode

    net = archdsl.load("regnetx_002", SMALL).eval()
    with FlopCounterMode(display=False) as fc, torch.no_grad():
        net(torch.randn(1, 3, 64, 64))
    leaves = {n for n, m in net.named_modules() if not list(m.children())}
    counts = {k.partition(".")[2]: sum(v.values()) for k, v in fc.get_flop_counts().items()}  # "Network.x" -> "x"
    flops = {k: v for k, v in counts.items() if k in leaves}
    heaviest = sorted(flops, key=flops.get, reverse=True)[:4]
    assert main(["cost", "regnetx_002", *SMALL, "--top", "4"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("regnetx_002: the 4 heaviest of ")
    rows = _rows(out)[2:]
    assert [r[1] for r in rows] == heaviest
    for by in ("bytes", "time"):
        assert main(["cost", "regnetx_002", *SMALL, "--top", "2", "--by", by, "--hardware", "mobile_cpu"]) == 0
        assert len(_rows(capsys.readouterr().out)) == 4
    assert main(["cost", "regnetx_002", *SMALL, "--top", "2", "--hardware", "tpu"]) == 2
    assert "no hardware preset 'tpu'" in capsys.readouterr().err


class _Balance(HTMLParser):
    """Checks that every opened element is closed, in order (void elements aside)."""

    VOID = {"meta", "img", "br", "hr", "link", "input"}

    def __init__(self):
        super().__init__()
        self.stack, self.images = [], []

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.images.append(dict(attrs)["src"])
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        assert self.stack and self.stack.pop() == tag, tag


def test_report_renders_in_notebooks_and_report_html_is_self_contained(tmp_path):
    from archdsl.build import write_outputs

    rep = archdsl.cost("mobilenetv4_hybrid_medium", ["params.res=64"])
    assert rep._repr_markdown_() == rep.to_markdown()
    body = _Balance()
    body.feed(rep._repr_html_())
    assert not body.stack
    assert f"{rep.total.params / 1e6:.3f} M params" in rep._repr_html_()
    result = write_outputs(archdsl.compile("regnetx_002", [*SMALL, "save_weights=false"]), tmp_path)
    assert "report.html" in result["files"]
    page = _Balance()
    page.feed((tmp_path / "report.html").read_text())
    assert not page.stack
    # Figures inline (per-section bars, the roofline on each preset), nothing to fetch.
    assert len(page.images) == 2 and all(s.startswith("data:image/png;base64,") for s in page.images)
    assert all(base64.b64decode(s.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n" for s in page.images)
    assert not re.search(r"(src|href)=\"(https?:|//)", (tmp_path / "report.html").read_text())


def test_figures_false_writes_report_html_without_figures(tmp_path, monkeypatch):
    """`figures=false` (a sweep of many jobs): report.html keeps every table, draws nothing."""
    from archdsl.backends import figures
    from archdsl.build import write_outputs

    drawn = []
    for name in ("section_bars", "roofline"):
        monkeypatch.setattr(figures, name, lambda rep, name=name: drawn.append(name))
    write_outputs(archdsl.compile("regnetx_002", [*SMALL, "save_weights=false", "figures=false"]), tmp_path)
    page = _Balance()
    text = (tmp_path / "report.html").read_text()
    page.feed(text)
    assert not page.stack and page.images == [] and drawn == []
    assert "figures=false" in text and "<h3>Per section</h3>" in text
