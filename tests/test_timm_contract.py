"""timm's model contract on archc modules, side by side with timm's own
models: data config, feature maps (feature_info, features_only,
forward_intermediates, prune_intermediate_layers), gradient checkpointing,
layer-decay groups, reset_classifier and the standard options; registration
with timm (create_model, list_models, pretrained=True from the local cache, a
few training steps with timm's own pieces); FX and tracing.

Expected values come from timm (or torchvision, or autograd) on the same
preset; small inputs and the meta device keep it quick.
"""
import copy
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import timm
import timm.optim
import torch
import yaml
from timm.data import resolve_data_config

import archdsl
from archdsl.language.errors import ConfigError
from archdsl.port import from_reference

ROOT = Path(__file__).resolve().parent.parent
X64 = (2, 3, 64, 64)


def _timm(name, device="cpu", **kw):
    with torch.device(device):
        return timm.create_model(name, pretrained=False, **kw)


@pytest.fixture(scope="module")
def pair():
    """archc's resnet18 and timm's, at 64 px, with timm's (random) weights ported in."""
    torch.manual_seed(0)
    ref = _timm("resnet18").eval()
    ours = archdsl.load("resnet18", ["params.res=64"]).eval()
    from_reference(ours, ref.state_dict())
    return ours, ref


# ---------------------------------------------------------------- data config

def _configured_references() -> dict[str, str]:
    out = {}
    for f in sorted((ROOT / "conf").glob("*.yaml")):
        ref = (yaml.safe_load(f.read_text()) or {}).get("reference")
        if ref and not ref.startswith("torchvision:"):
            out[f.stem] = ref
    return out


def test_every_preset_prepares_inputs_as_its_reference():
    from archdsl.configs.compose import compose
    from archdsl.configs.schema import validate

    refs = _configured_references()
    assert len(refs) > 100
    for preset, ref in refs.items():
        data = validate(*compose(preset, [])[:2]).data
        theirs = timm.models.get_pretrained_cfg(ref)
        assert data.mean == pytest.approx(theirs.mean) and data.std == pytest.approx(theirs.std), preset
        assert (data.crop_pct, data.crop_mode, data.interpolation) == (
            theirs.crop_pct, theirs.crop_mode, theirs.interpolation), preset


@pytest.mark.parametrize("preset", ["efficientnet_b1", "mobilenetv4_conv_medium", "resnet18"])
def test_resolve_data_config_as_on_timm(preset):
    ours = archdsl.load(preset, device="meta")
    assert resolve_data_config(model=ours) == resolve_data_config(model=_timm(preset, "meta"))


def test_data_config_of_a_config_without_reference(tmp_path):
    (tmp_path / "mine.yaml").write_text("defaults: [base, _self_]\nrecipe: resnet\n"
                                        "params: {depths: [1, 1, 1, 1], block: basic, res: 96}\n"
                                        "data: {crop_pct: 0.9, interpolation: bilinear}\n")
    cfg = resolve_data_config(model=archdsl.load(tmp_path / "mine.yaml", device="meta"))
    assert cfg["input_size"] == (3, 96, 96) and cfg["crop_pct"] == 0.9 and cfg["interpolation"] == "bilinear"
    assert cfg["mean"] == (0.485, 0.456, 0.406)  # ImageNet's, as timm's default


# ---------------------------------------------------------------- feature maps

# One preset per family: its feature maps are listed as timm lists them. fastvit,
# efficientformer, ghostnet and hrnet mark theirs in their specs (feature_map,
# blocks/features.arch): timm's rule for them is its own.
SAME_FEATURES = ["resnet18", "seresnet50", "resnet50d", "resnetrs50", "res2net50_26w_4s", "resnest14d",
                 "efficientnet_b0", "tf_efficientnet_lite0", "tf_efficientnetv2_s", "mnasnet_100",
                 "mobilenetv2_100", "mobilenetv3_small_075", "mobilenetv4_conv_small", "mobileone_s0",
                 "mobilevit_s", "convnextv2_atto", "cspdarknet53", "densenet121", "dla34", "inception_v3",
                 "nf_resnet50", "dm_nfnet_f0", "regnetx_002", "repvgg_a0", "vit_small_patch16_224",
                 "fastvit_t8", "efficientformer_l1", "ghostnet_050", "hrnet_w18_small"]
# The presets whose marked maps are checked on values, at their input size here
# (EfficientFormer's attention bias is sized for 224).
MARKED = {"fastvit_t8": 64, "efficientformer_l1": 224, "ghostnet_050": 64, "hrnet_w18_small": 64}


