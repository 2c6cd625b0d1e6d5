"""Shared helpers for parity tests: reference models, parameter and MAC counts.

The reference is only ever used for facts (counts, outputs) — never as the
source of expected numbers baked into a test.
"""
from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode

import archdsl
from archdsl.port import from_reference


def reference(name: str, device: str = "cpu") -> torch.nn.Module:
    """A timm model, or a torchvision one when the name is 'torchvision:<name>'."""
    with torch.device(device):
        if name.startswith("torchvision:"):
            import torchvision

            return torchvision.models.get_model(name.split(":", 1)[1], weights=None)
        import timm

        return timm.create_model(name, pretrained=False)


def reference_input_size(name: str) -> tuple[int, int, int]:
    """timm's default input size for the model (torchvision models: 224)."""
    if name.startswith("torchvision:"):
        return (3, 224, 224)
    import timm

    return tuple(timm.models.get_pretrained_cfg(name).input_size)


def n_params(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def counted_macs(m: torch.nn.Module, input_shape, device: str = "cpu") -> int:
    """MACs as FlopCounterMode measures them on a forward pass (FLOPs / 2)."""
    x = torch.zeros((1, *input_shape), device=device)
    m.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        m(x)
    return fc.get_total_flops() // 2


def randomize_small_tensors(model: torch.nn.Module) -> None:
    """Random BN statistics and random scalar/per-channel parameters (norm
    affines, biases, gains, layer scales, GRN), so that a port which swaps or
    misplaces any of them cannot pass — at their initial values (ones, zeros,
    1e-6 layer scales, zero skip-init gains) many blocks would be near-identities."""
    with torch.no_grad():
        for mod in model.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.running_mean.uniform_(-0.5, 0.5)
                mod.running_var.uniform_(0.5, 2.0)
        for name, p in model.named_parameters():
            if p.ndim > 1:
                continue
            if name.endswith("bias"):
                p.uniform_(-0.5, 0.5)
            elif p.abs().mean() < 0.1:  # layer scales, skip-init gains, GRN: start small
                p.uniform_(0.1, 0.3)
            else:
                p.uniform_(0.5, 1.5)


def max_output_difference(preset: str, ref_name: str, seed: int = 0, res: int | None = None) -> float:
    """Copy the reference's weights into the compiled preset; compare eval
    outputs, at the preset's input size or at `res` (both models take any).
    The difference is relative to the outputs' size where that exceeds 1:
    random statistics make some logits ~1e11, where float rounding in another
    (equally valid) summation order exceeds any absolute bound."""
    torch.manual_seed(seed)
    ref = reference(ref_name).eval()
    randomize_small_tensors(ref)
    compiled = archdsl.compile(preset, [f"params.res={res}"] if res else [])
    # Every tensor is overwritten by the port: skip our own random init.
    net = compiled.module(device="meta").to_empty(device="cpu").eval()
    from_reference(net, ref.state_dict())
    x = torch.randn(2, *compiled.spec.in_shape)
    with torch.no_grad():
        ours, theirs = net(x), ref(x)
        return ((ours - theirs).abs().max() / max(1.0, theirs.abs().max().item())).item()


def parity_counts(preset: str, ref_name: str, device: str = "meta") -> dict:
    """Params and MACs: archc's report, archc's module, the reference module."""
    compiled = archdsl.compile(preset)
    rep = compiled.report()
    net = compiled.module(device=device)
    ref = reference(ref_name, device=device)
    shape = compiled.spec.in_shape
    return {
        "report_params": rep.total.params, "module_params": n_params(net), "ref_params": n_params(ref),
        "report_macs": rep.total.macs, "module_macs": counted_macs(net, shape, device),
        "ref_macs": counted_macs(ref, shape, device), "input_shape": shape,
    }
