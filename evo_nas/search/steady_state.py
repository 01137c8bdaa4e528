"""The steady-state strategy: every worker busy, each result used as soon as it lands.

Regularized evolution as Real et al. and NNI run it: when an evaluation finishes, the child
joins the population at once and a new child takes the free worker. With a surrogate, free
workers take the next-best predicted candidates, and the surrogate is refitted (and the
candidates re-ranked) after every ``surrogate_loop.promote`` new results. The checkpoint after
each result holds the cells still in flight; a resumed run submits them again.
"""

from __future__ import annotations

import math
from typing import Any

from pydantic import BaseModel, ConfigDict, NonNegativeInt

from evo_nas.config.errors import ConfigError
from evo_nas.config.schema import SearchConfig
from evo_nas.search.evolution import deap_random, genotype_of, make_individual
from evo_nas.search.parts import Search
from evo_nas.search.state import checked, genotype_data, genotype_from_data
from evo_nas.search.strategy import InFlight, Strategy
from search_spaces import Genotype

#: candidates ranked at the last fit: (prediction, key, genotype), best first
Queue = list[tuple[float, str, Genotype]]
#: a free worker waits for results in flight before its next cell can be chosen
_WAIT = object()


class _State(BaseModel):
    model_config = ConfigDict(extra="forbid")

    queue: list[tuple[float, str, Any]] | None
    since_fit: NonNegativeInt
    since_log: NonNegativeInt
    stale: NonNegativeInt


