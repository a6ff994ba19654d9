"""img2dataset's process-side classes, adapted for clipit; this module is what loads img2dataset.

- Orphans: after `kill -9` of clipit, multiprocessing's spawned workers would keep downloading and a
  rerun would write the same shard concurrently. Each worker watches its parent process and exits
  when it is gone (clipit.parent_watch, which also says why not PR_SET_PDEATHSIG: img2dataset's pool
  forks workers from a thread that exits inside `terminate()`, and the kernel then killed a worker
  holding the pool's queue lock, which hung the run).
- Start-up cost: img2dataset starts a logger *process* (one more interpreter importing cv2,
  albumentations, wandb, ...) only to print stats; a thread in clipit's process does that here.
  webdataset imports torch when it is installed (seconds) for helpers img2dataset never uses, so
  img2dataset is loaded with torch hidden (webdataset supports torch being absent). torch stays
  importable afterwards.
The spawned workers import this module again to unpickle `OrphanSafeDownloader`.
"""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

from clipit.parent_watch import exit_with_parent

_HIDE_TORCH = "torch" not in sys.modules
if _HIDE_TORCH:
    sys.modules["torch"] = None  # type: ignore[assignment]  # `import torch` -> ModuleNotFoundError
try:
    from img2dataset.downloader import Downloader
finally:
    if _HIDE_TORCH and sys.modules.get("torch", 0) is None:
        del sys.modules["torch"]

PROGRESS_INTERVAL_S = 10.0


class OrphanSafeDownloader(Downloader):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.parent_pid = os.getpid()  # set in clipit's process, travels to the workers by pickle

    def __call__(self, row):
        exit_with_parent(self.parent_pid)  # once per worker process
        return super().__call__(row)


class ProgressThread(threading.Thread):
    """Stands in for img2dataset's LoggerProcess (same constructor and methods): a line per finished shard."""

    def __init__(self, output_folder, enable_wandb=False, wandb_project=None, config_parameters=None, **_):
        super().__init__(daemon=True, name="img2dataset-progress")
        self.folder = Path(output_folder)
        self.done_shards: set[int] = set()
        self._stop_event = threading.Event()

    def run(self) -> None:
        reported = set(self.done_shards)
        while not self._stop_event.wait(PROGRESS_INTERVAL_S):
            finished = {int(p.name.split("_")[0]) for p in self.folder.glob("*_stats.json")}
            if finished - reported:
                print(f"img2dataset: {len(finished)} shards finished", file=sys.stderr, flush=True)
                reported = finished

    def join(self, timeout=None) -> None:
        self._stop_event.set()
        super().join(timeout)

    def terminate(self) -> None:
        self._stop_event.set()
