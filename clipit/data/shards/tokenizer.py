"""The tokenizer travels with the data: build-shards copies its sources' `tokenizer/` folder beside the shards.

A source that comes with its own tokenizer (the synthetic dataset writes one for its closed vocabulary)
is only usable with it; copying it into the shards folder lets `train` find it there when
`model.tokenizer` is not set, so a config need not name a path that depends on the working directory.
Sources with different tokenizers get none copied (no single tokenizer fits them all).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from clipit import atomic
from clipit.console import warn

TOKENIZER_DIR = "tokenizer"


def copy_source_tokenizer(sources: list[Path], out: Path) -> Path | None:
    """Copy the one tokenizer the sources carry into `out/tokenizer` (replacing an earlier copy); its path."""
    found = [folder / TOKENIZER_DIR for folder in sources if (folder / TOKENIZER_DIR).is_dir()]
    target = out / TOKENIZER_DIR
    distinct = {_contents(folder): folder for folder in found}
    if len(distinct) != 1:
        if len(distinct) > 1:
            warn(
                f"sources carry different tokenizers ({', '.join(str(f) for f in found)}): none copied to {out}; "
                "set model.tokenizer for training"
            )
        if target.is_dir():  # a copy from an earlier build no longer matches its sources
            shutil.rmtree(target)
        return None
    (source,) = distinct.values()
    if target.is_dir() and _contents(target) == _contents(source):
        return target  # a rerun leaves the folder as it is
    with atomic.atomic_folder(target) as staging:
        for path in sorted(source.iterdir()):
            if path.is_file():
                shutil.copyfile(path, staging / path.name)
    return target


def _contents(folder: Path) -> tuple[tuple[str, bytes], ...]:
    """The folder's files (name, bytes): two tokenizers are the same when these are (they are small)."""
    return tuple((p.name, p.read_bytes()) for p in sorted(folder.iterdir()) if p.is_file())
