"""Speed of the Petri dish's records on NAS-Bench-NLP cells: this tree against a baseline.

The baseline is ``search_spaces/nasbench_nlp_batch.py`` as it was at ``--baseline`` (a git
revision; by default the last one before the hand-written backward pass), loaded from git
into this process; everything else is this tree's. The default RNN dishes (two of them,
``PRESETS["rnn"]``) record ``--cells`` real cells of the developer split, the way
``PetriDishSurrogate.features`` does (length-sorted batches of ``predict_batch``), with a
fresh surrogate each time, old and new in turn ``--repeats`` times per thread count; the
ratio old / new is taken pair by pair and its median printed, so that a machine whose speed
drifts (shared cores) still gives a fair ratio. The records of old and new are compared
too: the new backward pass sums in autograd's order, so they should be equal to the bit.

    EVO_NAS_DATA=../shared/data python benchmarks/bench_dish_speed.py --cells 64 \\
        --threads 1,2 --repeats 5
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
import types
from pathlib import Path

import numpy as np
import torch

import evo_nas

ROOT = Path(__file__).resolve().parent.parent
#: the last revision whose NAS-Bench-NLP cell batch ran on plain autograd
BASELINE = "8b33993"


def baseline_space(space: evo_nas.SearchSpace, revision: str) -> evo_nas.SearchSpace:
    """``space`` whose cell batches are the baseline revision's."""
    source = subprocess.run(
        ["git", "show", f"{revision}:search_spaces/nasbench_nlp_batch.py"],
        cwd=ROOT, check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    module = types.ModuleType("baseline_nasbench_nlp_batch")
    exec(compile(source, f"{revision}:nasbench_nlp_batch.py", "exec"), module.__dict__)
    old = evo_nas.build("space", "nasbench_nlp")
    old.build_cell_batch = lambda genotypes, input_size, hidden_size, seed=None: (
        module.NasBenchNLPCellBatch(genotypes, input_size, hidden_size, seed=seed)
    )
    return old


def records(space: evo_nas.SearchSpace, cells: list, options: dict) -> tuple[np.ndarray, float]:
    """The default dishes' records of ``cells`` from a fresh surrogate, and the seconds."""
    spd = evo_nas.build("surrogate", "spd", {"device": "cpu", **options}, space=space, seed=0)
    t0 = time.perf_counter()
    out = spd.features(cells)
    return out, time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--cells", type=int, default=64, help="cells recorded per run (default 64)")
    p.add_argument("--threads", default="1,2", help="torch thread counts, in turn (default 1,2)")
    p.add_argument("--repeats", type=int, default=5, help="old/new pairs per thread count")
    p.add_argument("--predict-batch", type=int, default=None, help="motifs trained at once")
    p.add_argument("--baseline", default=BASELINE, help=f"git revision (default {BASELINE})")
    p.add_argument("--seed", type=int, default=0, help="which cells")
    args = p.parse_args()
    space = evo_nas.build("space", "nasbench_nlp")
    old_space = baseline_space(space, args.baseline)
    gt = evo_nas.build("ground_truth", "nasbench_nlp", space=space)
    every = gt.genotypes()
    pick = np.random.default_rng(args.seed).choice(len(every), args.cells, replace=False)
    cells = [every[i] for i in pick]
    options = {} if args.predict_batch is None else {"predict_batch": args.predict_batch}
    print(f"{args.cells} NAS-Bench-NLP cells, default RNN dishes, baseline {args.baseline}")
    for threads in (int(t) for t in args.threads.split(",")):
        torch.set_num_threads(threads)
        records(space, cells[:4], options)  # first-call costs
        ratios, old_s, new_s = [], [], []
        for _ in range(args.repeats):
            old, t_old = records(old_space, cells, options)
            new, t_new = records(space, cells, options)
            ratios.append(t_old / t_new)
            old_s.append(t_old / len(cells))
            new_s.append(t_new / len(cells))
        print(
            f"threads {threads}: old {statistics.median(old_s):.4f} s/cell, new "
            f"{statistics.median(new_s):.4f} s/cell (medians of {args.repeats}); old/new "
            f"median {statistics.median(ratios):.2f}x (min {min(ratios):.2f}, max "
            f"{max(ratios):.2f}); {compare(old, new)}"
        )
        sys.stdout.flush()


def compare(old: np.ndarray, new: np.ndarray) -> str:
    """How the records of the two revisions differ, per cell."""
    same = (old == new) | (np.isnan(old) & np.isnan(new))
    cells = same.all(axis=1)
    # the baseline computed every op for every motif and masked: a motif with an inf value
    # could get NaN gradients from ops it does not use
    leaked = ~cells & (~np.isfinite(old[:, -1]) | ~np.isfinite(old).all(axis=1))
    leaked &= np.isfinite(new).all(axis=1)
    other = ~cells & ~leaked
    with np.errstate(invalid="ignore"):
        diff = np.abs(old - new)[other & ~same.all(axis=1)[:, None]] if other.any() else [0.0]
    return (
        f"records: {int(cells.sum())} of {len(cells)} cells bit-identical, "
        f"{int(leaked.sum())} non-finite before and finite now, {int(other.sum())} other "
        f"(max abs diff {np.nanmax(diff):.3g})"
    )


if __name__ == "__main__":
    main()
