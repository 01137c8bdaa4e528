"""Shared inputs of the surrogate tests: distinct sampled cells and a known target."""

from __future__ import annotations

import numpy as np


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
