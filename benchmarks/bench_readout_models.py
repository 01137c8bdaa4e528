"""Which read-out of the dish's records ranks unseen NAS-Bench-NLP cells best at small N?

The split of ``evo-nas compare predict`` (examples/compare_nbnlp.yaml: 1,000 test cells
drawn with seed 12345, per seed a training order of the other OK cells); one dish pair
(surrogate seed ``--dish-seed``) records every cell involved once, through
``feature_cache``; each model is then fitted on the first N training cells of each seed and
ranks the test cells. Models: the dish's own score (no learning), ridge regression, a
Gaussian process and a random forest on all record columns (rank targets), and the GP
read-out (:class:`~surrogates.readout.ResidualGP`: the score's slope plus a GP on the
residual; ``readout: gp``). Prints Kendall tau, mean +- std over seeds, per model and N;
``--sizes`` with hundreds or thousands of cells shows what the records could give with far
more ground truth.

    EVO_NAS_DATA=../shared/data python benchmarks/bench_readout_models.py \\
        --config examples/compare_nbnlp.yaml --cache runs/dish_records
"""

from __future__ import annotations

import argparse
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from scipy.stats import kendalltau
from sklearn.ensemble import HistGradientBoostingRegressor, RandomForestRegressor
from sklearn.exceptions import ConvergenceWarning
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import RBF, WhiteKernel
from sklearn.gaussian_process.kernels import ConstantKernel as Constant
from sklearn.linear_model import RidgeCV

import evo_nas
from surrogates.readout import ResidualGP, rank_targets

#: (records [N, F], dish scores [N], objectives [N]) -> fitted ranker of (records, scores)
Model = Callable[
    [np.ndarray, np.ndarray, np.ndarray], Callable[[np.ndarray, np.ndarray], np.ndarray]
]


def _standardised(make: Callable[[], object]) -> Model:
    """A scikit-learn regressor on z-scored records, fitted to rank targets."""

    def fit(x: np.ndarray, s: np.ndarray, y: np.ndarray):
        ok = np.isfinite(x).all(axis=1)  # a cell diverged in the dish has no record
        mean, std = x[ok].mean(axis=0), x[ok].std(axis=0) + 1e-12
        model = make().fit(np.clip((x[ok] - mean) / std, -5, 5), rank_targets(y[ok]))

        def rank(xt: np.ndarray, st: np.ndarray) -> np.ndarray:
            out = np.full(len(xt), np.inf)  # diverged in the dish: last
            fin = np.isfinite(xt).all(axis=1)
            out[fin] = model.predict(np.clip((xt[fin] - mean) / std, -5, 5))
            return out

        return rank

    return fit


def _gp() -> GaussianProcessRegressor:
    kernel = Constant() * RBF(3.0, (0.3, 100.0)) + WhiteKernel(0.5, (1e-3, 10.0))
    return GaussianProcessRegressor(
        kernel, normalize_y=True, n_restarts_optimizer=2, random_state=0
    )


def _residual_gp(x: np.ndarray, s: np.ndarray, y: np.ndarray):
    model = ResidualGP(seed=0).fit(x, s, y)
    return lambda xt, st: model.predict(xt, st)[0]


MODELS: dict[str, Model] = {
    "dish score (no learning)": lambda x, s, y: lambda xt, st: st,
    "ridge on the records": _standardised(lambda: RidgeCV(alphas=np.logspace(-2, 4, 25))),
    "GP on the records": _standardised(_gp),
    "random forest on the records": _standardised(
        lambda: RandomForestRegressor(300, min_samples_leaf=2, random_state=0)
    ),
    "gradient boosting on the records": _standardised(
        lambda: HistGradientBoostingRegressor(max_iter=300, learning_rate=0.05, random_state=0)
    ),
    "residual GP (default read-out)": _residual_gp,
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--config", type=Path, default=Path("examples/compare_nbnlp.yaml"))
    p.add_argument("--cache", type=Path, default=Path("runs/dish_records"))
    p.add_argument("--dish-seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument(
        "--sizes",
        type=lambda text: [int(n) for n in text.split(",")],
        help="training-set sizes instead of the config's, e.g. 50,500,2000 for the ceiling",
    )
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    cfg = evo_nas.load_predict_config(args.config)
    if args.sizes:
        cfg.sizes = args.sizes
    space = evo_nas.build("space", cfg.space.name, cfg.space.options)
    gt = evo_nas.build("ground_truth", cfg.ground_truth.name, cfg.ground_truth.options, space=space)
    test, orders = evo_nas.draw_sets(cfg, space, gt)
    spd = evo_nas.build(
        "surrogate", "spd", {"feature_cache": args.cache}, space=space, seed=args.dish_seed
    )
    spd.features([g for g, _ in test] + [g for order in orders.values() for g, _ in order])
    x_test = spd.features([g for g, _ in test])
    s_test = spd.combined_scores(x_test)
    y_test = np.array([y for _, y in test])
    print(f"records: {x_test.shape[1]} columns; dish seed {args.dish_seed}; test {len(test)}")
    print("| model | " + " | ".join(f"N = {n}" for n in cfg.sizes) + " |")
    print("|---|" + "---|" * len(cfg.sizes))
    for name, model in MODELS.items():
        cells = []
        for n in cfg.sizes:
            taus = []
            for seed in cfg.seeds:
                train = orders[seed][:n]
                x = spd.features([g for g, _ in train])
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", ConvergenceWarning)
                    rank = model(x, spd.combined_scores(x), np.array([y for _, y in train]))
                pred = np.asarray(rank(x_test, s_test), dtype=float)
                pred = np.where(np.isfinite(pred), pred, pred[np.isfinite(pred)].max() + 1)
                taus.append(kendalltau(pred, y_test)[0])
            cells.append(f"{np.mean(taus):.3f} +- {np.std(taus):.3f}")
        print(f"| {name} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
