"""The Petri dish panel's probes, each on its own: zero-shot Kendall tau and independence.

On the test set of a ``compare predict`` config (default: examples/compare_nbnlp.yaml, 1,000
NAS-Bench-NLP cells), for each dish seed: the dishes' own score, the structural rule the
prior adds to it (cells blind to the current input last, a gated input first) and each
descriptor of the space alone; for each, its Kendall tau with the objective (the raw sign: a
positive tau means a higher value goes with a worse cell) and with the dishes' score, whose
signal a probe must not merely repeat to help; then the prior that combines them. Costs are
per cell at the given threads: the dishes' recording (unless cached) and the descriptors.

    EVO_NAS_DATA=../shared/data python benchmarks/bench_probes.py --seeds 0,1,2 --threads 1
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from scipy.stats import kendalltau

import evo_nas


def tau(a: np.ndarray, b: np.ndarray) -> float:
    both = np.isfinite(a) & np.isfinite(b)
    return float(kendalltau(a[both], b[both]).statistic)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    root = Path(__file__).resolve().parents[1]
    p.add_argument("--config", default=str(root / "examples" / "compare_nbnlp.yaml"))
    p.add_argument("--seeds", default="0,1,2", help="dish seeds, comma-separated")
    p.add_argument("--cache", default=str(root / "runs" / "dish_records"), help="records folder")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    cfg = evo_nas.load_predict_config(args.config)
    space = evo_nas.build("space", cfg.space.name, cfg.space.options)
    truth = evo_nas.build(
        "ground_truth", cfg.ground_truth.name, cfg.ground_truth.options, space=space
    )
    test, _ = evo_nas.draw_sets(cfg, space, truth)
    cells, y = [g for g, _ in test], np.array([v for _, v in test])
    start = time.perf_counter()
    described = [space.descriptors(g) for g in cells]
    describe_s = (time.perf_counter() - start) / len(cells)
    names = sorted(described[0])
    probes = {n: np.array([d[n] for d in described], float) for n in names}
    rule = 10.0 * (probes["input_delay"] > 0) - 0.433 * probes["input_gated"]
    rows: dict[str, list[tuple[float, float]]] = {}
    for seed in [int(s) for s in args.seeds.split(",")]:
        options = {"feature_cache": args.cache}
        spd = evo_nas.build("surrogate", "spd", options, space=space, seed=seed)
        start = time.perf_counter()
        records = spd.features(cells)
        record_s = (time.perf_counter() - start) / len(cells)
        dish = spd.combined_scores(records)
        _, prior = spd.panel(cells)
        rows.setdefault("dishes' score", []).append((tau(dish, y), 1.0))
        rows.setdefault("structural rule (blind last, gated first)", []).append(
            (tau(rule, y), tau(rule, dish))
        )
        for n in names:
            rows.setdefault(f"descriptor {n}", []).append((tau(probes[n], y), tau(probes[n], dish)))
        rows.setdefault("prior (score + rule)", []).append((tau(prior, y), tau(prior, dish)))
        print(f"dish seed {seed}: records {record_s:.4f} s per cell (cached cells ~0)", flush=True)
    print(f"descriptors: {describe_s:.6f} s per cell; {len(cells)} test cells")
    print("| probe | tau with the objective | tau with the dishes' score |\n|---|---|---|")
    for name, values in rows.items():
        t, d = np.array(values).T
        print(f"| {name} | {t.mean():.3f} ± {t.std():.3f} | {d.mean():.3f} |")


if __name__ == "__main__":
    main()
