"""ShuffleNetV1 (Zhang et al. 2018) against its authors' published figures.

No maintained reference implementation exists, so the expected values are
the published ones:
- the released models' FLOPs (multiply-adds) and parameters, as listed by the
  authors (megvii-model/ShuffleNet-Series, ShuffleNetV1/README.md; the same
  models as the paper's Tables 2 and 8), and
- the paper's Table 1: output width of each stage and complexity for each
  group count g at 1x.
MACs must be within 2%; parameters must match the published rounding (0.1 M).
"""
import pytest
import torch
from torch import nn

import archdsl

# preset: (published million MACs, published million params)
RELEASED = {
    "shufflenetv1_g3_200": (524, 5.4), "shufflenetv1_g8_200": (522, 6.5),
    "shufflenetv1_g3_150": (292, 3.4), "shufflenetv1_g8_150": (290, 4.3),
    "shufflenetv1_g3_100": (138, 1.9), "shufflenetv1_g8_100": (138, 2.4),
    "shufflenetv1_g3_050": (38, 0.7), "shufflenetv1_g8_050": (40, 1.0),
}

# Table 1 at 1x: g -> (output widths of stages 2, 3, 4; complexity in MFLOPs)
TABLE1 = {1: ((144, 288, 576), 143), 2: ((200, 400, 800), 140), 3: ((240, 480, 960), 137),
          4: ((272, 544, 1088), 133), 8: ((384, 768, 1536), 137)}


@pytest.mark.parametrize("preset", list(RELEASED))
def test_released_models_published_figures(preset):
    macs_m, params_m = RELEASED[preset]
    total = archdsl.cost(preset).total
    assert total.macs / 1e6 == pytest.approx(macs_m, rel=0.02)
    assert round(total.params / 1e6, 1) == params_m


@pytest.mark.parametrize("g", list(TABLE1))
def test_table1_widths_and_complexity(g):
    widths, mflops = TABLE1[g]
    compiled = archdsl.compile(f"shufflenetv1_g{g}_100")
    assert compiled.report().total.macs / 1e6 == pytest.approx(mflops, rel=0.02)
    stages = [f for f in compiled.module(device="meta").feature_info if f["module"].startswith("stages")]
    assert [(f["num_chs"], f["reduction"]) for f in stages] == list(zip(widths, (8, 16, 32)))


def _convs_1x1(net):
    return [m for m in net.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (1, 1)]


@pytest.mark.parametrize("preset,g", [("shufflenetv1_g3_100", 3), ("shufflenetv1_g8_050", 8)])
def test_unit_structure(preset, g):
    net = archdsl.compile(preset).module(device="meta")
    pw = _convs_1x1(net)
    assert len(pw) == 2 * 16  # two 1x1 convs in each of 4 + 8 + 4 units
    # Only the very first 1x1 (stage 2's first unit, on the stem's few channels) is ungrouped.
    assert pw[0].groups == 1 and all(c.groups == g for c in pw[1:])
    # ... and so needs no shuffle; every other unit shuffles after its first 1x1.
    assert sum(type(m).__name__ == "ChannelShuffle" for m in net.modules()) == 15
    # The stride-2 units pool the input (3x3, stride 2) and concatenate it with a
    # branch of out - in channels: Table 1's widths come out of the concat.
    pools = [m for m in net.modules() if isinstance(m, nn.AvgPool2d)]
    assert len(pools) == 3 and all(p.kernel_size == 3 and p.stride == 2 for p in pools)
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    stem_c = convs[0].out_channels
    widths = [f["num_chs"] for f in net.feature_info if f["module"].startswith("stages")]
    assert pw[1].out_channels == widths[0] - stem_c
    # Bottleneck: a quarter of the stage's output width, in the stride-2 unit too.
    assert pw[0].out_channels == widths[0] // 4


def test_forward():
    net = archdsl.load("shufflenetv1_g8_050").eval()
    with torch.no_grad():
        y = net(torch.randn(2, 3, 224, 224))
    assert y.shape == (2, 1000) and torch.isfinite(y).all()
