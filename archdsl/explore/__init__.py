"""Exploration: many configs at once.

Owns Hydra sweeps and their callback (sweep.py), cost-only grids (grid.py)
over design points (points.py), design spaces and sampling (space.py),
`archc search` (search.py, estimate.py) and `archc scale` (scale.py), the
summaries a sweep leaves (summary.py), their plots (plots.py) and progress
lines for long runs (progress.py).

Imports: archdsl.build, archdsl.api and every room below them; nothing
imports this one but the CLI.
"""
