"""The body every `clipit download SOURCE` command shares; each command brings only its flags and source.

One order for all of them: resolve the config (file, `--set`, then the command's flags), run the
source's library function, which checks its inputs and the output folder (a folder of other files is
refused before any work) and holds the folder's write lock while it writes, then save the resolved
config beside the manifest and print the manifest's path on stdout. Errors leave through `guarded`:
one line and exit 2 for bad input, exit 1 for a bug.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer

from clipit.cli.options import Flags, resolve
from clipit.config import Config, save_resolved
from clipit.data.manifest import MANIFEST_NAME


@dataclass(frozen=True)
class Source:
    """What a download command adds to the shared body."""

    section: str  # its config section under [data] (`cc3m`, `mscoco_it`), which has an `out` folder
    run: Callable[[Config], dict[str, Any]]  # the library call; returns the download's summary
    report: Callable[[dict[str, Any]], None] | None = None  # a summary the library does not show itself


def download(
    ctx: typer.Context, config: Path | None, set_: list[str] | None, source: Source, flags: Flags
) -> Path:
    """Run one download as the commands' contract says; returns the manifest path it printed."""
    cfg = resolve(ctx, config, set_, flags)
    out = Path(getattr(cfg.data, source.section).out)
    summary = source.run(cfg)
    save_resolved(cfg, out)
    if source.report is not None:
        source.report(summary)
    path = out / MANIFEST_NAME
    typer.echo(str(path))
    return path
