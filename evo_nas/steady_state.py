"""Asynchronous steady-state search: every worker busy, each result used as soon as it lands.

Regularized evolution as Real et al. and NNI run it: when an evaluation finishes, the child
joins the population at once and a new child takes the free worker. With a surrogate, free
workers take the next-best predicted candidates, and the surrogate is refitted (and the
candidates re-ranked) after every ``surrogate_loop.promote`` new results. The checkpoint after
each result holds the cells still in flight; a resumed run submits them again.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from evo_nas.evolution import deap_random, genotype_of, make_individual

if TYPE_CHECKING:
    from evo_nas.engine import SearchEngine


def _random_unseen(engine: SearchEngine) -> Any | None:
    fresh = engine.evolver.random_unseen(1, set())
    return genotype_of(fresh[0]) if fresh else None


def _initial_unseen(engine: SearchEngine) -> Any | None:
    for g in engine.initial:
        if not engine._taken(engine.space.key(g)):
            return g
    return _random_unseen(engine)


def _refresh_candidates(engine: SearchEngine) -> None:
    """Refit the surrogate, evolve on it, and rank the unseen cells it found."""
    st, cfg = engine.state, engine.cfg
    st["round"] += 1
    engine._fit_surrogate()
    population = st["population"]
    if not population:
        ranked = sorted(
            (r for r in engine.cache.records if math.isfinite(r["result"].objective)),
            key=lambda r: r["result"].objective,
        )[: cfg.search.population]
        population = [
            make_individual(engine.space, engine.space.from_json(r["genotype"])) for r in ranked
        ]
        population += engine.evolver.random_unseen(
            cfg.search.population - len(population), {i.key for i in population}
        )
    engine._set_predicted_population(population)
    for _ in range(cfg.surrogate_loop.generations):
        engine._generation()
    st["queue"] = [
        (p, k, g) for k, (g, p) in sorted(st["round_seen"].items(), key=lambda kv: kv[1][1])
    ]
    st["since_fit"] = 0


def _next_candidate(engine: SearchEngine) -> tuple[Any, str, float | None] | None:
    """The next cell for a free worker: (genotype, phase, predicted), or None for now."""
    st, cfg, cache = engine.state, engine.cfg, engine.cache
    started = len(cache.records) + len(cache.in_flight)
    if engine.surrogate is None:
        if cfg.search.algorithm == "random":
            g = _initial_unseen(engine)
            return None if g is None else (g, "evolve", None)
        if started < cfg.search.population or not st["population"]:
            g = _initial_unseen(engine)
            return None if g is None else (g, "warmup", None)
        with deap_random(engine.py_rng):
            parent = engine.evolver.toolbox.select_parent(st["population"])[0]
        (child,) = engine.evolver.toolbox.mutate(engine.evolver.toolbox.clone(parent))
        if engine._taken(child.key):
            return None
        return genotype_of(child), "evolve", None
    if started < cfg.surrogate_loop.warmup:
        g = _initial_unseen(engine)
        return None if g is None else (g, "warmup", None)
    if st.get("queue") is None:
        if any(m["phase"] == "warmup" for m in cache.in_flight.values()):
            return None  # the first fit waits for the whole warm-up
        _refresh_candidates(engine)
    while st["queue"]:
        pred, key, g = st["queue"].pop(0)
        if not engine._taken(key):
            return g, "promote", pred
    if cfg.surrogate_loop.explore or not cache.in_flight:
        g = _random_unseen(engine)
        return None if g is None else (g, "promote", None)
    return None


def _absorb(engine: SearchEngine, record: dict[str, Any]) -> None:
    """A finished evaluation joins the population (the oldest leaves) at once."""
    st, cfg = engine.state, engine.cfg
    if engine.surrogate is not None:
        if record["phase"] == "promote":
            st["since_fit"] = st.get("since_fit", 0) + 1
        return
    if cfg.search.algorithm == "random":
        return
    ind = make_individual(engine.space, engine.space.from_json(record["genotype"]))
    ind.fitness.values = (record["result"].objective,)
    st["population"].append(ind)
    del st["population"][: max(0, len(st["population"]) - cfg.search.population)]


def run_steady_state(engine: SearchEngine) -> None:
    """Drive the asynchronous search until the budget is spent and nothing is in flight."""
    st, cfg, cache = engine.state, engine.cfg, engine.cache
    for meta in engine._requeue.values():
        g = engine.space.from_json(meta["genotype"])
        cache.submit(g, meta["phase"], meta["round"], meta["predicted"])
    engine._requeue = {}
    st.setdefault("since_log", 0)
    stale = 0

    def refill(finished: int = 0) -> None:
        """Give free workers new cells; ``finished`` cells are done but not yet recorded."""
        nonlocal stale
        while len(cache.in_flight) - finished < engine.workers and not cache.exhausted():
            candidate = _next_candidate(engine)
            if candidate is None:
                stale += 1
                return
            g, phase, pred = candidate
            if cache.submit(g, phase, st["round"], pred):
                stale = 0

    while st["phase"] != "done":
        refill()
        if not cache.in_flight:
            if cache.exhausted() or stale >= cfg.search.max_stale_generations:
                engine._check_done()
                if st["phase"] != "done":
                    st["reason"] = "no unseen candidate left"
                    st["phase"] = "done"
            continue
        finished = cache.finished()
        for key, result in finished:
            _absorb(engine, {**cache.in_flight[key], "key": key, "result": result})
        if finished:
            # free workers first, bookkeeping after: the records' checkpoints then hold the
            # new cells as in flight, so a killed driver re-queues them
            refill(len(finished))
        new = [cache.record(key, result) for key, result in finished]
        if engine.surrogate is not None and st.get("since_fit", 0) >= cfg.surrogate_loop.promote:
            _refresh_candidates(engine)  # refit on the new results, re-rank the candidates
            refill()
        st["since_log"] += len(new)
        if st["since_log"] >= cfg.search.offspring:
            st["generation"] += 1
            members = st["population"] or []
            engine._log_generation(members, st["since_log"])
            st["since_log"] = 0
        if new:
            engine._snapshot()
    engine._snapshot()
