"""Where a run reports what happens: ``events.jsonl``, the progress display and TensorBoard."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from evo_nas.execution.evaluation import Record
from evo_nas.rundir.files import RunDir
from evo_nas.rundir.progress import Progress, duration
from evo_nas.rundir.tensorboard import TensorBoardLog


def evaluation_event(record: Record) -> dict[str, Any]:
    """The ``evaluation`` event of one ground-truth record."""
    res = record["result"]
    return {
        "event": "evaluation",
        "index": record["index"],
        "key": record["key"],
        "genotype": record["genotype"],
        "objective": res.objective,
        "status": res.status,
        "cost_s": res.cost_s,
        "phase": record["phase"],
        "round": record["round"],
        "predicted": record["predicted"],
        "message": res.message,
    }


#: seconds between two ``screen`` lines in ``events.jsonl`` while the surrogate screens cells
#: (a pass shorter than this writes none: the log stays small, the dashboard still sees long ones)
SCREEN_EVENT_S = 5.0


@dataclass
class Screening:
    """One pass of the surrogate over a batch of candidate cells, as its progress reports it."""

    total: int
    first_done: int
    first_at: float
    done: int = 0
    written_at: float | None = None

    def rate(self, now: float) -> float | None:
        """Cells a second since the pass's first report (None until measurable)."""
        cells, seconds = self.done - self.first_done, now - self.first_at
        return cells / seconds if cells > 0 and seconds > 0 else None

    def summary(self, now: float) -> dict[str, Any]:
        """What a ``screen`` event records: cells done of total, speed and time left."""
        rate = self.rate(now)
        left = None if rate is None else (self.total - self.done) / rate
        return {
            "done": self.done,
            "total": self.total,
            "cells_per_s": None if rate is None else float(f"{rate:.3g}"),
            "left_s": None if left is None else round(left, 1),
        }


class EventSink:
    """One sink for a run's events: each is stamped with the run's elapsed time, appended to
    ``events.jsonl`` and mirrored to TensorBoard (``logging.tensorboard``); the progress display
    (:class:`~evo_nas.rundir.progress.Progress`: a bar on a terminal, plain lines in a log)
    counts ground-truth evaluations and shows what a long training, fit or screening is doing.

    ``written`` counts the lines of ``events.jsonl``; the checkpoint stores it, so that a
    resumed run cuts the file back to what its checkpoint knows.
    """

    def __init__(self, run_dir: RunDir, clock: Callable[[], float], tensorboard: bool) -> None:
        self.run_dir = run_dir
        self.clock = clock
        self.written = 0
        self.tensorboard = TensorBoardLog(run_dir.path / "tensorboard") if tensorboard else None
        self.display: Progress | None = None
        self.best = ""
        self.screening: Screening | None = None

    def emit(self, event: dict[str, Any]) -> None:
        """Record one event."""
        event = {**event, "elapsed_s": round(self.clock(), 3)}
        self.run_dir.append_event(event)
        self.written += 1
        if self.tensorboard is not None:
            self.tensorboard(event)

    def retry(self, key: str, attempt: int, reason: str) -> None:
        """An evaluation submitted again (a lost worker, a time limit)."""
        self.emit({"event": "retry", "key": key, "attempt": attempt, "reason": reason})

    # -- the progress display ---------------------------------------------------------------
    def open_progress(self, total: int | None, done: int, show: bool) -> None:
        """Start counting ground-truth evaluations (``done`` of ``total`` so far)."""
        self.display = Progress(
            "ground-truth evaluations",
            total=total,
            unit="eval",
            initial=done,
            show=show,
            clock=self.clock,
        )

    def close_progress(self) -> None:
        """Close the display (nothing if none is open)."""
        if self.display is not None:
            self.display.close()
            self.display = None

    def advance(self, best: float | None) -> None:
        """One more evaluation, and the best objective so far."""
        if self.display is not None:
            if best is not None:
                self.best = f"best {best:.4f}"
                self.display.status(self.best, refresh=False)
            self.display.update(1)

    def _status(self, activity: str, refresh: bool = True) -> None:
        """The best so far and what the run is doing now, on the display."""
        if self.display is not None:
            self.display.status(", ".join(t for t in (self.best, activity) if t), refresh)

    def training_progress(self, event: dict[str, Any]) -> None:
        """A long in-process training, surrogate fit or screening shows where it is; a long
        screening also leaves ``screen`` events (at most one per ``SCREEN_EVENT_S``)."""
        kind = event.get("event")
        if kind == "screen":
            self._screen(int(event["done"]), int(event["total"]))
            return
        if kind == "batch":
            self._status(
                f"training: epoch {event['epoch']} batch {event['batch']}/{event['batches']} "
                f"ppl {event['ppl']:.1f}",
                refresh=event["batch"] % 10 == 0,
            )
        elif kind == "epoch" and "epochs" in event:
            self._status(f"training: epoch {event['epoch']}/{event['epochs']}")
        elif kind == "meta_step":
            self._status(
                f"fitting surrogate: dish {event['dish']}/{event['dishes']} "
                f"step {event['step']}/{event['steps']} loss {event['loss']:.4g}",
                refresh=event["step"] % 5 == 0,
            )

    def _screen(self, done: int, total: int) -> None:
        """The surrogate recorded ``done`` of the ``total`` cells of its current batch."""
        now = self.clock()
        s = self.screening
        if s is None or done < s.done or total != s.total:
            s = self.screening = Screening(total=total, first_done=done, first_at=now)
        s.done = done
        finished = done >= total
        due = now - s.first_at >= SCREEN_EVENT_S and (
            s.written_at is None or now - s.written_at >= SCREEN_EVENT_S
        )
        if due or (finished and s.written_at is not None):
            self.emit({"event": "screen", **s.summary(now)})
            s.written_at = now
        info = s.summary(now)
        text = f"surrogate screening cells: {done}/{total}"
        if info["cells_per_s"] is not None:
            text += f", {info['cells_per_s']:g} cells/s, about {duration(info['left_s'])} left"
        self._status("" if finished else text)
        if finished:
            self.screening = None
