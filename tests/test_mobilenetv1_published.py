"""MobileNetV1 against the figures published by Howard et al. 2017
("MobileNets: Efficient Convolutional Neural Networks for Mobile Vision
Applications"): Table 4 (full conv vs depthwise separable), Table 6 (width
multiplier) and Table 7 (resolution multiplier).

The paper gives Mult-Adds in millions and parameters in millions to one
decimal. Parameters must match that rounding; MACs must be within 1% (the
paper's rounding of a few figures is slightly off, e.g. 290 for 290.7).
"""
import pytest

import archdsl

# (preset, overrides, published million Mult-Adds, published million params)
PUBLISHED = [
    ("mobilenetv1_100", [], 569, 4.2),              # Table 6 / Table 4, "1.0 MobileNet-224"
    ("mobilenetv1_075", [], 325, 2.6),              # Table 6
    ("mobilenetv1_050", [], 149, 1.3),              # Table 6
    ("mobilenetv1_025", [], 41, 0.5),               # Table 6
    ("mobilenetv1_conv_100", [], 4866, 29.3),       # Table 4, "Conv MobileNet"
    ("mobilenetv1_100", ["params.res=192"], 418, 4.2),  # Table 7
    ("mobilenetv1_100", ["params.res=160"], 290, 4.2),  # Table 7
    ("mobilenetv1_100", ["params.res=128"], 186, 4.2),  # Table 7
]


@pytest.mark.parametrize("preset,overrides,macs_m,params_m", PUBLISHED,
                         ids=[f"{p}{''.join(o)}" for p, o, _, _ in PUBLISHED])
def test_published_figures(preset, overrides, macs_m, params_m):
    rep = archdsl.cost(preset, overrides)
    assert round(rep.total.params / 1e6, 1) == params_m
    assert rep.total.macs / 1e6 == pytest.approx(macs_m, rel=0.01)


def test_paper_form_differs_from_timm_only_in_activation():
    # The paper's layers use ReLU, timm's ReLU6: the same structure and counts.
    paper = archdsl.cost("mobilenetv1_100", ["params.act=relu"]).total
    timm_form = archdsl.cost("mobilenetv1_100").total
    assert (paper.params, paper.macs) == (timm_form.params, timm_form.macs)
    relus = [m for m in archdsl.compile("mobilenetv1_075").module(device="meta").modules()
             if type(m).__name__ == "ReLU"]
    assert len(relus) == 1 + 2 * 13  # stem, then depthwise and pointwise of each of 13 layers


def test_one_parameter_switches_to_full_convolutions():
    sep = archdsl.compile("mobilenetv1_100").module(device="meta")
    full = archdsl.compile("mobilenetv1_conv_100").module(device="meta")
    grouped = [m for m in sep.modules() if getattr(m, "groups", 1) > 1]
    assert len(grouped) == 13 and not [m for m in full.modules() if getattr(m, "groups", 1) > 1]
