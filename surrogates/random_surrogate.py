"""The floor every real surrogate must beat: a fixed random score per cell."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import numpy as np

from search_spaces import Genotype, SearchSpace
from surrogates.base import Capabilities, Surrogate


class RandomSurrogate(Surrogate):
    """Predicts a uniform random value per genotype, fixed by (seed, key).

    The score depends on the canonical key, not on call order, so the same cell always gets
    the same prediction and evolution on it is a random walk with memory, as a floor should be.
    """

    #: a random ranking: the floor needs no ground truth either
    capabilities = Capabilities(ranks_unfitted=True)

    def __init__(self, space: SearchSpace, seed: int = 0) -> None:
        super().__init__(space, seed)

    def fit(self, genotypes: Sequence[Genotype], objectives: Sequence[float]) -> RandomSurrogate:
        return self

    def predict(self, genotypes: Sequence[Genotype]) -> np.ndarray:
        out = np.empty(len(genotypes))
        for i, g in enumerate(genotypes):
            digest = hashlib.blake2b(f"{self.seed}:{self.space.key(g)}".encode(), digest_size=8)
            out[i] = int.from_bytes(digest.digest(), "little") / 2**64
        return out

    def state_dict(self) -> dict[str, Any]:
        return {"seed": self.seed}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.seed = int(state["seed"])
