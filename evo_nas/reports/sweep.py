"""Sweep a one-dimensional space with a finished run's fitted surrogate (and ground truth).

For spaces with a ``grid`` (e.g. ``sigmoid_slope``): the surrogate restored from the run's
checkpoint predicts every grid point; with ``truth`` the run's ground truth evaluates them
too. Writes ``sweep.csv`` and ``sweep.png`` into the run directory, so the predicted curve
can be laid over the true one.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from evo_nas.config.schema import build_ground_truth, build_space, build_surrogate, parse_config
from evo_nas.reports.plots import plot_sweep
from evo_nas.rundir.files import RunDir, atomic_write_text
from evo_nas.search.checkpoint import read_surrogate_state


def sweep_run(run_dir: Path, points: int = 100, truth: bool = False) -> tuple[Path, Path]:
    """Predict (and with ``truth`` evaluate) ``points`` grid genotypes; return (csv, png)."""
    rd = RunDir(run_dir)
    cfg = parse_config(rd.read_config(), rd.path.resolve())
    space = build_space(cfg)
    try:
        grid = space.grid(points)
    except NotImplementedError as e:
        raise ValueError(str(e)) from None
    surrogate = build_surrogate(cfg, space)
    if surrogate is None:
        raise ValueError("the run has no surrogate to sweep")
    state = read_surrogate_state(rd, space)
    if state is None:
        raise ValueError("the run's surrogate has not been fitted yet")
    surrogate.load_state_dict(state)
    predicted = surrogate.predict(grid)
    true = None
    if truth:
        ground_truth = build_ground_truth(cfg, space)
        ground_truth.attach(rd.path / "sweep_ground_truth")
        true = [r.objective for r in ground_truth.evaluate(grid)]
    x = [float(space.features(g)[0]) for g in grid]
    evaluated = []
    for row in rd.read_evaluations():
        value = float(row["objective"])
        if math.isfinite(value):
            g = space.from_json(json.loads(row["genotype"]))
            evaluated.append((float(space.features(g)[0]), value))
    lines = ["x,genotype,predicted,objective"]
    for i, g in enumerate(grid):
        objective = "" if true is None else f"{true[i]:.6g}"
        lines.append(f"{x[i]:.6g},{json.dumps(space.to_json(g))},{predicted[i]:.6g},{objective}")
    csv_path = rd.path / "sweep.csv"
    atomic_write_text(csv_path, "\n".join(lines) + "\n")
    png = plot_sweep(x, predicted, true, evaluated, rd.path / "plots" / "sweep.png", space.name)
    return csv_path, png
