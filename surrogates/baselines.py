"""Cheap structure-only baselines: the cell's parameter count and a tree ensemble on tokens.

Both read a genotype only through its space (``build_cell``, ``tokens``, ``vocabulary``), so
they serve every registered space. Diverged or failed cells (objective ``inf``) are clipped
to the worst finite training value (:func:`surrogates.base.finite_targets`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import scipy.stats
from sklearn.ensemble import GradientBoostingRegressor, RandomForestRegressor

from search_spaces import Genotype, SearchSpace
from surrogates.base import Capabilities, Surrogate, finite_targets

#: the largest reference size of the parameter count (a cell of size n holds about n**2
#: weights per node: 4,096 is already far past any trained model's width)
MAX_REF_SIZE = 4096


class ParamsSurrogate(Surrogate):
    """Predicts by the parameter count of ``space.build_cell(g, ref_size, ref_size)``.

    ``fit`` learns one thing: the sign of the Spearman correlation between parameter count
    and objective on the training set, i.e. whether more parameters predicts better or worse.
    Unfitted, or with no correlation, more parameters is predicted better.
    """

    #: more parameters predicted better until fitted
    capabilities = Capabilities(ranks_unfitted=True)

    def __init__(self, space: SearchSpace, seed: int = 0, ref_size: int = 32) -> None:
        super().__init__(space, seed)
        if not 1 <= ref_size <= MAX_REF_SIZE:
            raise ValueError(f"ref_size must be in 1..{MAX_REF_SIZE}, got {ref_size}")
        self.ref_size = ref_size
        self.sign_ = -1.0
        self._counts: dict[str, int] = {}

    def count(self, genotype: Genotype) -> int:
        """Trainable parameters of the cell at the reference size (cached per key)."""
        key = self.space.key(genotype)
        if key not in self._counts:
            cell = self.space.build_cell(genotype, self.ref_size, self.ref_size)
            self._counts[key] = sum(p.numel() for p in cell.parameters() if p.requires_grad)
        return self._counts[key]

    def fit(self, genotypes: Sequence[Genotype], objectives: Sequence[float]) -> ParamsSurrogate:
        if len(genotypes) != len(objectives):
            raise ValueError(f"{len(genotypes)} genotypes but {len(objectives)} objectives")
        counts = [self.count(g) for g in genotypes]
        y = finite_targets(objectives)
        rho = np.nan
        if len(set(counts)) > 1 and len(set(y.tolist())) > 1:
            rho = scipy.stats.spearmanr(counts, y).statistic
        self.sign_ = 1.0 if np.isfinite(rho) and rho > 0 else -1.0
        return self

    def predict(self, genotypes: Sequence[Genotype]) -> np.ndarray:
        return self.sign_ * np.array([self.count(g) for g in genotypes], dtype=float)

    def state_dict(self) -> dict[str, Any]:
        return {"seed": self.seed, "ref_size": self.ref_size, "sign": self.sign_}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state["ref_size"] != self.ref_size:
            raise ValueError(f"state has ref_size {state['ref_size']}, this one {self.ref_size}")
        self.seed = int(state["seed"])
        self.sign_ = float(state["sign"])


class ForestSurrogate(Surrogate):
    """A scikit-learn tree ensemble on a fixed-length encoding of the token sequence.

    Features: one-hot of the token at each position, padded (all zeros) to the longest
    sequence seen in ``fit`` (longer sequences at predict time are cut), plus the count of
    every vocabulary token. ``model`` picks RandomForestRegressor or GradientBoostingRegressor.
    """

    def __init__(
        self,
        space: SearchSpace,
        seed: int = 0,
        model: Literal["random_forest", "gradient_boosting"] = "random_forest",
        n_estimators: int = 300,
        max_depth: int | None = None,
        min_samples_leaf: int = 1,
        learning_rate: float = 0.05,
    ) -> None:
        super().__init__(space, seed)
        if model not in ("random_forest", "gradient_boosting"):
            raise ValueError(f"model must be 'random_forest' or 'gradient_boosting', got '{model}'")
        if n_estimators < 1 or min_samples_leaf < 1 or (max_depth is not None and max_depth < 1):
            raise ValueError("n_estimators, min_samples_leaf and max_depth must be at least 1")
        if learning_rate <= 0:
            raise ValueError(f"learning_rate must be > 0, got {learning_rate}")
        self.model = model
        self.n_estimators = n_estimators
        self.max_depth = max_depth
        self.min_samples_leaf = min_samples_leaf
        self.learning_rate = learning_rate
        self.vocab = {tok: i for i, tok in enumerate(space.vocabulary())}
        self.max_len_ = 0
        self.estimator_: RandomForestRegressor | GradientBoostingRegressor | None = None
        #: the encoded training set the estimator was fitted on
        self.train_: tuple[np.ndarray, np.ndarray] | None = None

    def features(self, genotypes: Sequence[Genotype]) -> np.ndarray:
        """``[n, max_len * V + V]``: per-position one-hot, then token counts."""
        v = len(self.vocab)
        x = np.zeros((len(genotypes), self.max_len_ * v + v))
        for row, g in enumerate(genotypes):
            for pos, tok in enumerate(self.space.tokens(g)):
                if tok not in self.vocab:
                    raise ValueError(f"token {tok!r} is not in the space's vocabulary")
                if pos < self.max_len_:
                    x[row, pos * v + self.vocab[tok]] = 1.0
                x[row, self.max_len_ * v + self.vocab[tok]] += 1.0
        return x

    def fit(self, genotypes: Sequence[Genotype], objectives: Sequence[float]) -> ForestSurrogate:
        if len(genotypes) != len(objectives):
            raise ValueError(f"{len(genotypes)} genotypes but {len(objectives)} objectives")
        if not genotypes:
            raise ValueError("fit needs at least one genotype")
        self.max_len_ = max(len(self.space.tokens(g)) for g in genotypes)
        self._fit_estimator(self.features(genotypes), finite_targets(objectives))
        return self

    def _fit_estimator(self, x: np.ndarray, y: np.ndarray) -> None:
        if self.model == "random_forest":
            est: RandomForestRegressor | GradientBoostingRegressor = RandomForestRegressor(
                n_estimators=self.n_estimators,
                max_depth=self.max_depth,
                min_samples_leaf=self.min_samples_leaf,
                random_state=self.seed,
            )
        else:
            est = GradientBoostingRegressor(
                n_estimators=self.n_estimators,
                max_depth=self.max_depth or 3,
                min_samples_leaf=self.min_samples_leaf,
                learning_rate=self.learning_rate,
                random_state=self.seed,
            )
        self.estimator_ = est.fit(x, y)
        self.train_ = (x, y)

    def predict(self, genotypes: Sequence[Genotype]) -> np.ndarray:
        if self.estimator_ is None:
            raise RuntimeError("ForestSurrogate is not fitted: call fit() or load_state_dict()")
        if not genotypes:
            return np.empty(0)
        return self.estimator_.predict(self.features(genotypes)).astype(float)

    def state_dict(self) -> dict[str, Any]:
        """The encoded training set: loading refits the same trees from it (the estimator is
        seeded), so the state is data rather than a pickled scikit-learn object."""
        x, y = self.train_ if self.train_ is not None else (None, None)
        return {"seed": self.seed, "max_len": self.max_len_, "x": x, "y": y}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.seed = int(state["seed"])
        self.max_len_ = int(state["max_len"])
        if state["x"] is None:
            self.estimator_ = self.train_ = None
            return
        x, y = np.asarray(state["x"], dtype=float), np.asarray(state["y"], dtype=float)
        width = (self.max_len_ + 1) * len(self.vocab)
        if x.ndim != 2 or x.shape[1] != width or y.shape != (len(x),):
            raise ValueError(f"state holds a training set of shape {x.shape}, {y.shape}")
        self._fit_estimator(x, y)
