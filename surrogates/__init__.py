"""Cheap predictors of the objective, and the registry that names them.

Third-party packages add entries through the entry-point group ``evo_nas.surrogates``, or at
run time with ``SURROGATES.register``. A factory is called as ``factory(space=..., seed=...,
**options)``.
"""

from __future__ import annotations

from evo_nas_common.registry import Registry
from surrogates.base import Surrogate, finite_targets

SURROGATES = Registry(
    "surrogate",
    "evo_nas.surrogates",
    {
        "random": "surrogates.random_surrogate:RandomSurrogate",
        "nao": "surrogates.nao:NAOSurrogate",
        "params": "surrogates.baselines:ParamsSurrogate",
        "forest": "surrogates.baselines:ForestSurrogate",
        "spd": "surrogates.spd:PetriDishSurrogate",
    },
)

__all__ = ["SURROGATES", "Surrogate", "finite_targets"]
