"""The mbnet recipe and its design space (issue 15): counts against timm, two compiler paths agreeing.

recipes/mbnet.arch's defaults are EfficientNet-B0's layout; random points of
conf/spaces/mbnet_400mf.yaml are checked against timm's EfficientNet built
from the same per-stage table (timm's own arch-def strings), and the
design-space path (points.Base.evaluate, what archc search runs) against
archdsl.cost with the point as overrides.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from reference import counted_macs, n_params, reference

import archdsl
from archdsl.explore.points import Base
from archdsl.explore.space import load_space
from archdsl.language.errors import ArchError


@pytest.fixture(scope="module")
def space():
    return load_space("mbnet_400mf")


@pytest.fixture(scope="module")
def base(space):
    return Base(space.base_path(), space.overrides)


def points(space, n: int, seed: int) -> list[dict]:
    cols = space.sample(np.random.default_rng(seed), n)
    return [{k: v[i].tolist() for k, v in cols.items()} for i in range(n)]


def as_overrides(space, point: dict) -> list[str]:
    return list(space.overrides) + [f"params.{k}=[{','.join(map(str, v))}]" for k, v in point.items()]


def timm_mbnet(point: dict, fixed: dict):
    """timm's EfficientNet for an mbnet point, from timm's arch-def strings (ds: expansion 1)."""
    from timm.models._efficientnet_builder import decode_arch_def
    from timm.models.efficientnet import EfficientNet

    se = fixed["se"]
    arch = [[f"{'ds' if e == 1 else 'ir'}_r{d}_k{k}_s{s}_e{e}_c{w}_se{se}"]
            for w, d, k, e, s in zip(point["widths"], point["depths"], point["kernels"],
                                     point["expansions"], fixed["strides"])]
    with torch.device("meta"):
        return EfficientNet(decode_arch_def(arch), num_features=fixed["head_width"],
                            stem_size=fixed["stem_width"], act_layer="swish")


def test_mbnet_defaults_are_timm_efficientnet_b0(one_thread):
    rep = archdsl.cost("base", ["recipe=mbnet"])
    ref = reference("efficientnet_b0", device="meta")
    assert rep.total.params == n_params(ref)
    assert rep.total.macs == counted_macs(ref, (3, 224, 224), device="meta")


def test_space_loads(space, base):
    assert set(space.params) == {"widths", "depths", "kernels", "expansions"}
    assert space.constraints["macs"] == (360e6, 400e6)
    base.check(space.params, [f"params.{k}" for k in space.params])  # every key is an mbnet parameter
    p = space.sample(np.random.default_rng(0), 256)
    assert p["widths"].shape == (256, 7) and (p["widths"] % 8 == 0).all()
    assert set(np.unique(p["kernels"])) <= {3, 5, 7}
    assert set(np.unique(p["expansions"])) <= {1, 3, 4, 6}


def test_space_points_match_timm_and_both_paths_agree(space, base, one_thread):
    fixed = base.values(["se", "strides", "stem_width", "head_width"])
    for point in points(space, 3, seed=15):
        ds = base.evaluate(point)
        assert ds["status"] == "ok", ds
        rep = archdsl.cost(space.base_path(), as_overrides(space, point)).total
        assert (rep.params, rep.macs, rep.activations, rep.bytes) == (
            ds["params"], ds["macs"], ds["activations"], ds["bytes"]), point
        ref = timm_mbnet(point, fixed)
        assert ds["params"] == n_params(ref), point
        assert ds["macs"] == counted_macs(ref, (3, 224, 224), device="meta"), point


def test_stage_lists_of_unequal_length_are_a_located_error():
    with pytest.raises(ArchError) as e:
        archdsl.cost("base", ["recipe=mbnet", "params.depths=[1,2]"])
    assert "mbnet.arch" in e.value.render() and "one entry per stage" in e.value.render()
