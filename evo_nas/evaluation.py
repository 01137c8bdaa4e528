"""Ground-truth evaluation: deduplicated by key, within budget, in parallel through joblib."""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
from joblib import Parallel, delayed

from search_spaces import Genotype, SearchSpace
from surrogates import GroundTruth, Result


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
    """One evaluation that never raises: an exception becomes a failed Result."""
    if threads is not None:
        torch.set_num_threads(threads)
    start = time.perf_counter()
    try:
        with isolated_rng():
            return gt.evaluate_one(genotype)
    except Exception as e:  # a broken cell must not stop the search
        msg = f"{type(e).__name__}: {e}".splitlines()[0]
        return Result.failed(msg, cost_s=time.perf_counter() - start)


Record = dict[str, Any]


class GroundTruthCache:
    """Every ground-truth result of a run, keyed by canonical genotype key.

    A key is never evaluated twice; new evaluations stop when the count budget is spent or
    ``deadline()`` says the wall-time budget is over. ``on_record`` is called after each new
    result, in submission order, so the run directory and checkpoint follow every evaluation.
    """

    def __init__(
        self,
        space: SearchSpace,
        ground_truth: GroundTruth,
        max_evaluations: int | None,
        n_jobs: int,
        threads_per_worker: int | None,
        on_record: Callable[[Record], None],
        out_of_time: Callable[[], bool],
    ) -> None:
        self.space = space
        self.ground_truth = ground_truth
        self.max_evaluations = max_evaluations
        self.n_jobs = n_jobs
        cores = os.cpu_count() or 1
        self.threads = threads_per_worker or (max(1, cores // n_jobs) if n_jobs > 1 else None)
        self.on_record = on_record
        self.out_of_time = out_of_time
        self.records: list[Record] = []
        self.by_key: dict[str, Record] = {}

    def load(self, records: list[Record]) -> None:
        """Restore the records of a checkpoint."""
        self.records = list(records)
        self.by_key = {r["key"]: r for r in self.records}

    def __contains__(self, key: object) -> bool:
        return key in self.by_key

    def remaining(self) -> int | None:
        """Evaluations left in the count budget (None: no count limit)."""
        if self.max_evaluations is None:
            return None
        return max(0, self.max_evaluations - len(self.records))

    def exhausted(self) -> bool:
        """Whether no further evaluation may start."""
        return self.remaining() == 0 or self.out_of_time()

    def _run(self, todo: list[Genotype]) -> Any:
        if self.n_jobs == 1 or len(todo) == 1:
            return (_evaluate_guarded(self.ground_truth, g, self.threads) for g in todo)
        return Parallel(n_jobs=min(self.n_jobs, len(todo)), return_as="generator")(
            delayed(_evaluate_guarded)(self.ground_truth, g, self.threads) for g in todo
        )

    def evaluate(
        self,
        genotypes: Sequence[Genotype],
        phase: str,
        round_: int,
        predicted: Sequence[float] | None = None,
    ) -> list[Result | None]:
        """Results for ``genotypes`` (None where the budget ran out before it)."""
        keys = [self.space.key(g) for g in genotypes]
        todo: list[tuple[str, Genotype, float | None]] = []
        queued: set[str] = set()
        for i, (k, g) in enumerate(zip(keys, genotypes)):
            if k in self.by_key or k in queued:
                continue
            queued.add(k)
            todo.append((k, g, None if predicted is None else float(predicted[i])))
        remaining = self.remaining()
        if remaining is not None:
            todo = todo[:remaining]
        if todo and not self.out_of_time():
            results = self._run([g for _, g, _ in todo])
            for (k, g, pred), res in zip(todo, results):
                record = {
                    "index": len(self.records) + 1,
                    "key": k,
                    "genotype": self.space.to_json(g),
                    "result": res,
                    "phase": phase,
                    "round": round_,
                    "predicted": pred,
                }
                self.records.append(record)
                self.by_key[k] = record
                self.on_record(record)
                if self.out_of_time():
                    break
        return [self.by_key[k]["result"] if k in self.by_key else None for k in keys]

    def best(self) -> Record | None:
        """The record with the lowest objective (the earliest among equals)."""
        finite = [r for r in self.records if np.isfinite(r["result"].objective)]
        return min(finite, key=lambda r: (r["result"].objective, r["index"])) if finite else None
