"""Exploration: many configs at once.

Owns Hydra sweeps and their callback (sweep.py), the callback that keeps a
single build out of a folder holding someone's files (folders.py), cost-only grids (grid.py)
over design points (points.py), design spaces and sampling (space.py),
`archc search` (search.py) and `archc scale` (scale.py), the
summaries a sweep leaves (summary.py), their plots (plots.py), progress
lines for long runs (progress.py), the engines that run a search's or a
grid's shards here or as Ray tasks (engines.py), `archc profile` and
`archc calibrate`'s files (measure.py) and `archc rank`: latency
constraints and objectives, MnasNet's reward among them (rank.py).

Imports: archdsl.build, archdsl.api and every room below them; nothing
imports this one but the CLI.
"""
