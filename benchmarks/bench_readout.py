"""Speed of the Petri dish panel on NAS-Bench-NLP cells, against the earlier default.

Side by side in one run, each from an empty record cache: the default panel (the dishes'
records, the space's descriptors, the prior scaled on 256 reference cells, the anchored ridge
read-out) and the earlier default (the same dishes, a GP read-out on their records). For
each: ``predict`` of ``--cells`` unseen cells (every record computed: the cost of a warm
start), the read-out's refit on 50 and on 100 cells whose records are cached (a search's
refit), and ``predict`` again from the cache. Goals (2 CPU cores): the panel at most 0.3 s
per cell, a refit at N = 100 well under a second. The Kendall tau beside is a sanity check,
not the protocol (docs/results/compare_nbnlp.md has that).

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


def measure(readout: str, space, test, train, y_test, y_train, seed: int) -> dict[str, float]:
    """Seconds per cell of a cold predict, refit seconds at N = 50 and 100, tau at N = 100."""
    options = {"dish": {"kind": "rnn", "readout": readout}}
    spd = evo_nas.build("surrogate", "spd", options, space=space, seed=seed)
    t0 = time.perf_counter()
    spd.predict(test)
    cold = (time.perf_counter() - t0) / len(test)
    spd.features(train)  # the training cells were seen before, as in a search
    out = {"predict_s_per_cell": cold}
    for n in (50, 100):
        t0 = time.perf_counter()
        spd.fit(train[:n], y_train[:n])
        out[f"refit_s_n{n}"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    pred = spd.predict(test)
    out["cached_predict_s"] = time.perf_counter() - t0
    out["tau_n100"] = float(kendalltau(pred, y_test)[0])
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--cells", type=int, default=1000, help="cells predicted (default 1000)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    space = evo_nas.build("space", "nasbench_nlp")
    gt = evo_nas.build("ground_truth", "nasbench_nlp", space=space)
    cells = gt.genotypes()
    objectives = np.array([r.objective for r in gt.evaluate(cells)])
    ok = [i for i in range(len(cells)) if math.isfinite(objectives[i])]
    pick = np.random.default_rng(args.seed).choice(ok, args.cells + 100, replace=False)
    test, train = [cells[i] for i in pick[: args.cells]], [cells[i] for i in pick[args.cells :]]
    y_test, y_train = objectives[pick[: args.cells]], objectives[pick[args.cells :]]
    results = {}
    for readout in ("gp", "ridge"):  # the earlier default first: it warms nothing the other uses
        results[readout] = measure(readout, space, test, train, y_test, y_train, args.seed)
        r = results[readout]
        print(
            f"{readout}: predict {r['predict_s_per_cell']:.3f} s per cell (cold); refit "
            f"{r['refit_s_n50']:.3f} s at N = 50, {r['refit_s_n100']:.3f} s at N = 100; "
            f"cached predict {r['cached_predict_s']:.2f} s; tau at N = 100 {r['tau_n100']:.3f}",
            flush=True,
        )
    ratio = results["ridge"]["predict_s_per_cell"] / results["gp"]["predict_s_per_cell"]
    print(f"panel / earlier default, cold predict per cell: {ratio:.2f}x (threads {args.threads})")


if __name__ == "__main__":
    main()
