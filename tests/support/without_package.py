"""Run clipit in a subprocess whose Python really lacks a package that this environment has installed.

`make install` installs the distributed extra (ray, pyspark), so "ray is not installed" cannot happen
in the test process. The subprocess runs without the site machinery (`-S`) on a copy of site-packages'
top level made of symlinks, minus the package: an import of it fails as on a machine without it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def clipit_without(package: str, args: list[str], folder: Path, **kwargs) -> subprocess.CompletedProcess:
    site = Path(sysconfig.get_paths()["purelib"])
    view = folder / f"site-without-{package}"
    view.mkdir(parents=True, exist_ok=True)
    for entry in site.iterdir():
        hidden = entry.name == package or entry.name.startswith(f"{package}-")
        if not hidden and not (view / entry.name).exists():
            (view / entry.name).symlink_to(entry)
    # the repository instead of the current folder (/tmp/ray, Ray's session folder, would pass for a
    # package), site-packages after the standard library, as `site` would place it
    code = f"import sys; sys.path[0] = {str(REPO)!r}; sys.path.append({str(view)!r}); from clipit.cli.main import main; main()"
    env = {**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1"}
    return subprocess.run(
        [sys.executable, "-S", "-c", code, *args], capture_output=True, text=True, env=env, **kwargs
    )
