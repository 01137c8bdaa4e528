"""The parts of a running search and the steps both strategies are made of.

A generation of evolution (or of NAO's generator), a new predicted population, the logbook
row of a generation, the stop check, and the snapshot that a resume restarts from.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from evo_nas.config.schema import SearchConfig
from evo_nas.execution.evaluation import GroundTruthCache, isolated_rng
from evo_nas.rundir.events import EventSink
from evo_nas.search.budget import Budget
from evo_nas.search.checkpointer import Checkpointer
from evo_nas.search.evolution import Evolver, genotype_of, make_individual, make_statistics
from evo_nas.search.fitness import Fitness
from evo_nas.search.state import Generators, SearchState
from search_spaces import Genotype, SearchSpace


@dataclass
class Search:
    """One run's search, as the engine wires it and a strategy drives it."""

    cfg: SearchConfig
    space: SearchSpace
    initial: list[Genotype]
    state: SearchState
    cache: GroundTruthCache
    fitness: Fitness
    evolver: Evolver
    generators: Generators
    events: EventSink
    budget: Budget
    checkpointer: Checkpointer

    @property
    def with_surrogate(self) -> bool:
        """Whether a surrogate gives fitness (else the ground truth does)."""
        return self.fitness.surrogate is not None

    def new_evaluations(self) -> int:
        """Ground-truth results since the current step began."""
        return len(self.cache.records) - self.state.records_at_boundary

    def log_generation(self, members: list[Any], new_evals: int) -> None:
        """A logbook row (and ``generation`` event): counters, best so far, statistics."""
        st = self.state
        best = self.cache.best()
        row = {
            "gen": st.generation,
            "round": st.round,
            "evals": new_evals,
            "best": None if best is None else best["result"].objective,
            **(make_statistics().compile(members) if members else {}),
        }
        st.logbook.record(**row)
        self.events.emit({"event": "generation", **row})

    def set_predicted_population(self, population: list[Any]) -> None:
        """Start a round: ``population``'s fitness becomes the (new) surrogate's prediction."""
        st = self.state
        st.round_seen = {}
        for ind in population:
            del ind.fitness.values
        self.evolver.assign(population)
        st.population = population

    def generation(self) -> int:
        """One generation of the configured algorithm (or of NAO's generator); returns the
        ground-truth results since the current step began."""
        cfg, st = self.cfg, self.state
        algo, n = cfg.search.algorithm, cfg.search.offspring
        if self.with_surrogate and cfg.search.generator == "nao":
            children = self._generated_children(n)
        elif algo == "regularized":
            children = self.evolver.regularized_generation(st.population, n, cfg.search.population)
        elif algo == "mu_plus_lambda":
            children = self.evolver.mu_plus_lambda_generation(st.population, n)
        else:
            children = self.evolver.random_generation(n, set())
        st.generation += 1
        new_evals = self.new_evaluations()
        self.log_generation(children if algo == "random" else st.population, new_evals)
        return new_evals

    def _generated_children(self, n: int) -> list[Any]:
        """NAO's generator instead of mutation: gradient steps from the best predicted cells."""
        st = self.state
        parents = sorted(st.population, key=lambda i: i.fitness.values[0])
        seeds = [genotype_of(i) for i in parents[: self.cfg.search.sample]]
        with isolated_rng(self.cfg.seed + st.generation):
            genotypes, stats = self.fitness.surrogate.generate(seeds, n, self.generators.numpy)
        children = [make_individual(self.space, g) for g in genotypes]
        children = [c for c in children if not self.fitness.taken(c.key)]
        self.evolver.assign(children)
        st.population = sorted(st.population + children, key=lambda i: i.fitness.values[0])[
            : self.cfg.search.population
        ]
        self.events.emit({"event": "generator", "round": st.round, "kept": len(children), **stats})
        return children

    def ranked_unseen(self, n: int, exclude: set[str]) -> tuple[list[Any], list[float]]:
        """The warm start: ``surrogate_loop.warmup_candidates`` random unseen cells ranked by
        the unfitted surrogate; the ``n`` best and their predictions (a ``warm_start``
        event says how many were ranked and how long it took)."""
        candidates = self.evolver.random_unseen(self.cfg.surrogate_loop.warmup_candidates, exclude)
        if not candidates:
            return [], []
        pred = self.fitness.predict([genotype_of(i) for i in candidates])
        order = sorted(range(len(candidates)), key=lambda i: (pred[i], candidates[i].key))[:n]
        self.events.emit(
            {
                "event": "warm_start",
                "candidates": len(candidates),
                **self.fitness.take_costs(),
            }
        )
        return [candidates[i] for i in order], [float(pred[i]) for i in order]

    def check_done(self, stale: int) -> bool:
        """Whether a budget is spent or the search is stuck after ``stale`` steps without a
        new result; if so the state says why."""
        reason = self.budget.stop_reason(self.cache.remaining(), stale)
        if reason is not None:
            self.state.reason = reason
        return self.state.done

    def snapshot(self, strategy: dict[str, Any]) -> None:
        """Make the current state (and the strategy's, ``strategy``) the boundary that a
        resume restarts from, and save it."""
        self.state.records_at_boundary = len(self.cache.records)
        self.state.events_at_boundary = self.events.written
        self.state.in_flight = dict(self.cache.in_flight)
        # an unfitted surrogate has nothing to save (and some refuse to say so)
        surrogate = self.fitness.surrogate.state_dict() if self.state.fitted else None
        self.checkpointer.snapshot(self.state, strategy, self.generators.states(), surrogate)
