"""Speed of the Petri dish surrogate on darts_rnn: motifs predicted per second, fit time.

Goals (2 CPU cores): 1,000 motifs predicted in at most 60 s; ``fit`` on 50 motifs in at most
10 minutes, both with the default options. The fit uses a synthetic ground truth (a known
function of the activations plus noise), so the timing needs no data; its training-set
Spearman rho before and after is printed as a sanity check, not as a quality figure. CPU
(process) time is printed beside wall time, since the cores may be shared.

    python benchmarks/bench_spd.py --predict 1000 --fit 50 --threads 2 [--devices cpu,cuda]

``--devices`` measures the same work on each device in turn, in one process, and prints the
speed ratios to the first; ``--options`` JSON sets any other surrogate option, e.g.
``{"predict_batch": 4096}``.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
from scipy.stats import spearmanr

import evo_nas
from search_spaces import Genotype, SearchSpace, get_space


def measure(
    space: SearchSpace, motifs: list[Genotype], fit: int, device: str, args: argparse.Namespace
) -> dict[str, float]:
    """Predict ``motifs`` and fit on the first ``fit`` of them; seconds of each."""
    rng = np.random.default_rng(args.seed)
    options = {"device": device, **json.loads(args.options)}
    spd = evo_nas.build("surrogate", "spd", options, space=space, seed=args.seed)
    spd.predict(motifs[:8])  # first-call costs (CUDA context, kernel caches) are not the dish's
    t0, c0 = time.perf_counter(), time.process_time()
    pred = spd.predict(motifs)
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    print(
        f"{device}: predict {len(motifs)} darts_rnn motifs in {dt:.1f} s = "
        f"{len(motifs) / dt:.1f} motifs/s (CPU {cpu:.1f} s; {int(np.isinf(pred).sum())} "
        f"diverged in the dish; threads {args.threads})"
    )
    out = {"predict": dt}
    if not fit:
        return out
    train = motifs[:fit]
    counts = np.array([[sum(a == b for a, _ in g) for b in space.activations] for g in train])
    y = np.exp(counts @ rng.normal(size=counts.shape[1]) * 0.3 + rng.normal(size=len(train)) * 0.1)
    before = spearmanr(spd.predict(train), y)[0]
    t0, c0 = time.perf_counter(), time.process_time()
    spd.fit(train, y)
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    after = spearmanr(spd.predict(train), y)[0]
    steps = spd.dish.meta_steps * len(spd.dishes_)
    print(
        f"{device}: fit {len(train)} motifs, {steps} meta-steps in {dt:.1f} s (CPU {cpu:.1f} s,"
        f" {dt / max(steps, 1):.2f} s/step); training Spearman rho {before:.3f} -> {after:.3f}"
    )
    return {**out, "fit": dt}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--predict", type=int, default=1000, help="motifs to predict")
    ap.add_argument("--fit", type=int, default=50, help="motifs to fit on (0: skip)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--options", default="{}", help="JSON options for the surrogate")
    ap.add_argument("--devices", default="cpu", help="comma-separated: cpu, cuda, cuda:1, auto")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    space = get_space("darts_rnn")
    rng = np.random.default_rng(args.seed)
    motifs = [space.sample(rng) for _ in range(args.predict)]
    devices = args.devices.split(",")
    seconds = {d: measure(space, motifs, args.fit, d, args) for d in devices}
    for d in devices[1:]:
        ratios = ", ".join(f"{k} {seconds[devices[0]][k] / v:.2f}x" for k, v in seconds[d].items())
        print(f"{d} speed relative to {devices[0]}: {ratios}")


if __name__ == "__main__":
    main()
