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

from evo_nas.search.evolution import deap_random, genotype_of, make_individual
from evo_nas.search.parts import Search
from evo_nas.search.strategy import InFlight, Strategy
from search_spaces import Genotype


class SteadyState(Strategy):
    """Asynchronous: a free worker is refilled at once, no step waits for another."""

    replays_steps = False

    def run(self, workers: int, resumed: InFlight | None) -> None:
        search = self.search
        st, cfg, cache = search.state, search.cfg, search.cache
        if resumed is None:  # a fresh run: its first checkpoint has a state
            search.snapshot()
        for meta in (resumed or {}).values():
            g = search.space.from_json(meta["genotype"])
            cache.submit(g, meta["phase"], meta["round"], meta["predicted"])
        stale = 0

        def refill(finished: int = 0) -> None:
            """Give free workers new cells; ``finished`` cells are done but not yet recorded."""
            nonlocal stale
            while len(cache.in_flight) - finished < workers and not cache.exhausted():
                candidate = _next_candidate(search)
                if candidate is None:
                    stale += 1
                    return
                g, phase, pred = candidate
                if cache.submit(g, phase, st.round, pred):
                    stale = 0

        while st.phase != "done":
            refill()
            if not cache.in_flight:
                if cache.exhausted() or stale >= cfg.search.max_stale_generations:
                    search.check_done()
                    if st.phase != "done":
                        st.reason = "no unseen candidate left"
                        st.phase = "done"
                continue
            finished = cache.finished()
            for key, result in finished:
                _absorb(search, {**cache.in_flight[key], "key": key, "result": result})
            if finished:
                # free workers first, bookkeeping after: the records' checkpoints then hold the
                # new cells as in flight, so a killed driver re-queues them
                refill(len(finished))
            new = [cache.record(key, result) for key, result in finished]
            if search.with_surrogate and st.since_fit >= cfg.surrogate_loop.promote:
                _refresh_candidates(search)  # refit on the new results, re-rank the candidates
                refill()
            st.since_log += len(new)
            if st.since_log >= cfg.search.offspring:
                st.generation += 1
                search.log_generation(st.population or [], st.since_log)
                st.since_log = 0
            if new:
                search.snapshot()
        search.snapshot()


def _random_unseen(search: Search) -> Genotype | None:
    fresh = search.evolver.random_unseen(1, set())
    return genotype_of(fresh[0]) if fresh else None


def _initial_unseen(search: Search) -> Genotype | None:
    for g in search.initial:
        if not search.fitness.taken(search.space.key(g)):
            return g
    return _random_unseen(search)


def _refresh_candidates(search: Search) -> None:
    """Refit the surrogate, evolve on it, and rank the unseen cells it found."""
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
    st.queue = [(p, k, g) for k, (g, p) in sorted(st.round_seen.items(), key=lambda kv: kv[1][1])]
    st.since_fit = 0


def _next_candidate(search: Search) -> tuple[Genotype, str, float | None] | None:
    """The next cell for a free worker: (genotype, phase, predicted), or None for now."""
    st, cfg, cache, evolver = search.state, search.cfg, search.cache, search.evolver
    started = len(cache.records) + len(cache.in_flight)
    if not search.with_surrogate:
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
    if started < cfg.surrogate_loop.warmup:
        g = _initial_unseen(search)
        return None if g is None else (g, "warmup", None)
    if st.queue is None:
        if any(m["phase"] == "warmup" for m in cache.in_flight.values()):
            return None  # the first fit waits for the whole warm-up
        _refresh_candidates(search)
    assert st.queue is not None
    while st.queue:
        pred, key, g = st.queue.pop(0)
        if not search.fitness.taken(key):
            return g, "promote", pred
    if cfg.surrogate_loop.explore or not cache.in_flight:
        g = _random_unseen(search)
        return None if g is None else (g, "promote", None)
    return None


def _absorb(search: Search, record: dict[str, Any]) -> None:
    """A finished evaluation joins the population (the oldest leaves) at once."""
    st, cfg = search.state, search.cfg
    if search.with_surrogate:
        if record["phase"] == "promote":
            st.since_fit += 1
        return
    if cfg.search.algorithm == "random":
        return
    ind = make_individual(search.space, search.space.from_json(record["genotype"]))
    ind.fitness.values = (record["result"].objective,)
    st.population.append(ind)
    del st.population[: max(0, len(st.population) - cfg.search.population)]
