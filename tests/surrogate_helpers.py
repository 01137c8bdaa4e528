"""Shared inputs of the surrogate tests: sampled cells, known targets, a diverging cell."""

from __future__ import annotations

import numpy as np

from search_spaces import SearchSpace
from search_spaces.base import RecurrentCell
from search_spaces.darts_rnn import DartsRNNSpace
from surrogates.spd import PetriDishSurrogate


def unique_sample(space, n, seed):
    """``n`` sampled genotypes with distinct keys."""
    rng = np.random.default_rng(seed)
    cells = {}
    while len(cells) < n:
        g = space.sample(rng)
        cells.setdefault(space.key(g), g)
    return list(cells.values())


def synthetic(space, g) -> float:
    """A known function of the tokens: relu count plus half the links to node 0, plus 1."""
    toks = space.tokens(g)
    return 1.0 + toks.count("act_relu") + 0.5 * toks.count("in0")


def motifs(space: SearchSpace, n: int, seed: int = 0) -> list:
    """``n`` sampled genotypes (repeats allowed)."""
    rng = np.random.default_rng(seed)
    return [space.sample(rng) for _ in range(n)]


def known_objective(genotypes: list) -> np.ndarray:
    """A ground truth that is a known function of the motif (its activation counts)."""
    return np.array(
        [
            1.0 + sum(a == "identity" for a, _ in g) + 0.5 * sum(a == "sigmoid" for a, _ in g)
            for g in genotypes
        ]
    )


BAD = (("identity", 0), ("tanh", 1), ("relu", 0))


class ExplodingSpace(DartsRNNSpace):
    """darts_rnn in which the cell ``BAD`` outputs inf (it 'diverges' in any dish)."""

    def build_cell(self, genotype, input_size, hidden_size) -> RecurrentCell:
        cell = super().build_cell(genotype, input_size, hidden_size)
        if genotype == BAD:
            forward = cell.forward
            cell.forward = lambda x, s, mask=None: (forward(x, s, mask)[0] * np.inf, s)
        return cell

    build_cell_batch = SearchSpace.build_cell_batch  # the stacked fallback, with build_cell


#: the Petri dish surrogate's own options; the others are the dish kind's
_SURROGATE_OPTIONS = ("feature_cache", "predict_batch", "precision", "device")


def petri_dish(space: SearchSpace, seed: int = 0, **options) -> PetriDishSurrogate:
    """A Petri dish surrogate from options written flat, as the tests write them: ``dish``
    names the kind (default: the space's), the surrogate's own options go to it and every
    other option to the dish kind's options."""
    kind = options.pop("dish", "mlp" if space.motif == "activation" else "rnn")
    own = {k: options.pop(k) for k in _SURROGATE_OPTIONS if k in options}
    return PetriDishSurrogate(space, seed, dish={"kind": kind, **options}, **own)
