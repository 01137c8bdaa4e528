"""The Petri dish on NAS-Bench-NLP: bench_predictors.py's protocol plus the ablation ``spd0``.

It runs ``benchmarks/bench_predictors.py`` (one fixed test set of OK cells of the developer
split, training sets of growing size per seed; Kendall tau, Spearman rho, precision at the
top 10 %) after registering, for this process only, the surrogate ``spd0``: ``spd`` with its
synthetic data left unlearned (``meta_steps`` 0), the ablation that shows what the
meta-learning earns. ``--set spd.key=value`` options apply to ``spd`` only; give them to
``spd0`` too (``--set spd0.key=value``) to compare like with like.

    EVO_NAS_DATA=../shared/data python benchmarks/bench_spd_nbnlp.py \\
        --surrogates spd,spd0,forest --sizes 10,25,50,100 --seeds 5 --test-size 1000
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_predictors  # noqa: E402

from surrogates import SURROGATES  # noqa: E402
from surrogates.spd import PetriDishSurrogate  # noqa: E402


@functools.wraps(PetriDishSurrogate.__init__, assigned=("__annotations__",))
def unlearned_dish(**options: Any) -> PetriDishSurrogate:
    """``spd`` without meta-learning (the ablation); its options are ``spd``'s, checked alike."""
    return PetriDishSurrogate(**{**options, "meta_steps": 0})


if __name__ == "__main__":
    SURROGATES.register("spd0", unlearned_dish)
    bench_predictors.main()
