"""Backends: what the IR becomes.

Owns the analytic cost report (cost.py: parameters, MACs, activations,
bytes and roofline times, read from the IR alone), the text rendering of the
network (render.py) and the PyTorch backend (torch/: lowering to a module,
the structural modules, deployment's weight folding and prepacking).

Imports: archdsl.compiler, archdsl.ops and archdsl.language.
"""
