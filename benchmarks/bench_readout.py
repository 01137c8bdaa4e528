"""Speed of the default Petri dish on NAS-Bench-NLP cells: records per cell, read-out fit.

Goals (2 CPU cores): ``predict`` at most 0.2 s per cell (the dishes train every cell once);
``fit`` of the read-out on 50 ground-truth cells whose records are cached at most 60 s.
The cells and objectives are real (the developer split); the Kendall tau printed beside is
a sanity check on 1,000 cells, not the protocol (docs/results/compare_nbnlp.md has that).

    EVO_NAS_DATA=../shared/data python benchmarks/bench_readout.py --threads 2
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
import torch
from scipy.stats import kendalltau

import evo_nas
from surrogates.spd import PetriDishSurrogate


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--cells", type=int, default=1000, help="cells predicted (default 1000)")
    p.add_argument("--fit", type=int, default=50, help="ground-truth cells fitted on")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    space = evo_nas.build("space", "nasbench_nlp")
    gt = evo_nas.build("ground_truth", "nasbench_nlp", space=space)
    cells = gt.genotypes()
    objectives = np.array([r.objective for r in gt.evaluate(cells)])
    ok = [i for i in range(len(cells)) if math.isfinite(objectives[i])]
    pick = np.random.default_rng(args.seed).choice(ok, args.cells + args.fit, replace=False)
    test = [cells[i] for i in pick[: args.cells]]
    train = [cells[i] for i in pick[args.cells :]]
    spd = evo_nas.build("surrogate", "spd", space=space, seed=args.seed)
    t0, c0 = time.perf_counter(), time.process_time()
    spd.predict(test)
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    print(
        f"predict {len(test)} cells (unfitted, every record computed): {dt:.1f} s = "
        f"{dt / len(test):.3f} s per cell (CPU {cpu:.1f} s, threads {args.threads})"
    )
    spd.features(train)  # the training cells were seen before, as in a search
    t0 = time.perf_counter()
    spd.fit(train, objectives[pick[args.cells :]])
    fit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    pred = spd.predict(test)
    again_s = time.perf_counter() - t0
    tau = kendalltau(pred, objectives[pick[: args.cells]])[0]
    print(
        f"fit on {len(train)} cells with cached records: {fit_s:.2f} s; predict the "
        f"{len(test)} cells again (cached): {again_s:.2f} s; Kendall tau {tau:.3f}"
    )
    weighs(spd, test, objectives[pick[: args.cells]], tau, args.seed)


def weighs(spd: PetriDishSurrogate, test: list, truth: np.ndarray, tau: float, seed: int) -> None:
    """What the read-out leans on: its slope on the dish score, its kernel, and the drop in
    tau when one group of record columns is shuffled across the test cells."""
    readout = spd.readout_
    if readout is None or not readout.fitted_:
        return
    signal, length, noise = np.exp(readout.theta_)
    print(
        f"read-out: slope on the dish score {readout.slope_:.3f}; correction GP signal "
        f"variance {signal:.3g}, length scale {length:.3g}, noise variance {noise:.3g}"
    )
    records = spd.features(test)
    scores = spd.combined_scores(records)
    names = spd.feature_names()
    rng = np.random.default_rng(seed)
    for group in ("train_loss", "val_loss", "log_grad_norm"):
        cols = [i for i, n in enumerate(names) if n.split(".")[1].startswith(group)]
        shuffled = records.copy()
        shuffled[:, cols] = records[rng.permutation(len(records))][:, cols]
        pred = readout.predict(shuffled, scores)[0]
        print(f"  {group} columns shuffled: tau {kendalltau(pred, truth)[0]:.3f} ({tau:.3f})")


if __name__ == "__main__":
    main()
