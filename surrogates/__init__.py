"""Everything that scores genotypes, and the registries that name them.

Third-party packages add entries through the entry-point groups ``evo_nas.surrogates`` and
``evo_nas.ground_truths``, or at run time with ``SURROGATES.register`` /
``GROUND_TRUTHS.register``. A surrogate factory is called as ``factory(space=..., seed=...,
**options)``; a ground-truth factory as ``factory(space=..., **options)``.
"""

from __future__ import annotations

from common.registry import Registry
from surrogates.base import GroundTruth, Result, Surrogate, finite_targets

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
GROUND_TRUTHS = Registry(
    "ground truth",
    "evo_nas.ground_truths",
    {
        "table": "surrogates.table:TableGroundTruth",
        "nasbench_nlp": "surrogates.nasbench_nlp:NasBenchNLPGroundTruth",
        "ptb_trainer": "surrogates.ptb_trainer:PTBTrainer",
        "mlp_classifier": "surrogates.mlp_classifier:MLPClassifierGroundTruth",
    },
)

__all__ = ["GROUND_TRUTHS", "SURROGATES", "GroundTruth", "Result", "Surrogate", "finite_targets"]
