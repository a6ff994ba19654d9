"""clip_benchmark's own functions, taken from the installed package's source files.

clip_benchmark's modules import torchvision and scikit-learn at the top, which do not install beside
this project's torch pin; the functions the tests compare against (`recall_at_k`, `accuracy`,
`main_build`) need only torch, json, csv and os. So each function's source is read from the
installed file and executed alone: the tests run clip_benchmark's code, not a copy of it.
Install it with `pip install --no-deps clip-benchmark` (its data files and these sources are all
that is used).
"""

from __future__ import annotations

import ast
import csv
import importlib.util
import json
import os
from pathlib import Path

import torch


def package_dir() -> Path:
    spec = importlib.util.find_spec("clip_benchmark")  # finds the folder without running its imports
    if spec is None or not spec.submodule_search_locations:
        raise AssertionError(
            "clip_benchmark is not installed: run `.venv/bin/pip install --no-deps clip-benchmark`"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def function(relative: str, name: str):
    """The function `name` defined in clip_benchmark/`relative`, executed on its own."""
    source = (package_dir() / relative).read_text(encoding="utf-8")
    node = next(n for n in ast.parse(source).body if isinstance(n, ast.FunctionDef) and n.name == name)
    namespace = {"torch": torch, "json": json, "csv": csv, "os": os}
    exec(compile(ast.Module(body=[node], type_ignores=[]), f"clip_benchmark/{relative}", "exec"), namespace)
    return namespace[name]
