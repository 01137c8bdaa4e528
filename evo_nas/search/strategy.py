"""How a search spends its ground-truth budget: the interface of ``search.strategy``.

A strategy drives a :class:`~evo_nas.search.parts.Search` and owns its own state: its
counters are what :meth:`Strategy.state_dict` returns, and the checkpoint stores them without
looking inside. ``generational`` (:mod:`evo_nas.search.generational`) advances in whole steps
and a resumed run replays the step it was in; ``steady_state``
(:mod:`evo_nas.search.steady_state`) keeps every worker busy and a resumed run submits again
the cells that were in flight. A new strategy is one module plus a line in
:data:`STRATEGIES` (or ``STRATEGIES.register`` at run time).
"""

from __future__ import annotations

import abc
from typing import Any, ClassVar

from evo_nas.config.schema import SearchConfig
from evo_nas.search.parts import Search
from evo_nas_common.registry import Registry

#: the cells a checkpoint holds in flight: key -> genotype (as JSON), phase, round, predicted
InFlight = dict[str, dict[str, Any]]


class Strategy(abc.ABC):
    """Drives a :class:`~evo_nas.search.parts.Search` until it is done."""

    #: whether a resumed run replays its interrupted step; choices inside a step then look
    #: only at results from before it (:class:`~evo_nas.search.fitness.Fitness`)
    replays_steps: ClassVar[bool]

    def __init__(self, search: Search) -> None:
        self.search = search

    @classmethod
    def check_config(cls, cfg: SearchConfig) -> None:
        """Refuse, with a one-line ``ConfigError``, a config this strategy cannot run
        (every config, unless a strategy says otherwise)."""
        return None

    @abc.abstractmethod
    def run(self, workers: int, resumed: InFlight | None) -> None:
        """Search with ``workers`` evaluations at once until a budget is spent; ``resumed``
        is, for a run resumed from a checkpoint, the cells that were in flight then."""

    @abc.abstractmethod
    def state_dict(self) -> dict[str, Any]:
        """The strategy's own state as data (JSON values and numpy arrays)."""

    @abc.abstractmethod
    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned; a ``ValueError`` names what is wrong."""

    def snapshot(self) -> None:
        """Make the current state the boundary a resume restarts from, and save it."""
        self.search.snapshot(self.state_dict())


STRATEGIES = Registry(
    "strategy",
    "evo_nas.strategies",
    {
        "generational": "evo_nas.search.generational:Generational",
        "steady_state": "evo_nas.search.steady_state:SteadyState",
    },
)