def _info(m):
    return [(d["num_chs"], d["reduction"]) for d in m.feature_info]


@pytest.mark.parametrize("preset", SAME_FEATURES)
def test_feature_info_as_timm_indexes_it(preset):
    assert _info(archdsl.load(preset, device="meta")) == _info(_timm(preset, "meta"))


def _ported(preset, res, **kw):
    torch.manual_seed(0)
    ref = _timm(preset).eval()
    ours = archdsl.load(preset, [f"params.res={res}"], **kw).eval()
    from_reference(ours, ref.state_dict())
    return ours, ref


@pytest.mark.parametrize("preset", sorted(MARKED))
def test_marked_feature_maps_are_timms(preset, one_thread):
    """After a weight port, each map forward_intermediates gives is timm's
    (ghostnet's first: the stem conv's, before the BatchNorm deploy folds into it)."""
    res = MARKED[preset]
    ours, ref = _ported(preset, res)
    x = torch.randn(1, 3, res, res)
    with torch.no_grad():
        mine = ours.forward_intermediates(x, intermediates_only=True)
        theirs = ref.forward_intermediates(x, intermediates_only=True)
    assert [t.shape for t in mine] == [t.shape for t in theirs]
    for i, (a, b) in enumerate(zip(mine, theirs)):
        assert torch.allclose(a, b, atol=1e-5), (preset, i)


def test_maps_marked_inside_a_stage_as_timm(one_thread):
    """HRNet's maps are values inside its last stage: features_only, stop_early
    and timm's FeatureHookNet (on feature_info's module names) give timm's."""
    from timm.models._features import FeatureHookNet

    ours, ref = _ported("hrnet_w18_small", 64)
    f = archdsl.load("hrnet_w18_small", ["params.res=64"], features_only=True, out_indices=(0, 2, 3))
    f.load_state_dict(ours.state_dict(), strict=False)
    t = _timm("hrnet_w18_small", features_only=True, out_indices=(0, 2, 3))
    t.load_state_dict(ref.state_dict(), strict=False)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        mine, theirs = f.eval()(x), t.eval()(x)
        early = ours.forward_intermediates(x, [1, 2], stop_early=True)[1]
        hooked = FeatureHookNet(copy.deepcopy(ours), out_indices=(1, 4))(x)
        want = ref.forward_intermediates(x, intermediates_only=True)
    assert f.feature_info.channels() == t.feature_info.channels() == [64, 256, 512]
    assert len(mine) == 3 and all(torch.allclose(a, b, atol=1e-5) for a, b in zip(mine, theirs))
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(early, want[1:3]))
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(hooked, [want[1], want[4]]))


def _n_params(m):
    return sum(p.numel() for p in m.parameters())


def _as_list(features):
    """Final features as a list: several streams, or one map ([0]: the stem's)."""
    return [features] if torch.is_tensor(features) else list(features)


def test_pruning_after_a_map_inside_a_stage_as_timm(one_thread):
    """HRNet's head after the map asked for goes (the later widenings, the
    downsamples, the last conv): forward_intermediates' final features are
    then the streams, as timm's, stopping early or pruned, and the parameter
    counts are timm's. features_only keeps what its last map needs: all of
    timm's feature model for every map (timm's keeps every widening whatever
    out_indices asks)."""
    ours, ref = _ported("hrnet_w18_small", 64)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        for indices in ([1, 2], [4], [0]):
            mine = _as_list(ours.forward_intermediates(x, indices, stop_early=True)[0])
            theirs = _as_list(ref.forward_intermediates(x, indices, stop_early=True)[0])
            assert len(mine) == len(theirs) and all(torch.allclose(a, b, atol=1e-5) for a, b in zip(mine, theirs))
        for indices in ([1, 2], [0]):
            o, r = copy.deepcopy(ours), copy.deepcopy(ref)
            assert o.prune_intermediate_layers(indices) == r.prune_intermediate_layers(indices)
            assert _n_params(o) == _n_params(r), indices
            mine, theirs = o.forward_intermediates(x, indices), r.forward_intermediates(x, indices)
            assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(mine[1], theirs[1]))
            assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(_as_list(mine[0]), _as_list(theirs[0])))
    assert _n_params(archdsl.load("hrnet_w18_small", features_only=True, device="meta")) == _n_params(
        _timm("hrnet_w18_small", "meta", features_only=True))


