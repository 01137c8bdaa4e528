"""Optional TensorBoard view of a run (``logging.tensorboard: true``, the tensorboard extra).

Reads nothing back: it mirrors the events the engine writes to ``events.jsonl`` as scalars
under ``RUN_DIR/tensorboard`` (objective and best-so-far per ground-truth evaluation, the
surrogate's training rank correlation per refit, population statistics per generation).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from evo_nas.config.errors import ConfigError


class TensorBoardLog:
    """Writes the run's events as TensorBoard scalars (the folder is created at the first
    event, so that building a run, e.g. one then refused, writes nothing)."""

    def __init__(self, folder: Path) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise ConfigError(
                "logging.tensorboard: tensorboard is not installed "
                "(pip install evo-nas[tensorboard])"
            ) from None
        self._open = lambda: SummaryWriter(log_dir=str(folder))
        self.writer: Any = None
        self.best = math.inf

    def __call__(self, event: dict[str, Any]) -> None:
        if self.writer is None:
            self.writer = self._open()
        kind = event.get("event")
        if kind == "evaluation":
            step = int(event["index"])
            objective = float(event["objective"])
            if math.isfinite(objective):
                self.writer.add_scalar("ground_truth/objective", objective, step)
                self.best = min(self.best, objective)
            if math.isfinite(self.best):
                self.writer.add_scalar("ground_truth/best_so_far", self.best, step)
        elif kind == "fit" and event.get("train_kendall_tau") is not None:
            self.writer.add_scalar(
                "surrogate/train_kendall_tau", event["train_kendall_tau"], event["round"]
            )
            self.writer.add_scalar("surrogate/fit_s", event["fit_s"], event["round"])
        elif kind == "generation":
            for name in ("min", "median"):
                value = event.get(name)
                if isinstance(value, (int, float)) and math.isfinite(value):
                    self.writer.add_scalar(f"population/{name}", value, event["gen"])
        self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
