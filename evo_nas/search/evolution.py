"""Evolution on DEAP types and operators: regularized (aging) evolution and (mu+lambda).

An individual is a one-element list holding a genotype, with its canonical ``key`` and a
minimising fitness. The fitness function is injected (ground truth or surrogate), evaluated
in batches through ``toolbox.map``, the DEAP way of plugging in parallel evaluation.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
from deap import algorithms, base, creator, tools
from deap.tools import selection as deap_selection

from search_spaces import Genotype, SearchSpace

# DEAP's creator registers classes globally: do it once, at import.
if not hasattr(creator, "FitnessMin"):
    creator.create("FitnessMin", base.Fitness, weights=(-1.0,))
if not hasattr(creator, "Individual"):
    creator.create("Individual", list, fitness=creator.FitnessMin, key="")

#: fitness of a batch of genotypes; NaN marks one left unevaluated (budget spent)
BatchFitness = Callable[[list[Genotype]], list[float]]


def make_individual(space: SearchSpace, genotype: Genotype) -> Any:
    """A DEAP individual wrapping ``genotype``."""
    ind = creator.Individual([genotype])
    ind.key = space.key(genotype)
    return ind


def genotype_of(ind: Any) -> Genotype:
    """The genotype an individual holds."""
    return ind[0]


def same_key(a: Any, b: Any) -> bool:
    """Hall-of-fame similarity: two individuals are the same cell when their keys agree."""
    return a.key == b.key


def make_statistics() -> tools.Statistics:
    """Per-generation statistics of the population's fitness (finite values only)."""

    def finite(values: Sequence[float]) -> np.ndarray:
        v = np.asarray(values, dtype=float)
        return v[np.isfinite(v)]

    stats = tools.Statistics(lambda ind: ind.fitness.values[0])
    stats.register("min", lambda v: float(finite(v).min()) if finite(v).size else float("inf"))
    stats.register("median", lambda v: float(np.median(finite(v))) if finite(v).size else None)
    stats.register("nonfinite", lambda v: int(len(v) - finite(v).size))
    return stats


@contextmanager
def deap_random(rng: random.Random):
    """Make DEAP's operators draw from ``rng`` instead of the global ``random`` module.

    DEAP calls the module-level ``random`` functions; other threads in this process (a Dask
    client's event loop, for one) draw from that global generator too, which would make a
    seeded search depend on thread timing. The engine owns the generator it hands here.
    """
    saved = (deap_selection.random, algorithms.random)
    deap_selection.random = algorithms.random = rng
    try:
        yield
    finally:
        deap_selection.random, algorithms.random = saved


class Evolver:
    """A DEAP toolbox bound to a space, a numpy RNG and a batch fitness function.

    ``taken`` answers whether a key may not be proposed again (already evaluated by whatever
    gives fitness); mutation retries until it finds a free key, within ``retries`` attempts.
    """

    def __init__(
        self,
        space: SearchSpace,
        rng: np.random.Generator,
        fitness: BatchFitness,
        taken: Callable[[str], bool],
        sample_size: int,
        retries: int,
        py_rng: random.Random,
    ) -> None:
        self.space = space
        self.rng = rng
        self.py_rng = py_rng
        self.fitness = fitness
        self.taken = taken
        self.retries = retries
        self.toolbox = base.Toolbox()
        self.toolbox.register("mutate", self._mutate)
        self.toolbox.register("map", self._map)
        self.toolbox.register("evaluate", lambda ind: None)  # fitness comes from `map`
        self.toolbox.register("select_parent", tools.selTournament, k=1, tournsize=sample_size)
        self.toolbox.register("select", tools.selBest)

    # -- operators -----------------------------------------------------------------------------
    def _mutate(self, ind: Any) -> tuple[Any]:
        parent = genotype_of(ind)
        child = self.space.mutate(parent, self.rng)
        for _ in range(self.retries - 1):
            if not self.taken(self.space.key(child)):
                break
            child = self.space.mutate(parent, self.rng)
        ind[0] = child
        ind.key = self.space.key(child)
        return (ind,)

    def _map(self, _func: Any, individuals: Sequence[Any]) -> list[tuple[float]]:
        individuals = list(individuals)
        values = self.fitness([genotype_of(ind) for ind in individuals]) if individuals else []
        return [(float(v),) for v in values]

    def assign(self, individuals: Sequence[Any]) -> None:
        """Give fitness to every individual that has none."""
        todo = [ind for ind in individuals if not ind.fitness.valid]
        for ind, fit in zip(todo, self.toolbox.map(self.toolbox.evaluate, todo)):
            ind.fitness.values = fit

    def random_unseen(self, n: int, exclude: set[str]) -> list[Any]:
        """Up to ``n`` random individuals with distinct keys that are not taken nor excluded."""
        out: list[Any] = []
        keys = set(exclude)
        for _ in range(n * self.retries):
            if len(out) == n:
                break
            g = self.space.sample(self.rng)
            k = self.space.key(g)
            if k in keys or self.taken(k):
                continue
            keys.add(k)
            out.append(make_individual(self.space, g))
        return out

    # -- one generation each ---------------------------------------------------------------------
    def regularized_generation(
        self, population: list[Any], n_children: int, capacity: int
    ) -> list[Any]:
        """Real et al.'s aging evolution, ``n_children`` steps at once.

        Each child mutates the best of a random sample (tournament); children join the young
        end of the population and the oldest leave so that at most ``capacity`` remain.
        Returns the children that got a fitness (one may miss out when the budget runs out).
        """
        children = []
        keys: set[str] = set()
        for _ in range(n_children):
            with deap_random(self.py_rng):
                parent = self.toolbox.select_parent(population)[0]
            (child,) = self.toolbox.mutate(self.toolbox.clone(parent))
            del child.fitness.values
            if child.key in keys:
                continue  # twice in one batch: the second would be a free copy
            keys.add(child.key)
            children.append(child)
        self.assign(children)
        kept = [c for c in children if not np.isnan(c.fitness.values[0])]
        population.extend(kept)
        del population[: max(0, len(population) - capacity)]
        return kept

    def mu_plus_lambda_generation(self, population: list[Any], n_children: int) -> list[Any]:
        """One generation of DEAP's own ``eaMuPlusLambda`` (mutation only, no crossover)."""
        before = {id(ind) for ind in population}
        with deap_random(self.py_rng):
            new_pop, _ = algorithms.eaMuPlusLambda(
                population,
                self.toolbox,
                mu=len(population),
                lambda_=n_children,
                cxpb=0.0,
                mutpb=1.0,
                ngen=1,
                verbose=False,
            )
        population[:] = new_pop
        return [ind for ind in new_pop if id(ind) not in before]

    def random_generation(self, n: int, exclude: set[str]) -> list[Any]:
        """Random search: ``n`` fresh samples, with fitness."""
        children = self.random_unseen(n, exclude)
        self.assign(children)
        return [c for c in children if not np.isnan(c.fitness.values[0])]