class SteadyState(Strategy):
    """Asynchronous: a free worker is refilled at once, no step waits for another.

    Its state: the candidates ranked at the last fit (``queue``, None before the first fit),
    the results since the last fit and since the last logbook row, and the refills in a row
    that found no new cell (``stale``).
    """

    replays_steps = False

    def __init__(self, search: Search) -> None:
        super().__init__(search)
        self.queue: Queue | None = None
        self.since_fit = 0
        self.since_log = 0
        self.stale = 0

    @classmethod
    def check_config(cls, cfg: SearchConfig) -> None:
        if cfg.search.algorithm == "mu_plus_lambda":
            raise ConfigError(
                "search.algorithm: strategy steady_state works with regularized or random "
                "search, not mu_plus_lambda (a generational algorithm)"
            )
        if cfg.surrogate is not None and cfg.surrogate_loop.warmup_candidates:
            raise ConfigError(
                "surrogate_loop.warmup_candidates: the steady_state strategy warms up on "
                "random cells; set 0 or use strategy generational"
            )

    def state_dict(self) -> dict[str, Any]:
        space = self.search.space
        queue = None
        if self.queue is not None:
            queue = [[p, k, genotype_data(space, g)] for p, k, g in self.queue]
        return {
            "queue": queue,
            "since_fit": self.since_fit,
            "since_log": self.since_log,
            "stale": self.stale,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        s = checked(_State, state)
        space = self.search.space
        self.queue = None
        if s.queue is not None:
            self.queue = [
                (p, k, genotype_from_data(space, g, f"queue[{i}]"))
                for i, (p, k, g) in enumerate(s.queue)
            ]
        self.since_fit, self.since_log, self.stale = s.since_fit, s.since_log, s.stale

    def run(self, workers: int, resumed: InFlight | None) -> None:
        search = self.search
        st, cfg, cache = search.state, search.cfg, search.cache
        if resumed is None:  # a fresh run: its first checkpoint has a state
            self.snapshot()
        for meta in (resumed or {}).values():
            g = search.space.from_json(meta["genotype"])
            cache.submit(g, meta["phase"], meta["round"], meta["predicted"])

        while not st.done:
            self._refill(workers)
            if not cache.in_flight:
                if cache.exhausted() or self.stale >= cfg.search.max_stale_generations:
                    if not search.check_done(self.stale):
                        st.reason = "no unseen candidate left"
                continue
            finished = cache.finished()
            for key, result in finished:
                self._absorb({**cache.in_flight[key], "key": key, "result": result})
            if finished:
                # free workers first, bookkeeping after: the records' checkpoints then hold the
                # new cells as in flight, so a killed driver re-queues them
                self._refill(workers, len(finished))
            new = [cache.record(key, result) for key, result in finished]
            if search.with_surrogate and self.since_fit >= cfg.surrogate_loop.promote:
                self._refresh_candidates()  # refit on the new results, re-rank the candidates
                self._refill(workers)
            self.since_log += len(new)
            if self.since_log >= cfg.search.offspring:
                st.generation += 1
                search.log_generation(st.population or [], self.since_log)
                self.since_log = 0
            if new:
                self.snapshot()
        self.snapshot()

    def _refill(self, workers: int, finished: int = 0) -> None:
        """Give free workers new cells; ``finished`` cells are done but not yet recorded.

        A worker is refilled at once: a draw that finds no new cell is counted (``stale``)
        and drawn again, so what a worker gets never depends on when the driver looked."""
        search = self.search
        cache = search.cache
        while len(cache.in_flight) - finished < workers and not cache.exhausted():
            candidate = self._next_candidate()
            if candidate is _WAIT:
                return
            if candidate is None:
                self.stale += 1
                if self.stale >= search.cfg.search.max_stale_generations:
                    return
                continue
            g, phase, pred = candidate
            if not cache.submit(g, phase, search.state.round, pred):
                return
            self.stale = 0

    def _next_candidate(self) -> tuple[Genotype, str, float | None] | None | object:
        """The next cell for a free worker: (genotype, phase, predicted); None when the draw
        found no new cell; ``_WAIT`` when the next choice waits for results in flight."""
        search = self.search
        cfg, cache = search.cfg, search.cache
        if not search.with_surrogate:
            return _without_surrogate(search)
        if len(cache.records) + len(cache.in_flight) < cfg.surrogate_loop.warmup:
            g = _initial_unseen(search)
            return None if g is None else (g, "warmup", None)
        if self.queue is None:
            if any(m["phase"] == "warmup" for m in cache.in_flight.values()):
                return _WAIT  # the first fit waits for the whole warm-up
            self._refresh_candidates()
        assert self.queue is not None
        while self.queue:
            pred, key, g = self.queue.pop(0)
            if not search.fitness.taken(key):
                return g, "promote", pred
        if cfg.surrogate_loop.explore or not cache.in_flight:
            g = _random_unseen(search)
            return None if g is None else (g, "promote", None)
        return _WAIT  # the next candidates come with the next fit

    def _refresh_candidates(self) -> None:
        """Refit the surrogate, evolve on it, and queue the unseen cells it found, best first."""
        _refresh_candidates(self.search)
        seen = sorted(self.search.state.round_seen.items(), key=lambda kv: kv[1][1])
        self.queue = [(p, k, g) for k, (g, p) in seen]
        self.since_fit = 0

    def _absorb(self, record: dict[str, Any]) -> None:
        """A finished evaluation joins the population (the oldest leaves) at once."""
        search = self.search
        st, cfg = search.state, search.cfg
        if search.with_surrogate:
            if record["phase"] == "promote":
                self.since_fit += 1
            return
        if cfg.search.algorithm == "random":
            return
        ind = make_individual(search.space, search.space.from_json(record["genotype"]))
        ind.fitness.values = (record["result"].objective,)
        st.population.append(ind)
        del st.population[: max(0, len(st.population) - cfg.search.population)]


def _random_unseen(search: Search) -> Genotype | None:
    fresh = search.evolver.random_unseen(1, set())
    return genotype_of(fresh[0]) if fresh else None


def _initial_unseen(search: Search) -> Genotype | None:
    for g in search.initial:
        if not search.fitness.taken(search.space.key(g)):
            return g
    return _random_unseen(search)


def _refresh_candidates(search: Search) -> None:
    """Refit the surrogate on the results so far and evolve on it (the round's predictions
    are the candidates)."""
    st, cfg = search.state, search.cfg
    st.round += 1
    search.fitness.fit()
    population = st.population
    if not population:
        ranked = sorted(
            (r for r in search.cache.records if math.isfinite(r["result"].objective)),
            key=lambda r: r["result"].objective,
        )[: cfg.search.population]
        population = [
            make_individual(search.space, search.space.from_json(r["genotype"])) for r in ranked
        ]
        population += search.evolver.random_unseen(
            cfg.search.population - len(population), {i.key for i in population}
        )
    search.set_predicted_population(population)
    for _ in range(cfg.surrogate_loop.generations):
        search.generation()


def _without_surrogate(search: Search) -> tuple[Genotype, str, float | None] | None:
    """The next cell of evolution on the ground truth: a random or initial cell until the
    population is full, then the child of a selected parent (None if it was seen)."""
    st, cfg, cache, evolver = search.state, search.cfg, search.cache, search.evolver
    started = len(cache.records) + len(cache.in_flight)
    if cfg.search.algorithm == "random":
        g = _initial_unseen(search)
        return None if g is None else (g, "evolve", None)
    if started < cfg.search.population or not st.population:
        g = _initial_unseen(search)
        return None if g is None else (g, "warmup", None)
    with deap_random(search.generators.python):
        parent = evolver.toolbox.select_parent(st.population)[0]
    (child,) = evolver.toolbox.mutate(evolver.toolbox.clone(parent))
    if search.fitness.taken(child.key):
        return None
    return genotype_of(child), "evolve", None
