"""Pool mode: search restricted to a fixed set of cells, such as a benchmark table's.

:class:`PoolSpace` wraps any space. ``sample`` draws a member; ``mutate`` moves to a random
one of the ``neighbours`` members nearest to the parent, so evolution on a table takes local
steps and never proposes a cell the table cannot answer. Nearness is the Euclidean distance
between standardised :meth:`SearchSpace.features` vectors (a cheap proxy for graph edit
distance), computed once with numpy in chunks and cached on disk, keyed by the members' keys.
Everything else is delegated to the wrapped space.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from search_spaces.base import CellBatch, Genotype, RecurrentCell, SearchSpace

#: bump when the neighbour computation changes, so old caches are not reused
_CACHE_VERSION = 1
_CHUNK = 1024


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "evo-nas"


class PoolSpace(SearchSpace):
    """The cells of ``members`` (duplicates by key dropped), with nearest-neighbour mutation.

    ``neighbours``: how many nearest members a mutation picks from (the engine re-calls
    ``mutate`` when a child was already evaluated, so a random pick among several keeps
    fresh children coming). ``cache``: keep the neighbour table in ``$XDG_CACHE_HOME/evo-nas``.
    """

    def __init__(
        self,
        base: SearchSpace,
        members: Sequence[Genotype],
        neighbours: int = 20,
        cache: bool = True,
    ) -> None:
        if neighbours < 1:
            raise ValueError(f"neighbours must be at least 1, got {neighbours}")
        self.base = base
        self.name = base.name
        index: dict[str, int] = {}
        kept: list[Genotype] = []
        for g in members:
            k = base.key(g)
            if k not in index:
                index[k] = len(kept)
                kept.append(g)
        if len(kept) < 2:
            raise ValueError(f"a pool needs at least 2 distinct cells, got {len(kept)}")
        self.members = kept
        self._index = index
        self.neighbours = min(int(neighbours), len(kept) - 1)
        features = np.stack([np.asarray(base.features(g), dtype=float) for g in kept])
        self._mean = features.mean(0)
        std = features.std(0)
        self._scale = np.where(std > 0, std, 1.0)
        self._features = (features - self._mean) / self._scale
        self._table = self._load_or_compute(cache)

    # -- neighbours ------------------------------------------------------------------------------
    def _cache_file(self) -> Path:
        h = hashlib.sha1(f"{_CACHE_VERSION}|{self.neighbours}|".encode())
        for k in self._index:
            h.update(k.encode())
            h.update(b"\n")
        h.update(self._features.tobytes())
        return _cache_dir() / f"pool-{h.hexdigest()[:20]}.npy"

    def _load_or_compute(self, cache: bool) -> np.ndarray:
        path = self._cache_file() if cache else None
        if path is not None and path.is_file():
            try:
                table = np.load(path)
                if table.shape == (len(self.members), self.neighbours):
                    return table
            except (OSError, ValueError):
                pass  # a broken cache is recomputed
        table = self._compute()
        if path is not None:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_name(f"{path.stem}.tmp{os.getpid()}.npy")
                np.save(tmp, table)
                os.replace(tmp, path)
            except OSError:
                pass  # an unwritable cache dir only costs time
        return table

    def _compute(self) -> np.ndarray:
        """For each member, the indices of its nearest other members, nearest first."""
        f = self._features
        sq = (f * f).sum(1)
        n, k = len(f), self.neighbours
        table = np.empty((n, k), dtype=np.int32)
        for start in range(0, n, _CHUNK):
            rows = np.arange(start, min(start + _CHUNK, n))
            d = sq[rows, None] + sq[None, :] - 2.0 * f[rows] @ f.T
            d[np.arange(len(rows)), rows] = np.inf  # never a neighbour of itself
            # ties broken by index, so the table does not depend on argpartition's whims
            part = np.argpartition(d, k, axis=1)[:, : k + 1]
            for r, cand in enumerate(part):
                cand = np.union1d(cand, np.flatnonzero(d[r] <= d[r, cand].max()))
                order = np.lexsort((cand, d[r, cand]))
                table[start + r] = cand[order[:k]]
        return table

    def nearest(self, genotype: Genotype) -> int:
        """Index of the member equal to ``genotype``, else of the member nearest to it."""
        i = self._index.get(self.base.key(genotype))
        if i is not None:
            return i
        x = (np.asarray(self.base.features(genotype), dtype=float) - self._mean) / self._scale
        return int(np.argmin(((self._features - x) ** 2).sum(1)))

    def neighbours_of(self, genotype: Genotype) -> list[Genotype]:
        """The nearest other members of a member (or of the member nearest to a non-member)."""
        return [self.members[j] for j in self._table[self.nearest(genotype)]]

    # -- random operators ------------------------------------------------------------------------
    def identity(self) -> tuple[str, list[tuple[str, str]]]:
        """The base space's: a pool changes which motifs are visited, not what they are."""
        return self.base.identity()

    def sample(self, rng: np.random.Generator) -> Genotype:
        return self.members[int(rng.integers(len(self.members)))]

    def mutate(self, genotype: Genotype, rng: np.random.Generator) -> Genotype:
        """A random one of the parent's nearest members; a non-member first maps to its nearest
        member, which is then a candidate too."""
        i = self._index.get(self.base.key(genotype))
        if i is not None:
            candidates = list(self._table[i])
        else:
            i = self.nearest(genotype)
            candidates = [i, *self._table[i]]
        return self.members[int(candidates[int(rng.integers(len(candidates)))])]

    # -- delegated to the wrapped space ----------------------------------------------------------
    def validate(self, obj: Any) -> Genotype:
        return self.base.validate(obj)

    def key(self, genotype: Genotype) -> str:
        return self.base.key(genotype)

    def from_key(self, key: str) -> Genotype:
        return self.base.from_key(key)

    def to_json(self, genotype: Genotype) -> Any:
        return self.base.to_json(genotype)

    def from_json(self, obj: Any) -> Genotype:
        return self.base.from_json(obj)

    def tokens(self, genotype: Genotype) -> list[str]:
        return self.base.tokens(genotype)

    def vocabulary(self) -> list[str]:
        return self.base.vocabulary()

    def from_tokens(self, tokens: Sequence[str]) -> Genotype:
        return self.base.from_tokens(tokens)

    def equivalent_tokens(self, genotype: Genotype) -> list[list[str]]:
        return self.base.equivalent_tokens(genotype)

    def build_cell(self, genotype: Genotype, input_size: int, hidden_size: int) -> RecurrentCell:
        return self.base.build_cell(genotype, input_size, hidden_size)

    def build_cell_batch(
        self,
        genotypes: Sequence[Genotype],
        input_size: int,
        hidden_size: int,
        seed: int | None = None,
    ) -> CellBatch:
        return self.base.build_cell_batch(genotypes, input_size, hidden_size, seed)

    def named(self) -> dict[str, Genotype]:
        return self.base.named()

    def describe(self, genotype: Genotype) -> str:
        return self.base.describe(genotype)

    def graph(self, genotype: Genotype) -> tuple[dict[str, str], list[tuple[str, str]]]:
        return self.base.graph(genotype)

    def features(self, genotype: Genotype) -> np.ndarray:
        return self.base.features(genotype)

    def descriptors(self, genotype: Genotype) -> dict[str, float]:
        return self.base.descriptors(genotype)

    def __getattr__(self, name: str) -> Any:
        # space-specific extras (e.g. darts_rnn's output_nodes) reach the wrapped space
        if name == "base":
            raise AttributeError(name)
        return getattr(self.base, name)
