"""clipit: give CLIP to a language that has none (Italian first).

The library is importable on its own; the `clipit` command in `clipit.cli` is a thin layer over it.
"""

__version__ = "0.1.0"
