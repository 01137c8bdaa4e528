"""Genotype encodings and their registry.

Third-party packages add spaces through the entry-point group ``evo_nas.search_spaces``
(``name = package.module:SpaceClass``) or at run time with ``SPACES.register(name, cls)``.
"""

from __future__ import annotations

from typing import Any

from evo_nas_common.registry import Registry
from search_spaces.base import (
    Genotype,
    GenotypeError,
    RecurrentCell,
    SearchSpace,
    seeded_generator,
)

SPACES = Registry(
    "search space",
    "evo_nas.search_spaces",
    {
        "darts_rnn": "search_spaces.darts_rnn:DartsRNNSpace",
        "nasbench_nlp": "search_spaces.nasbench_nlp:NasBenchNLPSpace",
        "sigmoid_slope": "search_spaces.sigmoid_slope:SigmoidSlopeSpace",
    },
)


def get_space(name: str, **options: Any) -> SearchSpace:
    """Instantiate the registered space ``name`` with its options."""
    return SPACES.create(name, **options)


__all__ = [
    "SPACES",
    "Genotype",
    "GenotypeError",
    "RecurrentCell",
    "SearchSpace",
    "get_space",
    "seeded_generator",
]
