"""The generational strategy: warm-up, then rounds of generations and promotions.

The run advances in steps (the warm-up, one generation, one promotion); each starts with a
snapshot of the state. A resumed run restores the snapshot and replays the step: everything
in it is deterministic given the snapshot, and the evaluations it already made are cache
hits, so it ends exactly as an uninterrupted run would (on CPU, with a fixed seed), with no
evaluation repeated or lost.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, NonNegativeInt

from evo_nas.search.evolution import genotype_of, make_individual
from evo_nas.search.fitness import Fitness
from evo_nas.search.parts import Search
from evo_nas.search.state import checked
from evo_nas.search.strategy import InFlight, Strategy
from search_spaces import Genotype

Phase = Literal["start", "evolve", "promote"]


class _State(BaseModel):
    model_config = ConfigDict(extra="forbid")

    phase: Phase
    gen_in_round: NonNegativeInt
    stale: NonNegativeInt


class Generational(Strategy):
    """Step by step; each step's evaluations are a batch spread over the workers.

    Its state: the ``phase`` of the next step, the generations so far in the round
    (``gen_in_round``) and the steps in a row that found no new cell (``stale``).
    """

    replays_steps = True

    def __init__(self, search: Search) -> None:
        super().__init__(search)
        self.phase: Phase = "start"
        self.gen_in_round = 0
        self.stale = 0

    def state_dict(self) -> dict[str, Any]:
        return {"phase": self.phase, "gen_in_round": self.gen_in_round, "stale": self.stale}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        s = checked(_State, state)
        self.phase, self.gen_in_round, self.stale = s.phase, s.gen_in_round, s.stale

    def run(self, workers: int, resumed: InFlight | None) -> None:
        search = self.search
        replaying = resumed is not None  # the restored boundary is this step's start
        while True:
            if replaying:
                replaying = False
            else:
                if self.phase != "start" and not search.state.done:
                    search.check_done(self.stale)
                self.snapshot()
            if search.state.done:
                break
            if self.phase == "start":
                self._start()
            elif self.phase == "evolve":
                self._generation()
            else:
                self._promote()

    def _generation(self) -> None:
        """One generation; with a surrogate the round's last one leads to its promotion."""
        new_evals = self.search.generation()
        if not self.search.with_surrogate:
            self.stale = 0 if new_evals else self.stale + 1
            return
        self.gen_in_round += 1
        if self.gen_in_round >= self.search.cfg.surrogate_loop.generations:
            self.phase = "promote"

    def _start(self) -> None:
        _start(self.search)
        self.phase, self.gen_in_round = "evolve", 0

    def _promote(self) -> None:
        new_evals = _promote(self.search)
        self.stale = 0 if new_evals else self.stale + 1
        if not self.search.cache.exhausted():
            self.phase, self.gen_in_round = "evolve", 0


def _start(search: Search) -> None:
    """The first step: the initial population, or the warm-up and the first fit."""
    cfg, st = search.cfg, search.state
    if not search.with_surrogate and cfg.search.algorithm == "random":
        if search.initial:
            search.fitness.ground_truth(list(search.initial), "evolve")
        return
    size = cfg.search.population if not search.with_surrogate else cfg.surrogate_loop.warmup
    if cfg.budget.evaluations is not None:  # the ground truth answers no more than that
        size = min(size, cfg.budget.evaluations)
    chosen = [make_individual(search.space, g) for g in search.initial][:size]
    predicted = None
    if search.with_surrogate and cfg.surrogate_loop.warmup_candidates:
        best, pred = search.ranked_unseen(size - len(chosen), {i.key for i in chosen})
        if search.initial:
            pred = [*search.fitness.predict([genotype_of(i) for i in chosen]), *pred]
        chosen, predicted = chosen + best, [float(p) for p in pred]
    else:
        chosen += search.evolver.random_unseen(size - len(chosen), {i.key for i in chosen})
    phase = "warmup" if search.with_surrogate else "evolve"
    values = search.fitness.ground_truth([genotype_of(i) for i in chosen], phase, predicted)
    for ind, v in zip(chosen, values):
        ind.fitness.values = (v,)
    evaluated = [i for i in chosen if not math.isnan(i.fitness.values[0])]
    if not search.with_surrogate:
        st.population = evaluated
        search.log_generation(evaluated, len(evaluated))
    else:
        st.round = 1
        search.fitness.fit()
        ranked = sorted(evaluated, key=lambda i: i.fitness.values[0])
        population = ranked[: cfg.search.population]
        population += search.evolver.random_unseen(
            cfg.search.population - len(population), {i.key for i in population}
        )
        search.set_predicted_population(population)


def _promote(search: Search) -> int:
    """The best predicted unseen cells of the round (and random ones) to the ground truth,
    then a refit and a new round; returns the new results."""
    cfg, st, fitness = search.cfg, search.state, search.fitness
    ranked = sorted((p, k, g) for k, (g, p) in st.round_seen.items() if not fitness.known(k))
    if cfg.surrogate_loop.promote_by == "lcb" and ranked:
        ranked = _lower_bound_order(fitness, ranked, cfg.surrogate_loop.kappa)
    top = ranked[: cfg.surrogate_loop.promote]
    chosen = [g for _, _, g in top]
    predicted = [p for p, _, _ in top]
    if cfg.surrogate_loop.explore:
        extra = search.evolver.random_unseen(
            cfg.surrogate_loop.explore, {search.space.key(g) for g in chosen}
        )
        extra_g = [genotype_of(i) for i in extra]
        chosen += extra_g
        predicted += [float(p) for p in fitness.predict(extra_g)] if extra_g else []
    search.events.emit(
        {
            "event": "promote",
            "round": st.round,
            "keys": [search.space.key(g) for g in chosen],
            "predicted": predicted,
        }
    )
    search.cache.evaluate(chosen, "promote", st.round, predicted)
    new_evals = search.new_evaluations()
    if search.cache.exhausted():
        return new_evals
    st.round += 1
    fitness.fit()
    search.set_predicted_population(_with_incumbents(search))
    return new_evals


def _with_incumbents(search: Search) -> list[Any]:
    """The next round's population: the ``surrogate_loop.incumbents`` best cells the ground
    truth has answered, so that evolution also searches next to what is known to be good,
    then the round's best predicted cells."""
    cfg, st = search.cfg, search.state
    k = min(cfg.surrogate_loop.incumbents, cfg.search.population)
    if not k:
        return st.population
    finite = [r for r in search.cache.records if math.isfinite(r["result"].objective)]
    best = sorted(finite, key=lambda r: (r["result"].objective, r["key"]))[:k]
    incumbents = [
        make_individual(search.space, search.space.from_json(r["genotype"])) for r in best
    ]
    taken = {i.key for i in incumbents}
    rest = sorted((i for i in st.population if i.key not in taken), key=lambda i: i.fitness.values)
    return incumbents + rest[: cfg.search.population - len(incumbents)]


def _lower_bound_order(
    fitness: Fitness, ranked: list[tuple[float, str, Genotype]], kappa: float
) -> list[tuple[float, str, Genotype]]:
    """The round's candidates by ``mean - kappa * spread`` (the spread asked of the surrogate
    now; a candidate without one keeps its mean), each with its prediction as before."""
    _, std = fitness.predict_with_std([g for _, _, g in ranked])
    bound = [p - kappa * (s if np.isfinite(s) else 0.0) for (p, _, _), s in zip(ranked, std)]
    order = sorted(range(len(ranked)), key=lambda i: (bound[i], ranked[i][1]))
    return [ranked[i] for i in order]