def test_forward_intermediates_norm_as_timm(one_thread):
    """norm=True: the final norm on the maps it fits — EfficientFormer's last
    (its other stages are narrower), a ViT's every block; none on a ResNet."""
    ours, ref = _ported("efficientformer_l1", 224)
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        mine = ours.forward_intermediates(x, [2, 3], norm=True)
        theirs = ref.forward_intermediates(x, [2, 3], norm=True)
    # the final features: normed tokens, (N, C, L, 1) here, (N, L, C) in timm
    assert torch.allclose(mine[0].flatten(2).transpose(1, 2), theirs[0], atol=1e-5)
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(mine[1], theirs[1]))
    assert not torch.allclose(mine[1][1], ours.forward_intermediates(x, [3], intermediates_only=True)[0])
    ours, ref = _ported("resnet18", 64)
    x = torch.randn(*X64)
    with torch.no_grad():
        mine = ours.forward_intermediates(x, [1, 4], norm=True, intermediates_only=True)
        theirs = ref.forward_intermediates(x, [1, 4], norm=True, intermediates_only=True)
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(mine, theirs))


def test_features_only_gives_timms_maps(pair):
    ours, ref = pair
    f = archdsl.load("resnet18", ["params.res=64"], features_only=True, out_indices=(1, -1)).eval()
    f.load_state_dict(ours.state_dict(), strict=False)
    t = _timm("resnet18", features_only=True, out_indices=(1, -1)).eval()
    t.load_state_dict(ref.state_dict(), strict=False)
    x = torch.randn(*X64)
    with torch.no_grad():
        mine, theirs = f(x), t(x)
    assert len(mine) == len(theirs) == 2 and all(torch.allclose(a, b, atol=1e-5) for a, b in zip(mine, theirs))
    assert f.feature_info.channels() == t.feature_info.channels() == [64, 512]
    assert f.feature_info.reduction() == t.feature_info.reduction()
    assert sum(p.numel() for p in f.parameters()) == sum(p.numel() for p in t.parameters())
    # timm's FeatureHookNet reads feature_info's module names and hooks them (on copies: hooks stay)
    from timm.models._features import FeatureHookNet
    with torch.no_grad():
        hooked = FeatureHookNet(copy.deepcopy(ours), out_indices=(1, 2, 3))(x)
        timm_hooked = FeatureHookNet(copy.deepcopy(ref), out_indices=(1, 2, 3))(x)
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(hooked, timm_hooked))
    # the config key does the same
    g = archdsl.load("resnet18", ["params.res=64", "features_only=true", "out_indices=[1,-1]"])
    assert g.feature_info.out_indices == [1, 4]


@pytest.mark.parametrize("kw", [dict(indices=[1, 3]), dict(indices=2, stop_early=True),
                                dict(indices=None, intermediates_only=True)])
def test_forward_intermediates_as_timm(pair, kw):
    ours, ref = pair
    x = torch.randn(*X64)
    with torch.no_grad():
        mine, theirs = ours.forward_intermediates(x, **kw), ref.forward_intermediates(x, **kw)
    if not kw.get("intermediates_only"):
        assert torch.allclose(mine[0], theirs[0], atol=1e-5)
        mine, theirs = mine[1], theirs[1]
    assert len(mine) == len(theirs) and all(torch.allclose(a, b, atol=1e-5) for a, b in zip(mine, theirs))


def test_vit_feature_maps_as_timm(one_thread):
    """An isotropic network is indexed per block; its tokens come back as maps."""
    torch.manual_seed(0)
    ref = _timm("vit_small_patch16_224", img_size=64).eval()
    ours = archdsl.load("vit_small_patch16_224", ["params.res=64"]).eval()
    from_reference(ours, ref.state_dict())
    x = torch.randn(*X64)
    for norm in (False, True):  # norm: the final norm on every block's tokens, as timm does
        with torch.no_grad():
            mine = ours.forward_intermediates(x, [2, 5, 11], norm=norm, intermediates_only=True)
            theirs = ref.forward_intermediates(x, [2, 5, 11], norm=norm, intermediates_only=True)
        assert all(a.shape == b.shape == (2, 384, 4, 4) and torch.allclose(a, b, atol=1e-4)
                   for a, b in zip(mine, theirs)), norm
    assert ours.prune_intermediate_layers([3, 5]) == ref.prune_intermediate_layers([3, 5])
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in ref.parameters())


