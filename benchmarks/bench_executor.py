"""Worker utilisation of the asynchronous steady-state loop against the generational one.

Two local worker processes evaluate cells whose durations vary (a table replayed with each
row's cost scaled to 0.1-0.6 s). Utilisation = time spent evaluating / (time x workers), both
loops measured in this one run; "run" counts the whole run (worker start-up included), "loop"
the span from the first evaluation's start to the last one's end. Goal: at least 90 % for the
asynchronous loop.

    python benchmarks/bench_executor.py [--evaluations 40] [--workers 2]
"""

from __future__ import annotations

import argparse
import csv
import json
import tempfile
import time
from pathlib import Path

import numpy as np

import evo_nas
from search_spaces import get_space


def make_table(path: Path, seed: int = 0) -> None:
    """Every 4-node darts_rnn cell with a random objective and a cost of 1-6 units."""
    space = get_space("darts_rnn", nodes=4)
    rng = np.random.default_rng(seed)
    seen: dict[str, object] = {}
    while len(seen) < 1200:
        g = space.sample(rng)
        seen.setdefault(space.key(g), g)
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["genotype", "objective", "cost_s"])
        for g in seen.values():
            w.writerow([json.dumps(space.to_json(g)), rng.normal(100, 10), rng.uniform(1, 6)])


def measure(table: Path, out: Path, asynchronous: bool, evaluations: int, workers: int) -> dict:
    strategy = "steady_state" if asynchronous else "generational"
    cfg = {
        "name": "async" if asynchronous else "sync",
        "output_dir": str(out),
        "seed": 0,
        "space": {"name": "darts_rnn", "options": {"nodes": 4}},
        "ground_truth": {"name": "table", "options": {"path": str(table), "cost_scale": 0.1}},
        "search": {
            "strategy": strategy,
            "algorithm": "regularized",
            "population": 8,
            "sample": 3,
            "offspring": workers,
        },
        "budget": {"evaluations": evaluations},
        "execution": {"workers": workers},
    }
    start = time.perf_counter()
    evo_nas.run_search(cfg, progress=False)
    wall = time.perf_counter() - start
    rd = evo_nas.RunDir(out / cfg["name"])
    evals = [e for e in rd.read_events() if e["event"] == "evaluation"]
    busy = sum(0.1 * e["cost_s"] for e in evals)
    # the loop itself: from the start of the first evaluation to the end of the last, which
    # leaves out building the run and starting the worker processes (torch imports)
    loop = evals[-1]["elapsed_s"] - (evals[0]["elapsed_s"] - 0.1 * evals[0]["cost_s"])
    return {
        "wall_s": wall,
        "loop_s": loop,
        "busy_s": busy,
        "utilisation": busy / (wall * workers),
        "loop_utilisation": busy / (loop * workers),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--evaluations", type=int, default=40)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        table = Path(tmp) / "table.csv"
        make_table(table)
        results = {
            mode: measure(table, Path(tmp) / mode, mode == "async", args.evaluations, args.workers)
            for mode in ("sync", "async")
        }
    print(f"{args.evaluations} evaluations of 0.1-0.6 s on {args.workers} local workers")
    print("| loop | run wall s | loop s | busy s | utilisation (run) | utilisation (loop) |")
    print("|---|---|---|---|---|---|")
    for mode, r in results.items():
        print(
            f"| {mode} | {r['wall_s']:.2f} | {r['loop_s']:.2f} | {r['busy_s']:.2f} | "
            f"{r['utilisation']:.1%} | {r['loop_utilisation']:.1%} |"
        )
    ratio = results["async"]["loop_utilisation"] / results["sync"]["loop_utilisation"]
    print(f"async / sync loop utilisation: {ratio:.2f}x")


if __name__ == "__main__":
    main()
