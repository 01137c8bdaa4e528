"""What a search is at a step boundary: its typed state and its random generators.

A checkpoint stores both at the start of every step (:mod:`evo_nas.checkpointer`); a resumed
run restores them and continues exactly as the uninterrupted run would.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
from deap import tools

from evo_nas.evolution import same_key
from search_spaces import Genotype

Phase = Literal["start", "evolve", "promote", "done"]
#: cells the hall of fame keeps (the best ground-truth results of the run)
HALL_OF_FAME_SIZE = 10


def hall_of_fame() -> tools.HallOfFame:
    """An empty hall of fame; two individuals are the same cell when their keys agree."""
    return tools.HallOfFame(HALL_OF_FAME_SIZE, similar=same_key)


@dataclass
class SearchState:
    """The search's progress, as the strategies advance it and a checkpoint stores it.

    ``population`` and ``hof`` hold DEAP individuals; ``round_seen`` maps the key of every
    cell predicted in the current round to (genotype, prediction). ``records_at_boundary`` is
    the number of ground-truth results when the current step began.
    """

    phase: Phase = "start"
    round: int = 0
    generation: int = 0
    gen_in_round: int = 0
    population: list[Any] = field(default_factory=list)
    round_seen: dict[str, tuple[Genotype, float]] = field(default_factory=dict)
    logbook: tools.Logbook = field(default_factory=tools.Logbook)
    hof: tools.HallOfFame = field(default_factory=hall_of_fame)
    stale: int = 0
    reason: str = ""
    records_at_boundary: int = 0
    fitted: bool = False
    # the steady-state strategy's: candidates ranked at the last fit (None before the first
    # fit), and results since the last fit and since the last logbook row
    queue: list[tuple[float, str, Genotype]] | None = None
    since_fit: int = 0
    since_log: int = 0


@dataclass
class RngStates:
    """The run's three generators' states: python's ``random``, numpy's, torch's CPU one."""

    python: tuple[Any, ...]
    numpy: dict[str, Any]
    torch: torch.Tensor


class Generators:
    """The run's random generators, all seeded from the config's seed.

    DEAP's operators draw from ``python``, the space's sampling and mutation from ``numpy``;
    the global torch generator is seeded too (and saved with the others).
    """

    def __init__(self, seed: int) -> None:
        self.numpy = np.random.default_rng(seed)
        self.python = random.Random(seed)
        torch.manual_seed(seed)

    def states(self) -> RngStates:
        """The three states now."""
        return RngStates(
            self.python.getstate(), self.numpy.bit_generator.state, torch.get_rng_state()
        )

    def restore(self, saved: RngStates) -> None:
        """Put the three generators back where ``saved`` found them."""
        self.python.setstate(saved.python)
        self.numpy.bit_generator.state = saved.numpy
        torch.set_rng_state(saved.torch)