def test_prune_intermediate_layers_as_timm():
    ours, ref = archdsl.load("resnet18", ["params.res=64"]), _timm("resnet18")
    assert ours.prune_intermediate_layers([1, 2]) == ref.prune_intermediate_layers([1, 2]) == [1, 2]
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in ref.parameters())
    x = torch.randn(*X64)
    assert [t.shape for t in ours.forward_intermediates(x, [1, 2], intermediates_only=True)] == \
        [t.shape for t in ref.forward_intermediates(x, [1, 2], intermediates_only=True)]
    d = archdsl.deploy(ours.eval())  # the spec was cut alike
    assert d.feature_info.channels() == ours.feature_info.channels() == [64, 64, 128]


# ---------------------------------------------------------------- training

def test_grad_checkpointing_same_gradients_less_memory(one_thread):
    torch.manual_seed(0)
    m = archdsl.load("resnet18", ["params.res=32", "num_classes=10"]).train()
    x = torch.randn(4, 3, 32, 32)

    def run():
        saved = [0]

        def pack(t):
            saved[0] += t.numel() * t.element_size()
            return t

        m.zero_grad()
        with torch.random.fork_rng(), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            m(x).square().mean().backward()
        return saved[0], [p.grad.clone() for p in m.parameters()]

    full, grads = run()
    m.set_grad_checkpointing()
    less, grads_ckpt = run()
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(grads, grads_ckpt))
    assert less < full / 2


def _groups(model):
    opt = timm.optim.create_optimizer_v2(model, "adamw", lr=1e-3, weight_decay=0.05, layer_decay=0.8)
    return sorted(round(g["lr_scale"], 6) for g in opt.param_groups)


def test_layer_decay_makes_per_block_groups():
    ours, ref = archdsl.load("resnet18", device="meta"), _timm("resnet18", "meta")
    assert _groups(ours) == _groups(ref) and len(_groups(ref)) == 20


def test_reset_classifier_and_head_sizes_as_timm(pair):
    for preset in ["mobilenetv3_small_075", "efficientnet_b0"]:
        ours, ref = archdsl.load(preset, device="meta"), _timm(preset, "meta")
        assert (ours.num_features, ours.head_hidden_size) == (ref.num_features, ref.head_hidden_size)
    ours = archdsl.load("mobilenetv3_small_075", ["params.res=64"]).eval()
    ref = _timm("mobilenetv3_small_075").eval()
    x = torch.randn(*X64)
    for n, pool in [(5, "max"), (0, "avg"), (0, "")]:
        ours.reset_classifier(n, pool)
        ref.reset_classifier(n, pool)
        with torch.no_grad():
            assert ours(x).shape == ref(x).shape, (n, pool)
        assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in ref.parameters())


def test_a_distillation_head_is_the_classifier(one_thread):
    """EfficientFormer averages two classifiers (head, head_dist): both are
    the classifier, for reset_classifier and num_classes=0, as in timm."""
    ours, ref = _ported("efficientformer_l1", 224)
    assert (ours.num_classes, ours.num_features, ours.head_hidden_size) == (
        ref.num_classes, ref.num_features, ref.head_hidden_size)
    x = torch.randn(1, 3, 224, 224)
    for n in (7, 0, 3):  # and back from headless: both classifiers again
        ours.reset_classifier(n)
        ref.reset_classifier(n)
        assert ours.num_classes == ref.num_classes == n
        assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in ref.parameters())
        with torch.no_grad():
            a, b = ours(x), ref(x)
        assert a.shape == b.shape == (1, n or 448)
        if n == 0:  # headless: the pooled features
            assert torch.allclose(a, b, atol=1e-5)
    headless = archdsl.load("efficientformer_l1", num_classes=0, device="meta")
    assert sum(p.numel() for p in headless.parameters()) == sum(
        p.numel() for p in _timm("efficientformer_l1", "meta", num_classes=0).parameters())


@pytest.mark.parametrize("preset", ["resnet18", "mobilenetv3_small_075", "efficientnet_b0"])
@pytest.mark.parametrize("kw", [dict(in_chans=1, num_classes=10, drop_rate=0.3),
                                dict(num_classes=0, global_pool="max"), dict(num_classes=0, global_pool="")])
def test_standard_options_as_timm(preset, kw):
    ours = archdsl.load(preset, ["params.res=64"], **kw)
    ref = _timm(preset, **kw)
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in ref.parameters())
    x = torch.randn(2, kw.get("in_chans", 3), 64, 64)
    with torch.no_grad():
        assert ours.eval()(x).shape == ref.eval()(x).shape
    if "drop_rate" in kw:
        assert [m.p for m in ours.modules() if isinstance(m, torch.nn.Dropout)] == [0.3]


