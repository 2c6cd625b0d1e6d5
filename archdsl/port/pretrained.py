"""A config's reference weights, from the local caches only (timm's Hugging
Face cache, torch hub's for torchvision), ported into its module.

Nothing is downloaded: archdsl runs where there may be no network, and a
missing file is named with the one command that fetches it.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from archdsl.port import PortError, from_reference


class PretrainedError(PortError):
    pass


def _hf_file(hub_id: str, cache_dir: str | Path | None) -> str | None:
    from huggingface_hub import try_to_load_from_cache

    for name in ("model.safetensors", "pytorch_model.bin"):  # the names timm saves under
        found = try_to_load_from_cache(hub_id, name, cache_dir=cache_dir)
        if isinstance(found, str):
            return found
    return None


def _hub_file(url: str | None) -> str | None:
    if not url:
        return None
    f = Path(torch.hub.get_dir()) / "checkpoints" / Path(url).name
    return str(f) if f.is_file() else None


def reference_model(reference: str, cache_dir: str | Path | None = None) -> nn.Module:
    """The reference model with its pretrained weights, read from the local cache."""
    if reference.startswith("torchvision:"):
        import torchvision

        name = reference.split(":", 1)[1]
        weights = torchvision.models.get_model_weights(name).DEFAULT
        found = _hub_file(weights.url)
        if found is None:
            raise PretrainedError(
                f"the weights of {reference} are not in torch hub's cache ({torch.hub.get_dir()}); fetch them "
                f"once with torchvision.models.get_model('{name}', weights='DEFAULT') where there is a network")
        model = torchvision.models.get_model(name, weights=None)
        model.load_state_dict(torch.load(found, map_location="cpu", weights_only=True))
        return model
    import timm

    cfg = timm.models.get_pretrained_cfg(reference)
    if cfg is None:
        raise PretrainedError(f"timm has no model '{reference}' (the config's reference)")
    found = (_hf_file(cfg.hf_hub_id, cache_dir) if cfg.hf_hub_id else None) or _hub_file(cfg.url)
    if found is None:
        where = cache_dir or "the local Hugging Face cache"
        raise PretrainedError(
            f"the weights of {reference} ({cfg.hf_hub_id or cfg.url}) are not in {where}; fetch them once "
            f"with timm.create_model('{reference}', pretrained=True) where there is a network")
    # timm reads the file itself, so its checkpoint filters (old layouts) apply
    return timm.create_model(reference, pretrained=True, pretrained_cfg_overlay=dict(file=found))


def _adapt_first_conv(w: torch.Tensor, in_chans: int) -> torch.Tensor:
    """An RGB first conv's weight for `in_chans` inputs: one channel takes
    their sum; more repeat R, G, B, scaled so a grey input gives the same output."""
    if in_chans == w.shape[1]:
        return w
    if in_chans == 1:
        return w.sum(dim=1, keepdim=True)
    reps = -(-in_chans // w.shape[1])
    return w.repeat(1, reps, 1, 1)[:, :in_chans] * (w.shape[1] / in_chans)


def port_pretrained(net: nn.Module, reference: str, cache_dir: str | Path | None = None) -> None:
    """Copy the reference's pretrained weights into `net` (built with the
    reference's classifier); convolutions on the input, when `net` takes
    other input channels, are adapted."""
    state = dict(reference_model(reference, cache_dir).state_dict())
    in_chans = net.spec.in_shape[0] if hasattr(net, "spec") else 3
    ours = [v for k, v in net.state_dict().items() if not k.endswith("num_batches_tracked")]
    theirs = [k for k in state if not k.endswith("num_batches_tracked")]
    for mine, key in zip(ours, theirs):
        ref = state[key]
        if mine.ndim == 4 and ref.ndim == 4 and mine.shape[1] == in_chans != ref.shape[1] \
                and mine.shape[0] == ref.shape[0] and mine.shape[2:] == ref.shape[2:]:
            state[key] = _adapt_first_conv(ref, in_chans)
    from_reference(net, state)
