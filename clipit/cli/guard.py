"""Error mapping in one place: a `ClipitError` is one line on stderr and exit 2.

Anything else is a bug: a short line and exit 1. `CLIPIT_DEBUG=1` shows the full traceback instead.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import typer

from clipit.console import err_console
from clipit.errors import ClipitError

P = ParamSpec("P")
R = TypeVar("R")

EXIT_BAD_INPUT = 2
EXIT_INTERNAL = 1


def debug_enabled() -> bool:
    return os.environ.get("CLIPIT_DEBUG", "") not in ("", "0", "false")


def guarded(fn: Callable[P, R]) -> Callable[P, R]:
    """Wrap a command so that errors become one-line messages with the contract's exit codes."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except (typer.Exit, typer.Abort):
            raise
        except ClipitError as exc:
            if debug_enabled():
                raise
            err_console.print(f"error: {exc.one_line()}", style="red", markup=False, soft_wrap=True)
            raise typer.Exit(EXIT_BAD_INPUT) from None
        except KeyboardInterrupt:
            err_console.print("interrupted", markup=False)
            raise typer.Exit(130) from None
        except Exception as exc:
            if debug_enabled():
                raise
            text = " ".join(f"{type(exc).__name__}: {exc}".split())
            err_console.print(
                f"internal error: {text} (set CLIPIT_DEBUG=1 for the traceback)",
                style="red",
                markup=False,
                soft_wrap=True,
            )
            raise typer.Exit(EXIT_INTERNAL) from None

    return wrapper