def test_options_the_head_cannot_take_name_their_key():
    with pytest.raises(ConfigError) as e:
        archdsl.load("vit_small_patch16_224", global_pool="max", device="meta")
    assert e.value.key == "global_pool"
    with pytest.raises(ConfigError) as e:
        archdsl.load("resnet18", ["global_pool=none"], device="meta")  # a linear layer cannot take the map
    assert e.value.key == "global_pool" and "global_pool=none" in e.value.render()


def test_deploy_after_reset_classifier(one_thread):
    torch.manual_seed(0)
    m = archdsl.load("mobileone_s0", ["params.res=64"]).eval()
    m.reset_classifier(10)
    d = archdsl.deploy(m)
    x = torch.randn(*X64)
    with torch.no_grad():
        a, b = m(x), d(x)
    assert b.shape == (2, 10) and torch.allclose(a, b, rtol=1e-4, atol=1e-4 * a.abs().max().item())


# ---------------------------------------------------------------- timm's registry

@pytest.fixture(scope="module")
def registered():
    from archdsl.port.timm_registry import register
    return register()


def test_every_preset_is_a_timm_model(registered):
    bundled = {f.stem for f in (ROOT / "conf").glob("*.yaml")} - {"base"}
    assert set(timm.list_models("archc_*")) >= {f"archc_{p}" for p in bundled}
    m = timm.create_model("archc_resnet18", num_classes=7, in_chans=1, drop_rate=0.1, drop_path_rate=0.1)
    assert m(torch.randn(1, 1, 64, 64)).shape == (1, 7)
    f = timm.create_model("archc_resnet18", features_only=True, out_indices=(2, 3))
    assert f.feature_info.channels() == [128, 256]
    with pytest.raises(TypeError, match="bn_eps"):
        timm.create_model("archc_resnet18", bn_eps=1e-3)


def _fake_hf_cache(root: Path, hub_id: str, state: dict) -> Path:
    """A Hugging Face cache holding `state` as `hub_id`'s weights, as huggingface_hub lays it out."""
    repo = root / ("models--" + hub_id.replace("/", "--"))
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("0" * 40)
    snap = repo / "snapshots" / ("0" * 40)
    snap.mkdir(parents=True)
    torch.save(state, snap / "pytorch_model.bin")
    return snap / "pytorch_model.bin"


def test_pretrained_from_the_local_cache(registered, tmp_path, one_thread):
    from archdsl.port.pretrained import PretrainedError

    with pytest.raises(PretrainedError, match="not in"):
        timm.create_model("archc_regnetx_002", pretrained=True, cache_dir=tmp_path)
    torch.manual_seed(0)
    ref = _timm("regnetx_002").eval()
    file = _fake_hf_cache(tmp_path, timm.models.get_pretrained_cfg("regnetx_002").hf_hub_id, ref.state_dict())
    ours = timm.create_model("archc_regnetx_002", pretrained=True, cache_dir=tmp_path).eval()
    x = torch.randn(*X64)
    with torch.no_grad():
        assert torch.allclose(ours(x), ref(x), atol=1e-5)
    tuned = timm.create_model("archc_regnetx_002", pretrained=True, cache_dir=tmp_path, num_classes=10).eval()
    with torch.no_grad():
        assert tuned(x).shape == (2, 10)
        assert torch.allclose(tuned.forward_features(x), ref.forward_features(x), atol=1e-5)
    for n in (1, 5):  # other input channels: the first conv adapted as timm adapts it
        mine = timm.create_model("archc_regnetx_002", pretrained=True, cache_dir=tmp_path, in_chans=n).eval()
        theirs = timm.create_model("regnetx_002", pretrained=True, in_chans=n,
                                   pretrained_cfg_overlay=dict(file=str(file))).eval()
        xn = torch.randn(2, n, 64, 64)
        with torch.no_grad():
            assert torch.allclose(mine(xn), theirs(xn), atol=1e-5), n


