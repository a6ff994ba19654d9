"""The trainer's stderr: a rich progress bar (phase, step, loss, samples/s, ETA) on a terminal, and one
plain line per log step otherwise (CI logs, `2> train.log`). Only process 0 speaks."""

from __future__ import annotations

import jax
from rich.progress import TextColumn

from clipit.console import err_console, progress


class TrainProgress:
    def __init__(self, *, total: int, done: int) -> None:
        self.enabled = jax.process_index() == 0
        self.terminal = err_console.is_terminal
        self._bar = progress(TextColumn("{task.fields[status]}"))
        self._task = None
        self.total, self.done = total, done

    def __enter__(self) -> TrainProgress:
        if self.enabled and self.terminal:
            self._bar.__enter__()
            self._task = self._bar.add_task("train", total=self.total, completed=self.done, status="")
        return self

    def __exit__(self, *exc) -> None:
        if self._task is not None:
            self._bar.__exit__(*exc)

    def update(self, phase: str, step: int, values: dict[str, float]) -> None:
        status = (
            f"loss {values['loss']:.4f}  lr {values['lr']:.2e}  scale {values['logit_scale']:.1f}  "
            f"{values['samples_per_s']:.0f} samples/s  data wait {values['data_wait_fraction']:.0%}"
        )
        if self._task is not None:
            self._bar.update(self._task, completed=step, description=f"{phase}", status=status)
        elif self.enabled:
            err_console.print(f"[{phase}] step {step}/{self.total}  {status}", markup=False, soft_wrap=True)

    def note(self, phase: str, step: int, values: dict[str, float]) -> None:
        """Validation results: one line above the bar (or in the log)."""
        if not self.enabled:
            return
        recalls = "  ".join(f"{k} {v:.3f}" for k, v in values.items() if "@" in k)
        line = f"[{phase}] step {step} val loss {values['loss']:.4f}  {recalls}"
        err_console.print(line, markup=False, soft_wrap=True)
