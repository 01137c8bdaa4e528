"""Real evaluations of genotypes (trainers, benchmark tables) and the registry that names them.

Third-party packages add entries through the entry-point group ``evo_nas.ground_truths``, or
at run time with ``GROUND_TRUTHS.register``. A factory is called as ``factory(space=...,
**options)``.
"""

from __future__ import annotations

from evo_nas_common.registry import Registry
from ground_truths.base import GroundTruth, Result

GROUND_TRUTHS = Registry(
    "ground truth",
    "evo_nas.ground_truths",
    {
        "table": "ground_truths.table:TableGroundTruth",
        "nasbench_nlp": "ground_truths.nasbench_nlp_logs:NasBenchNLPGroundTruth",
        "ptb_trainer": "ground_truths.ptb_trainer:PTBTrainer",
        "mlp_classifier": "ground_truths.mlp_classifier:MLPClassifierGroundTruth",
    },
)

__all__ = ["GROUND_TRUTHS", "GroundTruth", "Result"]
