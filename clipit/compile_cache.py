"""JAX's persistent compilation cache, under the user cache folder: a second run skips compilation."""

from __future__ import annotations

import os
from pathlib import Path

import jax

COMPILE_CACHE_MIN_SECONDS = 0.2  # compilations shorter than this are not worth a disk entry


def compilation_cache_dir() -> Path:
    """Where compiled code is kept: $XDG_CACHE_HOME/clipit/jax (an absolute XDG_CACHE_HOME), else
    ~/.cache/clipit/jax."""
    base = os.environ.get("XDG_CACHE_HOME", "")
    root = Path(base) if os.path.isabs(base) else Path.home() / ".cache"
    return root / "clipit" / "jax"


def enable_compilation_cache() -> Path | None:
    """Turn on JAX's persistent compilation cache for this process (compilations over
    COMPILE_CACHE_MIN_SECONDS are stored). JAX's own environment settings win: a set
    JAX_COMPILATION_CACHE_DIR is kept, JAX_ENABLE_COMPILATION_CACHE=false keeps it off."""
    if os.environ.get("JAX_ENABLE_COMPILATION_CACHE", "").lower() in ("0", "false", "no"):
        return None
    folder = os.environ.get("JAX_COMPILATION_CACHE_DIR") or str(compilation_cache_dir())
    if jax.config.jax_compilation_cache_dir != folder:
        jax.config.update("jax_compilation_cache_dir", folder)
    if "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS" not in os.environ:
        jax.config.update("jax_persistent_cache_min_compile_time_secs", COMPILE_CACHE_MIN_SECONDS)
    return Path(folder)
