"""Where a run reports what happens: ``events.jsonl``, the progress bar and TensorBoard."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tqdm import tqdm

from evo_nas.execution.evaluation import Record
from evo_nas.rundir.files import RunDir
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


class EventSink:
    """One sink for a run's events: each is stamped with the run's elapsed time, appended to
    ``events.jsonl`` and mirrored to TensorBoard (``logging.tensorboard``); the progress bar
    counts ground-truth evaluations and shows what a long training or fit is doing.

    ``written`` counts the lines of ``events.jsonl``; the checkpoint stores it, so that a
    resumed run cuts the file back to what its checkpoint knows.
    """

    def __init__(self, run_dir: RunDir, clock: Callable[[], float], tensorboard: bool) -> None:
        self.run_dir = run_dir
        self.clock = clock
        self.written = 0
        self.tensorboard = TensorBoardLog(run_dir.path / "tensorboard") if tensorboard else None
        self.bar: tqdm | None = None

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

    # -- the progress bar -------------------------------------------------------------------
    def open_progress(self, total: int | None, done: int, show: bool) -> None:
        """Start the bar of ground-truth evaluations (``done`` of ``total`` so far)."""
        self.bar = tqdm(
            total=total,
            initial=done,
            desc="ground-truth evaluations",
            unit="eval",
            disable=not show,
        )

    def close_progress(self) -> None:
        """Close the bar (nothing if none is open)."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def advance(self, best: float | None) -> None:
        """One more evaluation, and the best objective so far."""
        if self.bar is not None:
            self.bar.update(1)
            if best is not None:
                self.bar.set_postfix(best=f"{best:.4g}")

    def training_progress(self, event: dict[str, Any]) -> None:
        """A long in-process training or surrogate fit shows where it is on the bar."""
        if self.bar is None:
            return
        kind = event.get("event")
        if kind == "batch":
            self.bar.set_postfix_str(
                f"training: epoch {event['epoch']} batch {event['batch']}/{event['batches']} "
                f"ppl {event['ppl']:.1f}",
                refresh=event["batch"] % 10 == 0,
            )
        elif kind == "epoch" and "epochs" in event:
            self.bar.set_postfix_str(f"training: epoch {event['epoch']}/{event['epochs']}")
        elif kind == "meta_step":
            self.bar.set_postfix_str(
                f"fitting surrogate: dish {event['dish']}/{event['dishes']} "
                f"step {event['step']}/{event['steps']} loss {event['loss']:.4g}",
                refresh=event["step"] % 5 == 0,
            )
