"""Backends: what the IR becomes.

Owns the analytic cost report (cost.py: parameters, MACs, activations,
bytes and roofline times — nominal, or calibrated per op class, latency.py —
read from the IR alone), memory (memory.py: inference's peak of live activations by
liveness, training memory per batch, training MACs), ShuffleNet V2's
guidelines per stage (guidelines.py), the text rendering of the network
(render.py) and the PyTorch backend (torch/: lowering to a module, the
structural modules, deployment's weight folding and prepacking, and
measuring on this machine: timing.py, profile.py, calibrate.py).

Imports: archdsl.compiler, archdsl.ops and archdsl.language.
"""
