"""A learned read-out of the Petri dish: the dish's own score corrected by what the training
cells' whole inner trajectories say.

Tens of ground-truth cells are too few to learn a ranking from the dish's trajectory features
alone (every model tried ranked unseen NAS-Bench-NLP cells below the dish's own final loss at
N <= 100; docs/results/compare_nbnlp.md). So the read-out keeps the dish's score as its prior
mean and learns only a correction: a least-squares slope on the score (kept positive: the
dish's orientation is decided by a significance test, not by the read-out), then a Gaussian
process on the residual over the standardised trajectory. Where the residual carries no signal the
GP's marginal likelihood sends its signal variance to zero and the read-out ranks as the dish
does; where it does, the correction and a spread per prediction come with it.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from scipy.stats import rankdata
from sklearn.exceptions import ConvergenceWarning
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import RBF, WhiteKernel
from sklearn.gaussian_process.kernels import ConstantKernel as Constant

#: fewer finite training cells than this: no correction, the read-out is the dish's score
MIN_CELLS = 5
#: standardised features and scores are clipped here, so one extreme cell cannot dominate
_CLIP = 5.0


def rank_targets(objectives: np.ndarray) -> np.ndarray:
    """Objectives as z-scored ranks (lower is better; inf, a diverged cell, ties last): the
    read-out learns the order, not perplexities whose tail reaches 15,000."""
    r = rankdata(np.where(np.isfinite(objectives), objectives, np.inf))
    return (r - r.mean()) / (r.std() + 1e-12)


class ResidualGP:
    """``fit(features, scores, objectives)`` then ``predict(features, scores) -> (mean, std)``.

    ``scores``: the dish's own score per cell (lower = better); ``features``: the cells'
    trajectory rows. A cell with any non-finite feature or score (it diverged in the dish)
    is left out of the fit and predicted ``inf`` with an unknown (nan) spread.
    """

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed
        self.fitted_ = False

    def fit(self, features: np.ndarray, scores: np.ndarray, objectives: np.ndarray) -> ResidualGP:
        features, scores = np.asarray(features, float), np.asarray(scores, float)
        finite = np.isfinite(features).all(axis=1) & np.isfinite(scores)
        self.fitted_ = int(finite.sum()) >= MIN_CELLS
        if not self.fitted_:
            return self
        x, s = features[finite], scores[finite]
        t = rank_targets(np.asarray(objectives, float)[finite])
        self.center_ = np.median(s)
        self.scale_ = np.std(s) + 1e-12
        self.mean_, self.std_ = x.mean(axis=0), x.std(axis=0) + 1e-12
        z = self._score_z(s)
        self.slope_ = float(np.dot(z, t) / (np.dot(z, z) + 1e-12))
        if self.slope_ <= 0:
            # The cells disagree with the dish, yet not enough for its orientation test to
            # flip it (the scores come signed): a few unlucky cells must not reverse the
            # dish's ranking, so nothing is learned and the read-out stays the dish's score.
            self.fitted_ = False
            return self
        kernel = Constant(0.1, (1e-4, 10.0)) * RBF(3.0, (0.3, 100.0)) + WhiteKernel(
            0.5, (1e-3, 10.0)
        )
        gp = GaussianProcessRegressor(kernel, n_restarts_optimizer=2, random_state=self.seed)
        self.x_, self.residual_ = self._features_z(x), t - self.slope_ * z
        with warnings.catch_warnings():
            # a length scale or noise at its bound is an answer here (no signal), not a fault
            warnings.simplefilter("ignore", ConvergenceWarning)
            self.theta_ = gp.fit(self.x_, self.residual_).kernel_.theta
        self._gp = self._conditioned()
        return self

    def _conditioned(self) -> GaussianProcessRegressor:
        """The GP with the fitted kernel, conditioned on the stored residuals (no search)."""
        kernel = Constant() * RBF() + WhiteKernel()
        gp = GaussianProcessRegressor(kernel.clone_with_theta(self.theta_), optimizer=None)
        return gp.fit(self.x_, self.residual_)

    def _score_z(self, s: np.ndarray) -> np.ndarray:
        return np.clip((s - self.center_) / self.scale_, -_CLIP, _CLIP)

    def _features_z(self, x: np.ndarray) -> np.ndarray:
        return np.clip((x - self.mean_) / self.std_, -_CLIP, _CLIP)

    def predict(self, features: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Predicted z-scored rank (lower = better) and its standard deviation per cell."""
        features, scores = np.asarray(features, float), np.asarray(scores, float)
        finite = np.isfinite(features).all(axis=1) & np.isfinite(scores)
        mean = np.full(len(scores), np.inf)
        std = np.full(len(scores), np.nan)
        if not self.fitted_:
            mean[finite] = scores[finite]
            return mean, std
        if finite.any():
            m, sd = self._gp.predict(self._features_z(features[finite]), return_std=True)
            mean[finite] = self.slope_ * self._score_z(scores[finite]) + m
            std[finite] = sd
        return mean, std

    def state_dict(self) -> dict[str, Any]:
        if not self.fitted_:
            return {"fitted": False}
        names = ("center", "scale", "mean", "std", "slope", "x", "residual", "theta")
        return {"fitted": True, **{n: np.asarray(getattr(self, f"{n}_")) for n in names}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.fitted_ = bool(state["fitted"])
        if not self.fitted_:
            return
        for n in ("mean", "std", "x", "residual", "theta"):
            setattr(self, f"{n}_", np.asarray(state[n], float))
        for n in ("center", "scale", "slope"):
            setattr(self, f"{n}_", float(state[n]))
        self._gp = self._conditioned()
