"""Write the table demo's ground truth: every distinct 4-node darts_rnn cell, with an objective.

The objective is a synthetic landscape (documented, not measured): a perplexity-like value
that rewards tanh/sigmoid gates deep in the tree, punishes stacked identity and relu nodes,
and adds a fixed pseudo-random term per cell. It exists so the whole search machinery can be
tried in seconds on any machine; real ground truth comes from the PTB trainer or NAS-Bench-NLP.

    python examples/make_table_demo.py examples/table_demo.csv
"""

from __future__ import annotations

import csv
import hashlib
import itertools
import json
import sys
from pathlib import Path

from search_spaces import get_space

NODES = 4


def objective(genotype: tuple[tuple[str, int], ...]) -> float:
    """The synthetic landscape (lower is better)."""
    depth = [0] * (len(genotype) + 1)
    score = 100.0
    for i, (act, pred) in enumerate(genotype, start=1):
        depth[i] = depth[pred] + 1
        score += {"tanh": -3.0, "sigmoid": -1.5, "relu": 1.0, "identity": 4.0}[act] * depth[i]
        if act == genotype[pred - 1][0] and pred > 0:
            score += 2.5  # the same activation twice in a row adds little
    digest = hashlib.blake2b(repr(genotype).encode(), digest_size=4).digest()
    return round(score + 6.0 * int.from_bytes(digest, "little") / 2**32, 4)


def main(out: Path) -> None:
    space = get_space("darts_rnn", nodes=NODES)
    cells: dict[str, tuple[tuple[str, int], ...]] = {}
    for preds in itertools.product(*[range(i) for i in range(1, NODES + 1)]):
        for acts in itertools.product(space.activations, repeat=NODES):
            g = tuple(zip(acts, preds))
            cells.setdefault(space.key(g), g)
    with out.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["genotype", "objective", "cost_s"])
        for g in cells.values():
            w.writerow([json.dumps(space.to_json(g)), objective(g), 60.0])


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "examples/table_demo.csv"))
