"""The PyTorch backend: IR to nn.Module (lower.py), the modules the
structural IR forms lower to (modules.py), a trained module's deployed form
(deploy.py) and oneDNN weight prepacking for inference (prepack.py). Ops
lower themselves (archdsl.ops); modules are made by torch's own constructors.
timm's model contract beyond forward_features/forward_head — data config,
feature maps, features_only, checkpointing, layer-decay groups — is contract.py.
Measuring on this machine: medians of timed calls (timing.py), a module's
latency per layer beside the roofline (profile.py, `archc profile`) and the
micro-benchmarks of `archc calibrate` (calibrate.py)."""
