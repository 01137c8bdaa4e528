"""A tiny variable-length search space for tests: a chain of 1..``max_len`` ops.

Token sequences differ in length across genotypes and the cell's parameter count grows with
the number of ``lin`` ops, which darts_rnn (fixed length, fixed size) cannot exercise.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from search_spaces import GenotypeError, RecurrentCell, SearchSpace

OPS = ("lin", "tanh", "relu")


class ChainCell(RecurrentCell):
    """h_t = ops(tanh(W [x_t, h_{t-1}])), one extra square matrix per ``lin`` op."""

    def __init__(self, ops: tuple[str, ...], input_size: int, hidden_size: int) -> None:
        super().__init__(input_size, hidden_size)
        self.ops = ops
        self.w_in = nn.Linear(input_size + hidden_size, hidden_size)
        self.lins = nn.ModuleList(nn.Linear(hidden_size, hidden_size) for o in ops if o == "lin")

    def forward(self, inputs, state, state_mask=None):  # noqa: ANN001, ANN201
        (h,) = state
        outputs = []
        for x in inputs:
            h_in = h * state_mask if state_mask is not None else h
            h = torch.tanh(self.w_in(torch.cat([x, h_in], dim=-1)))
            lins = iter(self.lins)
            for op in self.ops:
                h = next(lins)(h) if op == "lin" else getattr(torch, op)(h)
            outputs.append(h)
        return torch.stack(outputs), (h,)


class ChainSpace(SearchSpace):
    """Genotypes are tuples of 1..max_len ops; tokens are the ops themselves."""

    name = "chain"

    def __init__(self, max_len: int = 5) -> None:
        self.max_len = max_len

    def sample(self, rng: np.random.Generator) -> tuple[str, ...]:
        n = int(rng.integers(1, self.max_len + 1))
        return tuple(OPS[int(i)] for i in rng.integers(len(OPS), size=n))

    def mutate(self, genotype: tuple[str, ...], rng: np.random.Generator) -> tuple[str, ...]:
        i = int(rng.integers(len(genotype)))
        others = [o for o in OPS if o != genotype[i]]
        return genotype[:i] + (others[int(rng.integers(len(others)))],) + genotype[i + 1 :]

    def validate(self, obj: Any) -> tuple[str, ...]:
        if not isinstance(obj, (list, tuple)) or not 1 <= len(obj) <= self.max_len:
            raise GenotypeError(f"expected a list of 1..{self.max_len} ops, got {obj!r}")
        bad = [o for o in obj if o not in OPS]
        if bad:
            raise GenotypeError(f"unknown op(s) {bad}")
        return tuple(obj)

    def key(self, genotype: tuple[str, ...]) -> str:
        return "-".join(genotype)

    def to_json(self, genotype: tuple[str, ...]) -> list[str]:
        return list(genotype)

    def tokens(self, genotype: tuple[str, ...]) -> list[str]:
        return list(genotype)

    def vocabulary(self) -> list[str]:
        return list(OPS)

    def from_tokens(self, tokens: Sequence[str]) -> tuple[str, ...]:
        return self.validate(list(tokens))

    def build_cell(self, genotype: tuple[str, ...], input_size: int, hidden_size: int) -> ChainCell:
        return ChainCell(genotype, input_size, hidden_size)
