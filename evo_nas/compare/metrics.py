"""How well a surrogate's predictions order cells: the figures every comparison reports."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import stats


def precision_at_top(y_true: np.ndarray, y_pred: np.ndarray, percent: float) -> float:
    """Fraction of the predicted best ``percent`` % that are in the true best ``percent`` %."""
    n = len(y_true)
    k = max(1, int(round(n * percent / 100.0)))
    true_top = set(np.argsort(y_true, kind="stable")[:k].tolist())
    pred_top = np.argsort(y_pred, kind="stable")[:k].tolist()
    return sum(i in true_top for i in pred_top) / k


def ranking_metrics(
    y_true: Sequence[float], y_pred: Sequence[float], top_percents: Sequence[float] = (10.0,)
) -> dict[str, float]:
    """Kendall tau, Spearman rho, Pearson on ranks, precision at top-k %, regret of the best.

    Lower is better for both arrays. ``regret`` is the true objective of the cell predicted
    best minus the true best objective. Non-finite predictions count as the worst.
    """
    yt = np.asarray(y_true, dtype=float)
    yp = np.asarray(y_pred, dtype=float)
    if yt.shape != yp.shape or yt.ndim != 1:
        raise ValueError(f"y_true and y_pred must be 1-D of one length, got {yt.shape}, {yp.shape}")
    if len(yt) < 2 or not np.isfinite(yt).all():
        raise ValueError("need at least two finite true objectives")
    bad = ~np.isfinite(yp)
    if bad.any():
        yp = yp.copy()
        yp[bad] = yp[~bad].max() + 1.0 if (~bad).any() else 0.0
    constant = np.ptp(yp) == 0
    out = {
        "kendall_tau": 0.0 if constant else float(stats.kendalltau(yt, yp).statistic),
        "spearman_rho": 0.0 if constant else float(stats.spearmanr(yt, yp).statistic),
        "pearson_ranks": 0.0
        if constant
        else float(stats.pearsonr(stats.rankdata(yt), stats.rankdata(yp)).statistic),
        "regret": float(yt[int(np.argmin(yp))] - yt.min()),
    }
    for p in top_percents:
        out[f"precision_top{p:g}"] = precision_at_top(yt, yp, p)
    return out
