"""The PyTorch backend: IR to nn.Module (lower.py), the modules the
structural IR forms lower to (modules.py), a trained module's deployed form
(deploy.py) and oneDNN weight prepacking for inference (prepack.py). Ops
lower themselves (archdsl.ops); modules are made by torch's own constructors."""
