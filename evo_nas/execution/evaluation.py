"""Ground-truth evaluation: deduplicated by key, within budget, on the executor the config names."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch

from evo_nas.execution.executors import Executor, WorkerLost, resolve_shared
from ground_truths import GroundTruth, Result
from search_spaces import Genotype, SearchSpace


@contextmanager
def isolated_rng(seed: int | None = None):
    """Run a block without touching the global RNGs of python, numpy and torch.

    With ``seed`` the block sees all three seeded to it. Ground-truth calls and surrogate fits
    run inside this, so that replaying a step with cached results consumes the same randomness.
    """
    py_state, np_state = random.getstate(), np.random.get_state()
    with torch.random.fork_rng(devices=[]):
        if seed is not None:
            random.seed(seed)
            np.random.seed(seed % 2**32)
            torch.manual_seed(seed)
        try:
            yield
        finally:
            random.setstate(py_state)
            np.random.set_state(np_state)


def _evaluate_guarded(gt: GroundTruth, genotype: Genotype, threads: int | None) -> Result:
    """One evaluation that never raises: an exception becomes a failed Result.

    CUDA running out of memory is a failure like any other, with its message kept.
    """
    if threads is not None:
        torch.set_num_threads(threads)
    gt = resolve_shared(gt)
    start = time.perf_counter()
    try:
        with isolated_rng():
            return gt.evaluate_one(genotype)
    except Exception as e:  # a broken cell must not stop the search
        msg = f"{type(e).__name__}: {e}".splitlines()[0]
        return Result.failed(msg, cost_s=time.perf_counter() - start)


Record = dict[str, Any]
RetryHook = Callable[[str, int, str], None]


class Dispatcher:
    """Evaluations in flight on an executor, with retries and per-evaluation time limits.

    An evaluation whose worker dies, or that runs past ``timeout_s``, is submitted again up to
    ``retries`` times (``on_retry`` is told each time), then becomes a failed Result.
    """

    def __init__(
        self,
        executor: Executor,
        ground_truth: GroundTruth,
        threads: int | None,
        retries: int,
        timeout_s: float | None,
        on_retry: RetryHook,
    ) -> None:
        self.executor = executor
        self.gt_handle = executor.share(ground_truth)
        self.threads = threads
        self.retries = retries
        self.timeout_s = timeout_s
        self.on_retry = on_retry
        self._flight: dict[str, tuple[Any, Genotype, int, float]] = {}

    def submit(self, token: str, genotype: Genotype, attempt: int = 1) -> None:
        handle = self.executor.submit(_evaluate_guarded, self.gt_handle, genotype, self.threads)
        self._flight[token] = (handle, genotype, attempt, time.monotonic())

    def pending(self) -> list[str]:
        """Tokens of the evaluations in flight."""
        return list(self._flight)

    def _lost(self, token: str, reason: str) -> Result | None:
        handle, genotype, attempt, _ = self._flight.pop(token)
        if attempt <= self.retries:
            self.on_retry(token, attempt, reason)
            self.submit(token, genotype, attempt + 1)
            return None
        return Result.failed(f"{reason} (after {attempt} attempts)")

    def collect(self, poll_s: float = 0.2) -> list[tuple[str, Result]]:
        """Evaluations that finished (waiting up to ``poll_s``), as (token, result)."""
        if not self._flight:
            return []
        by_handle = {id(h): t for t, (h, _, _, _) in self._flight.items()}
        done = self.executor.wait([h for h, _, _, _ in self._flight.values()], poll_s)
        out: list[tuple[str, Result]] = []
        for handle in done:
            token = by_handle[id(handle)]
            try:
                result = self.executor.outcome(handle)
            except WorkerLost as e:
                result = self._lost(token, f"worker lost: {e}")
                if result is None:
                    continue
            else:
                self._flight.pop(token)
            out.append((token, result))
        if self.timeout_s is not None:
            now = time.monotonic()
            for token, (handle, _, _, started) in list(self._flight.items()):
                if now - started > self.timeout_s:
                    self.executor.cancel(handle)
                    result = self._lost(token, f"time limit of {self.timeout_s:g} s exceeded")
                    if result is not None:
                        out.append((token, result))
        return out


class GroundTruthCache:
    """Every ground-truth result of a run, keyed by canonical genotype key.

    A key is never evaluated twice; new evaluations stop when the count budget is spent or
    ``out_of_time()`` says the wall-time budget is over. ``on_record`` is called after each
    new result so the run directory and checkpoint follow every evaluation. ``in_flight``
    holds what was submitted and not yet recorded, so a resumed run can re-queue it.

    A resumed run restarts from the state at the start of its step; the results recorded
    since then are ``replay``: submitting such a cell again answers it from its record
    instead of evaluating it, and it is recorded (and announced) again in the order the run
    reaches it, so that the resumed run writes what the uninterrupted one wrote.
    """

    def __init__(
        self,
        space: SearchSpace,
        dispatcher: Dispatcher,
        max_evaluations: int | None,
        on_record: Callable[[Record], None],
        out_of_time: Callable[[], bool],
    ) -> None:
        self.space = space
        self.dispatcher = dispatcher
        self.max_evaluations = max_evaluations
        self.on_record = on_record
        self.out_of_time = out_of_time
        self.records: list[Record] = []
        self.by_key: dict[str, Record] = {}
        self.in_flight: dict[str, dict[str, Any]] = {}
        self.replay: dict[str, Record] = {}
        self._ready: list[str] = []  # replayed cells submitted and not yet collected

    def load(self, records: list[Record], at_boundary: int) -> None:
        """Restore the records of a checkpoint: the first ``at_boundary`` as recorded, the
        rest to be replayed."""
        self.records = list(records[:at_boundary])
        self.by_key = {r["key"]: r for r in self.records}
        self.replay = {r["key"]: r for r in records[at_boundary:]}

    def pending_replay(self) -> list[Record]:
        """The results still to be replayed, numbered after the records (the checkpoint
        keeps them until they are recorded again)."""
        n = len(self.records)
        ordered = sorted(self.replay.values(), key=lambda r: r["index"])
        return [{**r, "index": n + i} for i, r in enumerate(ordered, start=1)]

    def flush_replay(self) -> None:
        """Record the replayed results the run did not reach again (nothing is lost)."""
        for r in sorted(self.replay.values(), key=lambda r: r["index"]):
            meta = {k: r[k] for k in ("genotype", "phase", "round", "predicted")}
            self.in_flight[r["key"]] = meta
            self.record(r["key"], r["result"])

    def __contains__(self, key: object) -> bool:
        return key in self.by_key

    def remaining(self) -> int | None:
        """Evaluations left in the count budget, counting those in flight (None: no limit)."""
        if self.max_evaluations is None:
            return None
        return max(0, self.max_evaluations - len(self.records) - len(self.in_flight))

    def exhausted(self) -> bool:
        """Whether no further evaluation may start."""
        return self.remaining() == 0 or self.out_of_time()

    # -- asynchronous use: submit, then record results as they come ---------------------
    def submit(self, genotype: Genotype, phase: str, round_: int, predicted: float | None) -> bool:
        """Start evaluating ``genotype`` unless known, in flight or over budget."""
        k = self.space.key(genotype)
        if k in self.by_key or k in self.in_flight or self.exhausted():
            return False
        self.in_flight[k] = {
            "genotype": self.space.to_json(genotype),
            "phase": phase,
            "round": round_,
            "predicted": None if predicted is None else float(predicted),
        }
        if k in self.replay:
            self._ready.append(k)  # answered from its record at the next collection
        else:
            self.dispatcher.submit(k, genotype)
        return True

    def record(self, key: str, result: Result) -> Record:
        """Store a finished evaluation of a submitted cell (and tell ``on_record``)."""
        meta = self.in_flight.pop(key)
        self.replay.pop(key, None)
        record = {"index": len(self.records) + 1, "key": key, "result": result, **meta}
        self.records.append(record)
        self.by_key[key] = record
        self.on_record(record)
        return record

    def finished(self) -> list[tuple[str, Result]]:
        """Evaluations that finished since the last call, not yet recorded (``record`` them).

        Replayed cells come first, alone and in the order they were first recorded: they
        finished before anything still running did."""
        if self._ready:
            ready = sorted(self._ready, key=lambda k: self.replay[k]["index"])
            self._ready = []
            return [(k, self.replay[k]["result"]) for k in ready]
        return self.dispatcher.collect()

    # -- synchronous use: a batch, recorded in submission order --------------------------
    def evaluate(
        self,
        genotypes: Sequence[Genotype],
        phase: str,
        round_: int,
        predicted: Sequence[float] | None = None,
    ) -> list[Result | None]:
        """Results for ``genotypes`` (None where the budget ran out before it)."""
        keys = [self.space.key(g) for g in genotypes]
        order = []
        for i, (k, g) in enumerate(zip(keys, genotypes)):
            pred = None if predicted is None else predicted[i]
            if self.submit(g, phase, round_, pred):
                order.append(k)
        done: dict[str, Result] = {}
        for k in order:
            while k not in done:
                done.update(self.finished())
            self.record(k, done.pop(k))
        return [self.by_key[k]["result"] if k in self.by_key else None for k in keys]

    def best(self) -> Record | None:
        """The record with the lowest objective (the earliest among equals)."""
        finite = [r for r in self.records if np.isfinite(r["result"].objective)]
        return min(finite, key=lambda r: (r["result"].objective, r["index"])) if finite else None

    def best_summary(self) -> dict[str, Any] | None:
        """The best record as ``best.json`` holds it (None before any finite result)."""
        best = self.best()
        if best is None:
            return None
        res = best["result"]
        return {
            "key": best["key"],
            "genotype": best["genotype"],
            "describe": self.space.describe(self.space.from_json(best["genotype"])),
            "objective": res.objective,
            "status": res.status,
            "metrics": res.metrics,
            "found_at_evaluation": best["index"],
            "phase": best["phase"],
            "round": best["round"],
            "evaluations": len(self.records),
        }
