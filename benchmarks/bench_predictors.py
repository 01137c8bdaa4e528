"""How well surrogates rank unseen cells of a table ground truth (NASLib's predictor protocol).

One fixed test set of ``--test-size`` OK cells; per seed, one random order of the other OK
cells whose prefixes are the training sets of the ``--sizes``; every surrogate is fitted on
each training set and ranks the test set. Prints a markdown table of Kendall tau, Spearman
rho, precision at the top 10 %, fit time and query time per cell (mean +- std over seeds).

    python benchmarks/bench_predictors.py                        # NAS-Bench-NLP developer split
    python benchmarks/bench_predictors.py --surrogates spd,nao --set nao.epochs=200 \\
        --sizes 10,50 --seeds 3 --out runs/bench_predictors.json

Surrogates are any names of the SURROGATES registry; ``--set name.key=value`` passes an
option (the value is read as YAML: 3, 0.1, 1e-3, true, cpu) to the constructor of ``name``,
checked and converted as a config file's options are.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from tqdm import tqdm

from evo_nas.config import Component, ConfigError, construct, validated_options
from evo_nas.metrics import ranking_metrics

METRICS = ("kendall_tau", "spearman_rho", "precision_top10", "fit_s", "query_ms_per_cell")


def parse_options(pairs: list[str]) -> dict[str, dict[str, Any]]:
    """``["nao.epochs=200", ...]`` -> ``{"nao": {"epochs": 200}}``."""
    out: dict[str, dict[str, Any]] = defaultdict(dict)
    for pair in pairs:
        target, sep, value = pair.partition("=")
        name, dot, key = target.partition(".")
        if not sep or not dot or not name or not key:
            raise SystemExit(f"--set expects name.key=value, got '{pair}'")
        out[name][key] = yaml.safe_load(value)
    return dict(out)


def seeds_arg(text: str) -> list[int]:
    """``"5"`` -> seeds 0..4; ``"3-4"`` -> seeds 3 and 4 (a share of the seeds, so that one
    protocol can run as several processes: a seed's training cells do not depend on others)."""
    first, dash, last = text.partition("-")
    try:
        seeds = list(range(int(first), int(last) + 1)) if dash else list(range(int(text)))
    except ValueError:
        seeds = []
    if not seeds:
        raise argparse.ArgumentTypeError(f"expected n >= 1 or a-b with a <= b, got '{text}'")
    return seeds


def ok_cells(gt: Any) -> tuple[list[Any], list[tuple[Any, float]]]:
    """Every cell of a table ground truth, and (genotype, objective) of those that trained."""
    cells = gt.genotypes()
    results = gt.evaluate(cells)
    ok = [(g, r.objective) for g, r in zip(cells, results, strict=True) if r.status == "ok"]
    return cells, ok


def split(
    ok_cells: list[Any], test_size: int, sizes: list[int], seeds: list[int], test_seed: int
) -> tuple[np.ndarray, dict[int, np.ndarray]]:
    """Test indices (one draw) and, per seed, the training order (prefixes are the sets)."""
    if test_size + max(sizes) > len(ok_cells):
        raise SystemExit(f"{len(ok_cells)} OK cells cannot hold {test_size} test + {max(sizes)}")
    order = np.random.default_rng(test_seed).permutation(len(ok_cells))
    test, pool = order[:test_size], order[test_size:]
    train = {s: np.random.default_rng(s).permutation(pool)[: max(sizes)] for s in seeds}
    return test, train


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Every (surrogate, size, seed) fit and its figures on the test set."""
    options = parse_options(args.set)
    names = args.surrogates.split(",")
    unknown = set(options) - set(names) - {"space", "ground_truth"}
    if unknown:
        raise SystemExit(f"--set names {sorted(unknown)} are not among the surrogates")
    for name in names:  # a wrong option fails now, not after the data has loaded
        validated_options("surrogate", Component(name=name, options=options.get(name, {})))
    space = construct("space", Component(name=args.space, options=options.get("space", {})))
    gt_entry = Component(name=args.ground_truth, options=options.get("ground_truth", {}))
    gt = construct("ground_truth", gt_entry, space=space)
    cells, ok = ok_cells(gt)
    print(f"{len(cells)} cells, {len(ok)} OK; test set {args.test_size}, sizes {args.sizes}")
    test_idx, train_idx = split(ok, args.test_size, args.sizes, args.seeds, args.test_seed)
    test_g = [ok[i][0] for i in test_idx]
    test_y = np.array([ok[i][1] for i in test_idx])

    rows = []
    grid = [(n, size, s) for s in args.seeds for size in args.sizes for n in names]
    for name, size, seed in tqdm(grid, desc="fits"):
        train = [ok[i] for i in train_idx[seed][:size]]
        entry = Component(name=name, options=options.get(name, {}))
        model = construct("surrogate", entry, space=space, seed=seed)
        t0 = time.perf_counter()
        model.fit([g for g, _ in train], [y for _, y in train])
        t1 = time.perf_counter()
        pred = np.asarray(model.predict(test_g), dtype=float)
        t2 = time.perf_counter()
        figures = ranking_metrics(test_y, pred, top_percents=(10.0,))
        rows.append(
            {
                "surrogate": name,
                "size": size,
                "seed": seed,
                **{k: figures[k] for k in METRICS[:3]},
                "fit_s": t1 - t0,
                "query_ms_per_cell": 1e3 * (t2 - t1) / len(test_g),
                "predictions": pred.tolist(),
            }
        )
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    """Markdown table, one line per (surrogate, size): mean +- std over seeds."""
    groups: dict[tuple[str, int], list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        groups[(r["surrogate"], r["size"])].append(r)
    lines = [
        "| surrogate | N | Kendall tau | Spearman rho | precision@10% | fit s | query ms/cell |",
        "|---|---|---|---|---|---|---|",
    ]
    for (name, size), rs in groups.items():
        cols = []
        for m in METRICS:
            v = np.array([r[m] for r in rs])
            digits = 3 if m != "query_ms_per_cell" else 4
            cols.append(f"{v.mean():.{digits}f} +- {v.std():.{digits}f}")
        lines.append(f"| {name} | {size} | " + " | ".join(cols) + " |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--surrogates", default="nao,params,forest,random")
    p.add_argument("--sizes", default="10,25,50,100", type=lambda s: [int(x) for x in s.split(",")])
    p.add_argument("--seeds", default="5", type=seeds_arg, help="n (seeds 0..n-1) or a-b")
    p.add_argument("--test-size", default=1000, type=int)
    p.add_argument("--test-seed", default=12345, type=int)
    p.add_argument("--space", default="nasbench_nlp")
    p.add_argument("--ground-truth", default="nasbench_nlp")
    p.add_argument("--set", action="append", default=[], metavar="NAME.KEY=VALUE")
    p.add_argument("--threads", default=1, type=int, help="torch CPU threads (default 1)")
    p.add_argument("--out", type=Path, help="write every row, predictions included, as JSON")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    try:
        rows = run(args)
    except ConfigError as e:
        raise SystemExit(f"error: {e}") from None
    print(table(rows))
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        meta = {**vars(args), "out": str(args.out)}
        args.out.write_text(json.dumps({"args": meta, "rows": rows}))


if __name__ == "__main__":
    main()
