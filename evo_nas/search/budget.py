"""When a search stops: its evaluation count, its wall time (summed over resumes) and its
patience for steps that evaluate nothing new."""

from __future__ import annotations

import time

from evo_nas.config.schema import SearchConfig


class Budget:
    """The run's clock and limits; the evaluation count itself is kept by the ground-truth
    cache, which asks :meth:`out_of_time` before starting an evaluation."""

    def __init__(self, cfg: SearchConfig) -> None:
        self.wall_time_s = cfg.budget.wall_time_s
        self.max_stale = cfg.search.max_stale_generations
        self.elapsed_before = 0.0
        self.t0 = time.monotonic()

    def elapsed(self) -> float:
        """Seconds the run has worked, its earlier sessions included."""
        return self.elapsed_before + (time.monotonic() - self.t0)

    def resume_at(self, elapsed_s: float) -> None:
        """Continue the clock of a resumed run from ``elapsed_s``."""
        self.elapsed_before = elapsed_s
        self.t0 = time.monotonic()

    def out_of_time(self) -> bool:
        """Whether the wall-time budget is spent."""
        return self.wall_time_s is not None and self.elapsed() >= self.wall_time_s

    def stop_reason(self, remaining: int | None, stale: int) -> str | None:
        """Why the search must stop, given the evaluations ``remaining`` and the ``stale``
        steps in a row without a new evaluation; None while it may go on."""
        if remaining == 0:
            return "evaluation budget spent"
        if self.out_of_time():
            return "wall-time budget spent"
        if stale >= self.max_stale:
            return f"no unseen candidate in {stale} consecutive steps (space exhausted?)"
        return None
