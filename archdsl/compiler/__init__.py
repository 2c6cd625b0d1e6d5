"""The compiler: a program and its parameters to the IR, and rewrites of it.

Owns elaboration (elaborate.py: expressions, lets, loops, blocks and shapes,
with the block memo), the IR (ir.py: a tree of primitive ops with static
shapes; nothing in it is PyTorch), `archc check` (check.py), networks' scaling
declarations read for `archc scale` (scaling.py) and the IR passes
(passes/: BN folding and branch fusion for deployment).

Imports: archdsl.ops and archdsl.language only.
"""
