"""What a surrogate is: a cheap predictor whose values only need to be ordered.

A surrogate has scikit-learn's estimator shape: constructor arguments are its config,
``fit`` learns, ``predict`` returns rank-comparable values (lower = predicted better).
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from search_spaces import Genotype, SearchSpace

#: a callback receiving progress events (``{"event": ..., ...}``) during long work
Progress = Callable[[dict[str, Any]], None]


@dataclass(frozen=True)
class Capabilities:
    """What a surrogate can do beyond ``fit`` and ``predict``: the one place the engine
    reads it from.

    ``ranks_unfitted``: ``predict`` ranks cells meaningfully before any ``fit`` (a zero-shot
    surrogate such as the Petri dish, whose warm-up can then pick cells by prediction).
    ``spread``: ``predict_with_std`` gives a spread per prediction once fitted (``promote_by:
    lcb`` uses it). ``generates``: ``generate(seeds, n, rng)`` proposes new candidates (NAO's
    generator, ``search.generator: nao``). ``progress``: long work calls ``self.progress``
    with events the run shows.
    """

    ranks_unfitted: bool = False
    spread: bool = False
    generates: bool = False
    progress: bool = False


class Surrogate(abc.ABC):
    """A cheap, rank-comparable predictor of the objective."""

    capabilities: ClassVar[Capabilities] = Capabilities()

    def __init__(self, space: SearchSpace, seed: int = 0) -> None:
        self.space = space
        self.seed = seed
        #: where long work reports progress (with ``capabilities.progress``; set by the run)
        self.progress: Progress | None = None

    @abc.abstractmethod
    def fit(self, genotypes: Sequence[Genotype], objectives: Sequence[float]) -> Surrogate:
        """Learn from ground-truth results; ``inf`` marks a diverged or failed cell."""

    @abc.abstractmethod
    def predict(self, genotypes: Sequence[Genotype]) -> np.ndarray:
        """Predicted objectives (only their order matters; lower = better)."""

    def predict_with_std(self, genotypes: Sequence[Genotype]) -> tuple[np.ndarray, np.ndarray]:
        """Predictions and their spread where the surrogate knows one (nan elsewhere)."""
        pred = np.asarray(self.predict(genotypes), dtype=float)
        return pred, np.full(len(pred), np.nan)

    def generate(
        self, seeds: Sequence[Genotype], n: int, rng: np.random.Generator
    ) -> tuple[list[Genotype], dict[str, Any]]:
        """Up to ``n`` new candidates near ``seeds`` and statistics of how they were made
        (with ``capabilities.generates``)."""
        raise NotImplementedError(f"{type(self).__name__} does not generate candidates")

    @abc.abstractmethod
    def state_dict(self) -> dict[str, Any]:
        """Everything learned, as data: dicts with string keys, lists (tuples come back as
        lists), str, int, float, bool, None and numpy arrays, but no tensors or objects, so
        that the run checkpoint stores it without pickle (:mod:`evo_nas_common.statefile`)."""

    @abc.abstractmethod
    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""


def finite_targets(objectives: Sequence[float]) -> np.ndarray:
    """Objectives with ``inf`` (diverged/failed) clipped to the worst finite value.

    With no finite value at all every target is 0, so a surrogate learns "all equal".
    """
    y = np.asarray(objectives, dtype=float)
    finite = np.isfinite(y)
    worst = y[finite].max() if finite.any() else 0.0
    return np.where(finite, y, worst)