def test_a_few_training_steps_with_timms_pieces(registered, one_thread):
    from timm.loss import LabelSmoothingCrossEntropy
    from timm.utils import ModelEmaV3

    torch.manual_seed(0)
    m = timm.create_model("archc_resnet18", num_classes=10, drop_path_rate=0.1).train()
    opt = timm.optim.create_optimizer_v2(m, "adamw", lr=1e-3, weight_decay=0.05, layer_decay=0.8)
    assert len(opt.param_groups) == 20
    ema = ModelEmaV3(m, decay=0.9)
    loss_fn = LabelSmoothingCrossEntropy(0.1)
    x, y = torch.randn(8, 3, 32, 32), torch.randint(0, 10, (8,))
    losses = []
    for step in range(6):
        loss = loss_fn(m(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        ema.update(m, step=step)
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    assert not torch.equal(next(ema.module.parameters()), next(m.parameters()))


def test_importing_timm_registers_archc_models(tmp_path):
    """What an install does: the .pth file's hook registers on `import timm`."""
    for f in (ROOT / "hooks").iterdir():
        (tmp_path / f.name).write_text(f.read_text())
    code = ("import site, sys; site.addsitedir(sys.argv[1]); assert 'archdsl' not in sys.modules; "
            "import timm; print(len(timm.list_models('archc_*')))")
    r = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=300,
                       env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert r.returncode == 0, r.stderr
    assert int(r.stdout.split()[-1]) == len(list((ROOT / "conf").glob("*.yaml"))) - 1


# ---------------------------------------------------------------- FX and tracing

def test_fx_on_train_and_deploy_forms(pair):
    ours, _ = pair
    x = torch.randn(*X64)
    for m in (ours.train(), archdsl.deploy(ours.eval())):
        g = torch.fx.symbolic_trace(m)
        with torch.no_grad():
            m.eval(), g.eval()
            assert torch.allclose(g(x), m(x), atol=1e-5)
    ours.eval()
    # torchvision's feature extractor (FX) gives forward_intermediates' maps
    from torchvision.models.feature_extraction import create_feature_extractor
    fe = create_feature_extractor(ours, {"stages.1": "c3", "stages.3": "c5"})
    with torch.no_grad():
        got, want = fe(x), ours.forward_intermediates(x, [2, 4], intermediates_only=True)
    assert torch.allclose(got["c3"], want[0]) and torch.allclose(got["c5"], want[1])


def test_fx_quantization_runs(pair, one_thread):
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    ours, _ = pair
    x = torch.randn(*X64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao's own deprecation notices
        prepared = prepare_fx(copy.deepcopy(ours).eval(), get_default_qconfig_mapping("x86"), (x,))
        with torch.no_grad():
            prepared(x)
            q = convert_fx(prepared)
            y, want = q(x), ours(x)
    assert y.shape == want.shape and torch.isfinite(y).all()
    assert torch.corrcoef(torch.stack([y.flatten(), want.flatten()]))[0, 1] > 0.9


TRACE_SPEC = """
network t(res = 31) {
  input(3, res, res)
  stem { conv(8, 3, stride: 2, padding: "same") bn relu }
  stage { residual(drop_path: true) { ws_conv(8, 3, padding: "same") relu } }
  head { global_pool linear(4) }
}
"""


def test_jit_trace_gives_no_tracer_warning(tmp_path):
    f = tmp_path / "t.arch"
    f.write_text(TRACE_SPEC)
    from archdsl.backends.torch.lower import build_module
    from archdsl.compiler.elaborate import elaborate
    from archdsl.language.program import load_program
    m = build_module(elaborate(load_program(f), {}), drop_path_rate=0.1).eval()
    x = torch.randn(1, 3, 31, 31)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        traced = torch.jit.trace(m, x)
    assert not [i for i in w if issubclass(i.category, torch.jit.TracerWarning)], [str(i.message) for i in w]
    y = torch.randn(1, 3, 40, 40)  # "same" padding follows the input size in the trace too
    assert torch.allclose(traced(y), m(y), atol=1e-6)


def test_a_hook_on_a_mark_keeps_its_value(tmp_path):
    # `conv feature_map relu`: the relu after a mark must not run in place, or a
    # forward hook on the mark (timm's FeatureHookNet) would read relu's output.
    f = tmp_path / "m.arch"
    f.write_text('use "blocks/features"\nnetwork n() {\n  input(3, 8, 8)\n'
                 '  stage { conv(4, 3) feature_map relu }\n}\n')
    from archdsl.backends.torch.lower import build_module
    from archdsl.compiler.elaborate import elaborate
    from archdsl.language.program import load_program
    m = build_module(elaborate(load_program(f), {})).eval()
    mark = next(mod for name, mod in m.named_modules() if type(mod).__name__ != "Conv2d" and name.endswith(".1"))
    seen = []
    mark.register_forward_hook(lambda mod, args, y: seen.append(y))
    with torch.no_grad():
        out = m(torch.randn(1, 3, 8, 8))
    assert (seen[0] < 0).any() and (out >= 0).all()
