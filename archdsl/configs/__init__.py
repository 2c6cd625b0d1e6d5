"""Configs: Hydra configs to a validated ArchConfig.

Owns locating and composing configs (compose.py, with quick_compose.py for
the configs whose Hydra semantics it can follow exactly) and their pydantic
schema and validation (schema.py).

Imports: archdsl.backends (dtype sizes and hardware), archdsl.language.
"""
