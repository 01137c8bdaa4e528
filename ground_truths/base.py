"""What a ground truth is: real evaluation of genotypes, answered as :class:`Result` records.

A ground truth answers real objectives (lower is better); a diverged or failed evaluation is
a result with objective ``inf``, never an exception.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from search_spaces import Genotype, SearchSpace

Status = Literal["ok", "diverged", "failed"]
STATUSES: tuple[str, ...] = ("ok", "diverged", "failed")


@dataclass(frozen=True)
class Result:
    """One ground-truth evaluation: objective (lower is better), status, cost and metrics."""

    objective: float
    status: Status = "ok"
    cost_s: float = 0.0
    metrics: dict[str, Any] = field(default_factory=dict)
    message: str = ""

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got '{self.status}'")
        if self.status != "ok" or not math.isfinite(self.objective):
            # Anything not finite is a divergence unless it already failed; keep inf.
            object.__setattr__(self, "objective", math.inf)
            if self.status == "ok":
                object.__setattr__(self, "status", "diverged")

    @classmethod
    def failed(cls, message: str, cost_s: float = 0.0) -> Result:
        """A failed evaluation carrying its reason."""
        return cls(math.inf, "failed", cost_s, {}, message)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict (inf written as the string 'inf')."""
        d = asdict(self)
        d["objective"] = self.objective if math.isfinite(self.objective) else "inf"
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Result:
        """Inverse of :meth:`to_dict`."""
        return cls(
            float(d["objective"]),
            d.get("status", "ok"),
            float(d.get("cost_s", 0.0)),
            dict(d.get("metrics", {})),
            d.get("message", ""),
        )


class GroundTruth(abc.ABC):
    """Real evaluation of genotypes (a trainer, a benchmark table)."""

    def __init__(self, space: SearchSpace) -> None:
        self.space = space
        self.workdir: Path | None = None
        #: where a long evaluation reports progress when it runs in the run's own process
        #: (set by the run; a ground truth that reports nothing ignores it)
        self.progress: Callable[[dict[str, Any]], None] | None = None

    def attach(self, workdir: Path) -> None:
        """Give the ground truth a folder of the run for its caches and checkpoints."""
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)

    @abc.abstractmethod
    def evaluate_one(self, genotype: Genotype) -> Result:
        """Evaluate one genotype; must not raise for a bad cell (return a failed Result)."""

    def evaluate(self, genotypes: Sequence[Genotype]) -> list[Result]:
        """Evaluate several genotypes (in order)."""
        return [self.evaluate_one(g) for g in genotypes]

    def genotypes(self) -> list[Genotype]:
        """Every genotype this ground truth can answer, for ground truths that are tables."""
        raise NotImplementedError(f"{type(self).__name__} cannot list its genotypes")
