"""Where a search's fitness comes from: the surrogate, refitted on every result so far, or
without one the ground truth itself; and which cells count as taken."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
from scipy.stats import kendalltau

from evo_nas.execution.evaluation import GroundTruthCache, isolated_rng
from evo_nas.rundir.events import EventSink
from evo_nas.search.state import SearchState
from search_spaces import Genotype, SearchSpace
from surrogates import Surrogate


@dataclass
class Fitness:
    """Fitness of a batch of genotypes for evolution (:class:`~evo_nas.search.evolution.Evolver`).

    With a surrogate, a batch is predicted and every prediction of the round is kept in the
    state's ``round_seen`` (the candidates of the next promotion); without one, the batch goes
    to the ground truth. ``replays_steps`` is the strategy's: when a resumed run replays its
    interrupted step, choices inside a step consult only the results from before it, so the
    replay decides exactly as the first try did.
    """

    seed: int
    space: SearchSpace
    surrogate: Surrogate | None
    cache: GroundTruthCache
    state: SearchState
    events: EventSink
    replays_steps: bool

    def known(self, key: str) -> bool:
        """Evaluated already, as far as choosing new cells is concerned: before the current
        step began (replayed steps), or at all and in flight (otherwise)."""
        if not self.replays_steps:
            return key in self.cache or key in self.cache.in_flight
        record = self.cache.by_key.get(key)
        return record is not None and record["index"] <= self.state.records_at_boundary

    def taken(self, key: str) -> bool:
        """Not to be proposed again: known, or predicted already in this round."""
        return self.known(key) or key in self.state.round_seen

    def ground_truth(
        self, genotypes: list[Genotype], phase: str, predicted: list[float] | None = None
    ) -> list[float]:
        """Ground-truth objectives (NaN where the budget ran out before the cell)."""
        results = self.cache.evaluate(genotypes, phase, self.state.round, predicted)
        return [math.nan if r is None else r.objective for r in results]

    def predict(self, genotypes: list[Genotype]) -> np.ndarray:
        """The surrogate's predictions (NaN read as the worst, ``inf``)."""
        return self.predict_with_std(genotypes)[0]

    def predict_with_std(self, genotypes: list[Genotype]) -> tuple[np.ndarray, np.ndarray]:
        """Predictions (NaN read as ``inf``) and their spread (nan where unknown)."""
        assert self.surrogate is not None
        start = time.perf_counter()
        with isolated_rng(self.seed):
            pred, std = self.surrogate.predict_with_std(genotypes)
        st = self.state
        st.unreported_predict_s += time.perf_counter() - start
        keys = {self.space.key(g) for g in genotypes}
        st.unreported_screened += len(keys - st.screened)
        st.screened |= keys
        pred = np.asarray(pred, dtype=float)
        return np.where(np.isnan(pred), np.inf, pred), np.asarray(std, dtype=float)

    def take_costs(self) -> dict[str, float]:
        """Seconds of prediction and newly screened cells since the last call (the events'
        cost figures; kept in the state, so that resumes neither lose nor repeat them)."""
        st = self.state
        out = {"predict_s": round(st.unreported_predict_s, 4), "screened": st.unreported_screened}
        st.unreported_predict_s, st.unreported_screened = 0.0, 0
        return out

    def __call__(self, genotypes: list[Genotype]) -> list[float]:
        if self.surrogate is None:
            return self.ground_truth(genotypes, "evolve")
        pred = self.predict(genotypes)
        seen = self.state.round_seen
        for g, p in zip(genotypes, pred):
            seen[self.space.key(g)] = (g, float(p))
        return [float(p) for p in pred]

    def fit(self) -> None:
        """Refit the surrogate on every ground-truth result so far (a ``fit`` event)."""
        assert self.surrogate is not None
        records = self.cache.records
        genotypes = [self.space.from_json(r["genotype"]) for r in records]
        objectives = [r["result"].objective for r in records]
        start = time.perf_counter()
        with isolated_rng(self.seed * 1_000_003 + self.state.round):
            self.surrogate.fit(genotypes, objectives)
        self.state.fitted = True
        fit_s = time.perf_counter() - start
        y = np.asarray(objectives)
        finite = np.isfinite(y)
        tau = None
        if finite.sum() >= 3:
            pred = self.predict([g for g, f in zip(genotypes, finite) if f])
            tau = float(kendalltau(pred, y[finite]).statistic)
        self.events.emit(
            {
                "event": "fit",
                "round": self.state.round,
                "n": len(records),
                "fit_s": round(fit_s, 4),
                **self.take_costs(),
                "train_kendall_tau": tau,
            }
        )
