"""Start from reference weights: copy a timm/torchvision state dict into a compiled module.

Specs list layers in the reference's order, so tensors are matched by
position; every pair must agree in shape (up to dimensions of size 1, so a
reference's nn.Linear fills a 1x1 conv), and any surplus is an error.

pretrained.py finds a config's reference weights in the local caches;
timm_registry.py makes every config a timm model (`timm.create_model("archc_<name>")`).

Imports: archdsl.api (timm_registry builds the configs' modules) and the rooms below it.
"""
from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn


class PortError(ValueError):
    pass


def _tensors(state: Mapping[str, torch.Tensor]) -> list[tuple[str, torch.Tensor]]:
    # BN step counters carry no information a forward pass uses.
    return [(k, v) for k, v in state.items() if not k.endswith("num_batches_tracked")]


def _squeezed(shape) -> tuple[int, ...]:
    return tuple(d for d in shape if d != 1)


def from_reference(module: nn.Module, reference_state_dict: Mapping[str, torch.Tensor],
                   strict: bool = True) -> list[tuple[str, str]]:
    """Load `reference_state_dict` into `module` by position; return (ours, theirs) name pairs."""
    ours = _tensors(module.state_dict())
    theirs = _tensors(reference_state_dict)
    pairs = []
    new_state = {}
    for i, ((name, mine), (ref_name, ref)) in enumerate(zip(ours, theirs)):
        if _squeezed(mine.shape) != _squeezed(ref.shape):
            raise PortError(f"tensor {i}: '{name}' has shape {tuple(mine.shape)} but reference "
                            f"'{ref_name}' has {tuple(ref.shape)}; the spec's layer order or widths "
                            f"differ from the reference here")
        new_state[name] = ref.detach().to(dtype=mine.dtype).reshape(mine.shape)
        pairs.append((name, ref_name))
    if strict and len(ours) != len(theirs):
        extra = ours[len(theirs):] if len(ours) > len(theirs) else theirs[len(ours):]
        side = "module" if len(ours) > len(theirs) else "reference"
        raise PortError(f"the {side} has {abs(len(ours) - len(theirs))} more tensors, starting with "
                        f"'{extra[0][0]}' {tuple(extra[0][1].shape)}")
    module.load_state_dict(new_state, strict=False)
    return pairs
