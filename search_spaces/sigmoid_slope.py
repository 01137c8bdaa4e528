"""The Synthetic Petri Dish paper's motivating motif: the slope c of ``sigmoid(c * z)``.

A genotype is one slope in ``[low, high]``, rounded to ``decimals`` places (so the genotype
is its own canonical key). As an activation it is hosted by MLPs (the paper's digit
classifier and its MLP dish); as a recurrent cell it is an Elman cell
``h_t = sigmoid(c * (W x_t + U h_{t-1} + b))``, so the slope also runs in the PTB model.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from search_spaces.base import GenotypeError, RecurrentCell, SearchSpace


class SlopeSigmoid(nn.Module):
    """``sigmoid(c * z)`` for one slope, or for M slopes applied to ``z[m]`` of ``[M, ...]``."""

    def __init__(self, slopes: float | Sequence[float]) -> None:
        super().__init__()
        self.register_buffer("slopes", torch.as_tensor(slopes, dtype=torch.float32))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        c = self.slopes.to(z.dtype)
        if c.dim():
            c = c.view(-1, *([1] * (z.dim() - 1)))
        return torch.sigmoid(c * z)


class SlopeRNNCell(RecurrentCell):
    """An Elman cell whose non-linearity is the motif: ``sigmoid(c * (W x + U h + b))``."""

    def __init__(self, input_size: int, hidden_size: int, slope: float) -> None:
        super().__init__(input_size, hidden_size)
        self.inp = nn.Linear(input_size, hidden_size)
        self.rec = nn.Linear(hidden_size, hidden_size, bias=False)
        self.act = SlopeSigmoid(slope)

    def forward(
        self,
        inputs: torch.Tensor,
        state: tuple[torch.Tensor, ...],
        state_mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        (h,) = state
        projected = self.inp(inputs)  # all steps at once; only the recurrence is sequential
        outputs = []
        for t in range(inputs.size(0)):
            h_in = h if state_mask is None else h * state_mask
            h = self.act(projected[t] + self.rec(h_in))
            outputs.append(h)
        return torch.stack(outputs), (h,)


class SigmoidSlopeSpace(SearchSpace):
    """Slopes ``c`` in ``[low, high]``; mutation is a Gaussian step of ``step``, clipped.

    ``tokens`` quantise the range into ``token_bins`` equal bins (for sequence encoders).
    """

    name = "sigmoid_slope"
    motif = "activation"

    def __init__(
        self,
        low: float = 0.01,
        high: float = 2.01,
        step: float = 0.1,
        decimals: int = 4,
        token_bins: int = 40,
    ) -> None:
        if not (math.isfinite(low) and math.isfinite(high) and low < high):
            raise GenotypeError(f"need finite low < high, got low={low}, high={high}")
        if not step > 0 or decimals < 0 or token_bins < 1:
            raise GenotypeError("need step > 0, decimals >= 0 and token_bins >= 1")
        if round(high - low, decimals) <= 0:
            raise GenotypeError(f"decimals={decimals} leaves no room in [{low}, {high}]")
        self.low, self.high = float(low), float(high)
        self.step, self.decimals, self.token_bins = float(step), int(decimals), int(token_bins)

    def _round(self, c: float) -> float:
        return round(min(max(float(c), self.low), self.high), self.decimals)

    def sample(self, rng: np.random.Generator) -> float:
        return self._round(rng.uniform(self.low, self.high))

    def mutate(self, genotype: Any, rng: np.random.Generator) -> float:
        for _ in range(100):
            child = self._round(genotype + rng.normal(0.0, self.step))
            if child != genotype:
                return child
        # pinned at a bound by clipping: take the smallest step inwards
        unit = 10.0**-self.decimals
        return self._round(genotype + (unit if genotype < self.high else -unit))

    def validate(self, obj: Any) -> float:
        if isinstance(obj, bool) or not isinstance(obj, (int, float, str)):
            raise GenotypeError(f"a slope is a number, got {type(obj).__name__} {obj!r}")
        try:
            c = float(obj)
        except ValueError:
            raise GenotypeError(f"a slope is a number, got '{obj}'") from None
        if not math.isfinite(c) or not self.low <= c <= self.high:
            raise GenotypeError(f"slope {obj} is outside [{self.low}, {self.high}]")
        return self._round(c)

    def key(self, genotype: Any) -> str:
        return f"{genotype:.{self.decimals}f}"

    def to_json(self, genotype: Any) -> float:
        return float(genotype)

    def _bin(self, c: float) -> int:
        width = (self.high - self.low) / self.token_bins
        return min(int((c - self.low) / width), self.token_bins - 1)

    def tokens(self, genotype: Any) -> list[str]:
        return [f"slope{self._bin(genotype)}"]

    def vocabulary(self) -> list[str]:
        return [f"slope{i}" for i in range(self.token_bins)]

    def from_tokens(self, tokens: Sequence[str]) -> float:
        vocab = self.vocabulary()
        if len(tokens) != 1 or tokens[0] not in vocab:
            raise GenotypeError(f"expected one token of slope0..slope{self.token_bins - 1}")
        width = (self.high - self.low) / self.token_bins
        return self._round(self.low + (vocab.index(tokens[0]) + 0.5) * width)

    def build_cell(self, genotype: Any, input_size: int, hidden_size: int) -> SlopeRNNCell:
        return SlopeRNNCell(input_size, hidden_size, float(genotype))

    def build_activation(self, genotype: Any) -> SlopeSigmoid:
        return SlopeSigmoid(float(genotype))

    def build_activation_batch(self, genotypes: Sequence[Any]) -> SlopeSigmoid:
        return SlopeSigmoid([float(g) for g in genotypes])

    def grid(self, points: int) -> list[float]:
        if points < 2:
            raise ValueError(f"a grid needs at least 2 points, got {points}")
        return [self._round(c) for c in np.linspace(self.low, self.high, points)]

    def features(self, genotype: Any) -> np.ndarray:
        return np.array([float(genotype)])

    def describe(self, genotype: Any) -> str:
        return f"sigmoid({genotype:g} * z)"
