"""How a search spends its ground-truth budget: the interface of ``search.strategy``.

``generational`` (:mod:`evo_nas.search.generational`) advances in whole steps (a warm-up, a
generation, a promotion) and a resumed run replays the step it was in; ``steady_state``
(:mod:`evo_nas.search.steady_state`) keeps every worker busy and a resumed run submits again the
cells that were in flight.
"""

from __future__ import annotations

import abc
from typing import Any, ClassVar

from evo_nas.search.parts import Search

#: the cells a checkpoint holds in flight: key -> genotype (as JSON), phase, round, predicted
InFlight = dict[str, dict[str, Any]]


class Strategy(abc.ABC):
    """Drives a :class:`~evo_nas.search.parts.Search` until its state is done."""

    #: whether a resumed run replays its interrupted step; choices inside a step then look
    #: only at results from before it (:class:`~evo_nas.search.fitness.Fitness`)
    replays_steps: ClassVar[bool]

    def __init__(self, search: Search) -> None:
        self.search = search

    @abc.abstractmethod
    def run(self, workers: int, resumed: InFlight | None) -> None:
        """Search with ``workers`` evaluations at once until a budget is spent; ``resumed``
        is, for a run resumed from a checkpoint, the cells that were in flight then."""
