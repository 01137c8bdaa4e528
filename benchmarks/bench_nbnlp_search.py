"""Search strategies on the NAS-Bench-NLP developer split, in pool mode, 100 queries each.

For every seed it runs random search, regularized evolution on the ground truth and
surrogate-assisted evolution (one per ``--surrogates`` name) through the engine, then prints
the mean and spread of the best validation perplexity found and how many ground-truth
queries each needed to reach the best 1 % of the table's cells.

    EVO_NAS_DATA=../shared/data python benchmarks/bench_nbnlp_search.py --seeds 10
"""

from __future__ import annotations

import argparse
import copy
import csv
import math
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

import evo_nas
from ground_truths.nasbench_nlp_logs import NasBenchNLPGroundTruth
from search_spaces import get_space

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "nbnlp_search.yaml"


def strategies(surrogates: list[str]) -> dict[str, dict]:
    """Config overrides per strategy, applied to examples/nbnlp_search.yaml."""
    out: dict[str, dict] = {
        "random search": {"surrogate": None, "search": {"algorithm": "random"}},
        "evolution on ground truth": {"surrogate": None},
    }
    for name in surrogates:
        out[f"surrogate-assisted ({name})"] = {"surrogate": {"name": name, "options": {}}}
    return out


def run_one(base: dict, overrides: dict, seed: int, budget: int, workdir: Path) -> list[float]:
    """The objectives of one run's ground-truth queries, in query order."""
    cfg = copy.deepcopy(base)
    for k, v in overrides.items():
        if isinstance(v, dict) and isinstance(cfg.get(k), dict) and k != "surrogate":
            cfg[k].update(v)
        else:
            cfg[k] = v
    cfg.update(name=f"seed{seed}", seed=seed, output_dir=str(workdir))
    cfg["budget"] = {"evaluations": budget, "wall_time_s": None}
    evo_nas.run_search(cfg, overwrite=True, progress=False, base_dir=EXAMPLE.parent)
    with (workdir / f"seed{seed}" / "evaluations.csv").open(newline="") as fh:
        return [float(row["objective"]) for row in csv.DictReader(fh)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--budget", type=int, default=100, help="ground-truth queries per run")
    parser.add_argument("--surrogates", nargs="+", default=["random"])
    args = parser.parse_args()

    base = yaml.safe_load(EXAMPLE.read_text())
    gt = NasBenchNLPGroundTruth(get_space("nasbench_nlp"))
    table = np.sort([r.objective for r in gt.evaluate(gt.genotypes())])
    top = table[max(1, math.ceil(0.01 * len(table))) - 1]
    finite = table[np.isfinite(table)]
    print(
        f"table: {len(table)} distinct cells ({len(finite)} trained without diverging), "
        f"best {table[0]:.2f}, median of those {np.median(finite):.2f}"
    )
    print(f"best 1 %: val ppl <= {top:.2f}; {args.seeds} seeds x {args.budget} queries\n")
    print(
        f"{'strategy':34s} {'best val ppl: mean':>18s} {'std':>6s} {'min':>7s} {'max':>7s}"
        f" {'reached top 1 %':>15s} {'queries (median)':>16s} {'s/run':>6s}"
    )
    for label, overrides in strategies(args.surrogates).items():
        bests, hits, t0 = [], [], time.time()
        with tempfile.TemporaryDirectory() as tmp:
            for seed in range(args.seeds):
                objectives = np.array(run_one(base, overrides, seed, args.budget, Path(tmp)))
                bests.append(objectives.min())
                reached = np.flatnonzero(objectives <= top)
                hits.append(int(reached[0]) + 1 if len(reached) else None)
        found = [h for h in hits if h is not None]
        median = f"{np.median(found):.0f}" if found else "-"
        print(
            f"{label:34s} {np.mean(bests):18.2f} {np.std(bests):6.2f} {np.min(bests):7.2f}"
            f" {np.max(bests):7.2f} {len(found):>11d}/{args.seeds:<3d} {median:>16s}"
            f" {(time.time() - t0) / args.seeds:6.1f}"
        )


if __name__ == "__main__":
    main()
