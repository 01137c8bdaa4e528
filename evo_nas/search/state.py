"""What a search is at a step boundary: its typed state and its random generators.

A checkpoint stores both at the start of every step (:mod:`evo_nas.search.checkpointer`), the
state as data (:meth:`SearchState.to_data`); a resumed run restores them and continues exactly
as the uninterrupted run would.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, TypeVar

import numpy as np
import torch
from deap import tools
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from evo_nas.config.errors import first_line
from evo_nas.search.evolution import genotype_of, make_individual, same_key
from evo_nas_common.bounds import first_error
from search_spaces import Genotype, SearchSpace

_M = TypeVar("_M", bound=BaseModel)

#: cells the hall of fame keeps (the best ground-truth results of the run)
HALL_OF_FAME_SIZE = 10


def hall_of_fame() -> tools.HallOfFame:
    """An empty hall of fame; two individuals are the same cell when their keys agree."""
    return tools.HallOfFame(HALL_OF_FAME_SIZE, similar=same_key)


@dataclass
class SearchState:
    """What every strategy's search shares, as the strategies advance it and a checkpoint
    stores it (a strategy's own counters are its :meth:`~evo_nas.search.strategy.Strategy.
    state_dict`).

    ``population`` and ``hof`` hold DEAP individuals; ``round_seen`` maps the key of every
    cell predicted in the current round to (genotype, prediction). ``records_at_boundary``,
    ``events_at_boundary`` and ``in_flight`` are the ground-truth results, the lines of
    ``events.jsonl`` and the cells in flight when the current step began (a resumed run
    continues from exactly there); ``reason`` why the search stopped (empty while it runs).
    ``screened`` (every cell the surrogate predicted) and the prediction seconds and new cells
    not yet reported in an event (``unreported_*``) keep the cost figures exact across resumes.
    """

    round: int = 0
    generation: int = 0
    population: list[Any] = field(default_factory=list)
    round_seen: dict[str, tuple[Genotype, float]] = field(default_factory=dict)
    logbook: tools.Logbook = field(default_factory=tools.Logbook)
    hof: tools.HallOfFame = field(default_factory=hall_of_fame)
    reason: str = ""
    records_at_boundary: int = 0
    fitted: bool = False
    events_at_boundary: int | None = None  # None: a checkpoint written before it was kept
    in_flight: dict[str, dict[str, Any]] | None = None
    screened: set[str] = field(default_factory=set)
    unreported_predict_s: float = 0.0
    unreported_screened: int = 0

    @property
    def done(self) -> bool:
        """Whether the search has stopped."""
        return bool(self.reason)

    def to_data(self, space: SearchSpace) -> dict[str, Any]:
        """The state as data (DEAP objects as plain values), for the checkpoint."""
        return {
            "round": self.round,
            "generation": self.generation,
            "population": [individual_data(space, i) for i in self.population],
            "round_seen": {
                k: [genotype_data(space, g), p] for k, (g, p) in self.round_seen.items()
            },
            "logbook": [dict(row) for row in self.logbook],
            "hof": [individual_data(space, i) for i in self.hof],
            "reason": self.reason,
            "records_at_boundary": self.records_at_boundary,
            "fitted": self.fitted,
            "events_at_boundary": self.events_at_boundary,
            "in_flight": None if self.in_flight is None else plain(self.in_flight),
            "screened": sorted(self.screened),
            "unreported_predict_s": self.unreported_predict_s,
            "unreported_screened": self.unreported_screened,
        }

    @classmethod
    def from_data(cls, data: Any, space: SearchSpace) -> SearchState:
        """The state :meth:`to_data` wrote, with DEAP objects rebuilt as they were; a
        ``ValueError`` names what is wrong."""
        d = checked(_StateData, data)
        logbook = tools.Logbook()
        for row in d.logbook:
            logbook.record(**row)
        hof = hall_of_fame()
        hof.items = individuals_from_data(space, d.hof, "hof")
        hof.keys = [ind.fitness for ind in reversed(hof.items)]  # ascending, as insert keeps them
        return cls(
            round=d.round,
            generation=d.generation,
            population=individuals_from_data(space, d.population, "population"),
            round_seen={
                k: (genotype_from_data(space, g, f"round_seen[{k!r}]"), p)
                for k, (g, p) in d.round_seen.items()
            },
            logbook=logbook,
            hof=hof,
            reason=d.reason,
            records_at_boundary=d.records_at_boundary,
            fitted=d.fitted,
            events_at_boundary=d.events_at_boundary,
            in_flight=None if d.in_flight is None else in_flight_from_data(space, d.in_flight),
            screened=set(d.screened),
            unreported_predict_s=d.unreported_predict_s,
            unreported_screened=d.unreported_screened,
        )


# -- state as data ------------------------------------------------------------------------------
class _Data(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Individual(_Data):
    genotype: Any
    fitness: list[float] = Field(max_length=1)


#: the most rounds, generations, results or events a run can have come to (far beyond any
#: budget; a larger number in a checkpoint is damage, and would overflow the derived seeds)
MAX_STEPS = 2**31


class InFlightCell(_Data):
    """A cell in flight: its genotype (as JSON), the phase and round that chose it, and its
    prediction."""

    genotype: Any
    phase: Literal["warmup", "evolve", "promote"]
    round: Annotated[int, Field(ge=0, le=MAX_STEPS)]
    predicted: float | None


class _StateData(_Data):
    round: Annotated[int, Field(ge=0, le=MAX_STEPS)]
    generation: Annotated[int, Field(ge=0, le=MAX_STEPS)]
    population: list[_Individual]
    round_seen: dict[str, tuple[Any, float]]
    logbook: list[dict[str, Any]]
    hof: list[_Individual]
    reason: str
    records_at_boundary: Annotated[int, Field(ge=0, le=MAX_STEPS)]
    fitted: bool
    events_at_boundary: Annotated[int, Field(ge=0, le=MAX_STEPS)] | None = None
    in_flight: dict[str, InFlightCell] | None = None
    screened: list[str] = Field(default_factory=list)
    unreported_predict_s: Annotated[float, Field(ge=0, allow_inf_nan=False)] = 0.0
    unreported_screened: Annotated[int, Field(ge=0, le=MAX_STEPS)] = 0


def checked(model: type[_M], data: Any) -> _M:
    """``data`` validated as ``model``; the first problem as a one-line ``ValueError``."""
    try:
        return model.model_validate(data)
    except ValidationError as err:
        raise ValueError(first_error(err)) from None


def genotype_data(space: SearchSpace, genotype: Genotype) -> Any:
    """A genotype as JSON holds it (tuples as lists, keys as strings)."""
    return plain(space.to_json(genotype))


def genotype_from_data(space: SearchSpace, obj: Any, where: str) -> Genotype:
    """The genotype :func:`genotype_data` wrote; a ``ValueError`` naming ``where``."""
    try:
        return space.from_json(obj)
    except (ValueError, TypeError, KeyError, IndexError, AttributeError) as e:
        raise ValueError(f"{where}: not a {space.name} genotype ({first_line(e)})") from None


def in_flight_from_data(space: SearchSpace, cells: dict[str, InFlightCell]) -> dict[str, Any]:
    """Cells in flight as the cache holds them, each genotype checked against ``space``."""
    for k, m in cells.items():
        genotype_from_data(space, m.genotype, f"in_flight[{k!r}].genotype")
    return {k: m.model_dump() for k, m in cells.items()}


def individual_data(space: SearchSpace, ind: Any) -> dict[str, Any]:
    """A DEAP individual as data: its genotype and fitness values."""
    return {"genotype": genotype_data(space, genotype_of(ind)), "fitness": list(ind.fitness.values)}


def individuals_from_data(space: SearchSpace, items: list[Any], where: str) -> list[Any]:
    """DEAP individuals rebuilt from :func:`individual_data` values."""
    out = []
    for i, item in enumerate(items):
        ind = make_individual(space, genotype_from_data(space, item.genotype, f"{where}[{i}]"))
        if item.fitness:
            ind.fitness.values = tuple(item.fitness)
        out.append(ind)
    return out


def plain(value: Any) -> Any:
    """A JSON-serialisable value as JSON holds it (tuples as lists, keys as strings)."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


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
