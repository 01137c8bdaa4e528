"""What the Petri dish's meta-learning does to seen and unseen cells, step by step.

For each seed: the training cells and test cells of ``evo-nas compare predict``'s protocol (one
fixed test set of OK NAS-Bench-NLP developer cells, ``--size`` training cells per seed); the
dish, ranked by its own score (``readout: none``), is fitted with ``meta_steps`` 0, then each
of ``--steps`` (a fit's first k steps do not depend on how many follow, so these are points of
one trajectory), and the table gives
Kendall tau on the training cells, the outer loss on all of them, and Kendall tau on the test
cells. Training tau rising while test tau stays flat is overfitting; neither rising is an
optimisation that does not work.

    EVO_NAS_DATA=../shared/data python benchmarks/bench_spd_meta.py --size 50 --seeds 2 \\
        --test-size 500 --steps 10,20,40 [--set meta_batch=50 ...]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from scipy.stats import kendalltau
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_predictors import parse_options  # noqa: E402

import evo_nas  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--size", default=50, type=int, help="training cells")
    p.add_argument("--seeds", default="2", type=lambda s: list(range(int(s))), help="0..n-1")
    p.add_argument("--test-size", default=500, type=int)
    p.add_argument("--test-seed", default=12345, type=int)
    p.add_argument("--steps", default="10,20,40", type=lambda s: [int(x) for x in s.split(",")])
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="dish option")
    p.add_argument("--threads", default=1, type=int)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    # bench_predictors' name.key=value parser, every key an option of the dish
    options = parse_options([f"spd.{pair}" for pair in args.set]).get("spd", {})
    cfg = evo_nas.validate_model(
        evo_nas.PredictCompareConfig,
        {
            "space": "nasbench_nlp",
            "ground_truth": "nasbench_nlp",
            "surrogates": ["spd"],
            "sizes": [args.size],
            "seeds": args.seeds,
            "test": {"size": args.test_size, "seed": args.test_seed},
        },
    )
    space = evo_nas.build("space", cfg.space.name)
    test, orders = evo_nas.draw_sets(
        cfg, space, evo_nas.build("ground_truth", "nasbench_nlp", space=space)
    )
    test_g, test_y = [g for g, _ in test], [y for _, y in test]
    print("| seed | meta steps | train tau | train outer loss | test tau |\n|---|---|---|---|---|")
    for seed in tqdm(args.seeds, desc="seeds"):
        train = orders[seed][: args.size]
        train_g, train_y = [g for g, _ in train], [y for _, y in train]
        for k in [0, *args.steps]:
            dish = {"kind": "rnn", "readout": "none", **options, "meta_steps": k}
            spd = evo_nas.build("surrogate", "spd", {"dish": dish}, space=space, seed=seed)
            spd.fit(train_g, train_y)
            pred = spd.predict(train_g)
            loss = spd.ranking_loss(pred, train_y)
            test_tau = kendalltau(spd.predict(test_g), test_y).statistic
            tau = kendalltau(pred, train_y).statistic
            print(f"| {seed} | {k} | {tau:.3f} | {loss:.3f} | {test_tau:.3f} |", flush=True)


if __name__ == "__main__":
    main()
