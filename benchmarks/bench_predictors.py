"""How well surrogates rank unseen cells: ``evo-nas compare predict`` from the command line.

The grid of :mod:`evo_nas.compare.predict` (NASLib's predictor protocol): one fixed test set
of ``--test-size`` OK cells of a table ground truth; per seed, one random order of the other
OK cells, whose prefixes are the training sets of the ``--sizes``; every surrogate fitted on
each training set ranks the test set. Prints the comparison's summary (Kendall tau, Spearman
rho, precision at the top 10 %, fit time; mean +- std over seeds); ``--out`` holds every
file ``compare predict`` writes (results.csv, predictions.csv, summary.md, plots).

    python benchmarks/bench_predictors.py                        # NAS-Bench-NLP developer split
    python benchmarks/bench_predictors.py --surrogates spd,spd0=spd --set spd0.readout=none \\
        --sizes 10,50 --seeds 3 --out runs/bench_spd

``--surrogates`` lists registry names, each optionally under a label (``spd0=spd``: the
surrogate ``spd``, reported as ``spd0``); ``--set label.key=value`` passes an option (the
value is read as YAML: 3, 0.1, 1e-3, true, cpu) to the constructor of that entry, checked and
converted as a config file's options are (``space.key=value``, ``ground_truth.key=value`` for
those). A finished (surrogate, size, seed) cell is saved in ``--out`` at once and reused by a
later run into the same folder, so a killed run resumes, and seeds run as separate processes
(``--seeds 0-2``, ``--seeds 3-4``) are summarised together by a run over all of them; give a
new ``--out`` when the options change.
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path
from typing import Any

import torch

import evo_nas
from evo_nas.config.yaml_input import read_scalar

#: the components ``--set`` may address besides the surrogates
COMPONENTS = ("space", "ground_truth")


def parse_options(pairs: list[str]) -> dict[str, dict[str, Any]]:
    """``["nao.epochs=200", "spd.dish.kind=rnn", ...]`` -> ``{"nao": {"epochs": 200}, "spd":
    {"dish": {"kind": "rnn"}}}``: a dotted key sets a nested option."""
    out: dict[str, dict[str, Any]] = defaultdict(dict)
    for pair in pairs:
        target, sep, value = pair.partition("=")
        name, *keys = target.split(".")
        if not sep or not name or not keys or not all(keys):
            raise SystemExit(f"--set expects name.key=value, got '{pair}'")
        node = out[name]
        for key in keys[:-1]:
            node = node.setdefault(key, {})
            if not isinstance(node, dict):
                raise SystemExit(f"--set {target}: {key} was given a value already")
        node[keys[-1]] = read_scalar(value)
    return dict(out)


def parse_surrogates(text: str) -> list[tuple[str, str]]:
    """``"spd,spd0=spd"`` -> ``[("spd", "spd"), ("spd0", "spd")]``: (label, registry name)."""
    out = []
    for item in text.split(","):
        label, sep, name = item.partition("=")
        label, name = label.strip(), (name if sep else label).strip()
        if not label or not name:
            raise SystemExit(f"--surrogates expects NAME or LABEL=NAME, got '{item}'")
        out.append((label, name))
    return out


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


def comparison(args: argparse.Namespace) -> evo_nas.PredictCompareConfig:
    """The ``compare predict`` config the arguments describe."""
    options = parse_options(args.set)
    entries = parse_surrogates(args.surrogates)
    labels = [label for label, _ in entries]
    unknown = set(options) - set(labels) - set(COMPONENTS)
    if unknown:
        raise SystemExit(f"--set names {sorted(unknown)} are not among the surrogates")
    out = Path(args.out)
    data = {
        "name": out.name,
        "output_dir": str(out.parent),
        **{c: {"name": getattr(args, c), "options": options.get(c, {})} for c in COMPONENTS},
        "surrogates": [
            {"name": name, "label": label, "options": options.get(label, {})}
            for label, name in entries
        ],
        "sizes": args.sizes,
        "seeds": args.seeds,
        "test": {"kind": args.test_kind, "size": args.test_size, "seed": args.test_seed},
        "n_jobs": args.n_jobs,
    }
    return evo_nas.validate_model(evo_nas.PredictCompareConfig, data)


def parser() -> argparse.ArgumentParser:
    """The command's arguments."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--surrogates", default="nao,params,forest,random", metavar="[LABEL=]NAME,...")
    p.add_argument("--sizes", default="10,25,50,100", type=lambda s: [int(x) for x in s.split(",")])
    p.add_argument("--seeds", default="5", type=seeds_arg, help="n (seeds 0..n-1) or a-b")
    p.add_argument("--test-size", default=1000, type=int)
    p.add_argument("--test-seed", default=12345, type=int)
    p.add_argument("--test-kind", default="uniform", choices=("uniform", "mutants"))
    p.add_argument("--space", default="nasbench_nlp")
    p.add_argument("--ground-truth", default="nasbench_nlp")
    p.add_argument("--set", action="append", default=[], metavar="LABEL.KEY=VALUE")
    p.add_argument("--threads", default=1, type=int, help="torch CPU threads (default 1)")
    p.add_argument("--n-jobs", default=1, type=int, help="grid cells at once (processes)")
    p.add_argument("--out", default="runs/bench_predictors", help="the comparison's folder")
    return p


def main() -> None:
    args = parser().parse_args()
    torch.set_num_threads(args.threads)
    try:
        out = evo_nas.run_predict_comparison(comparison(args))
    except evo_nas.ConfigError as e:
        raise SystemExit(f"error: {e}") from None
    print((out / "summary.md").read_text(), end="")


if __name__ == "__main__":
    main()
