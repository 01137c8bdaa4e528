"""Figures people would rather look at than read: curves, scatters, cell drawings."""

from __future__ import annotations

import io
import math
import shutil
import subprocess
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from search_spaces import Genotype, SearchSpace  # noqa: E402


def _save(fig: Any, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_metric_vs_size(rows: list[dict[str, Any]], out_dir: Path) -> list[Path]:
    """One figure per metric: mean ± std over seeds against training-set size."""
    metrics = [m for m in rows[0] if m in ("kendall_tau", "spearman_rho", "regret")]
    metrics += [m for m in rows[0] if m.startswith("precision_top")]
    paths = []
    for metric in metrics:
        fig, ax = plt.subplots(figsize=(6, 4))
        for name in dict.fromkeys(r["surrogate"] for r in rows):
            sizes = sorted({r["size"] for r in rows if r["surrogate"] == name})
            vals = [
                [r[metric] for r in rows if r["surrogate"] == name and r["size"] == n]
                for n in sizes
            ]
            ax.errorbar(
                sizes,
                [np.mean(v) for v in vals],
                yerr=[np.std(v) for v in vals],
                marker="o",
                capsize=3,
                label=name,
            )
        ax.set_xscale("log")
        ax.set_xticks(sorted({r["size"] for r in rows}))
        ax.get_xaxis().set_major_formatter(matplotlib.ticker.ScalarFormatter())
        ax.set_xlabel("training cells (N)")
        ax.set_ylabel(metric.replace("_", " "))
        ax.grid(alpha=0.3)
        ax.legend()
        paths.append(_save(fig, out_dir / f"{metric}_vs_size.png"))
    return paths


def plot_prediction_scatter(rows: list[dict[str, Any]], truth: Sequence[float], path: Path) -> Path:
    """Predicted against true objective, one panel per surrogate."""
    n = max(1, len(rows))
    fig, axes = plt.subplots(1, n, figsize=(3.6 * n, 3.4), squeeze=False)
    y = np.asarray(truth, dtype=float)
    for ax, r in zip(axes[0], rows):
        p = np.array([np.nan if v is None else v for v in r["predictions"]], dtype=float)
        ax.scatter(y, p, s=6, alpha=0.5)
        if y.min() > 0 and y.max() / y.min() > 10:
            ax.set_xscale("log")
        ax.set_title(f"{r['surrogate']} (N={r['size']}, tau={r['kendall_tau']:.2f})", fontsize=9)
        ax.set_xlabel("true objective")
        ax.set_ylabel("predicted")
    return _save(fig, path)


def plot_best_so_far(
    curves: dict[str, list[np.ndarray]], path: Path, target: float | None = None
) -> Path:
    """Best objective found against ground-truth evaluations: the median over runs per
    method and, shaded, the runs' interquartile range (robust to one lucky or unlucky run).
    Evaluations on a log axis (methods differ most in the first few); the objective axis
    spans what the runs hold from the tenth evaluation on, so one dreadful first cell does
    not flatten every curve (earlier values run off the top)."""
    fig, ax = plt.subplots(figsize=(9, 4))
    lows, settled = [], []
    for label, runs in curves.items():
        length = max(len(c) for c in runs)
        mat = np.full((len(runs), length), np.nan)
        for i, c in enumerate(runs):
            mat[i, : len(c)] = c
            mat[i, len(c) :] = c[-1] if len(c) else np.nan
        mat[~np.isfinite(mat)] = np.nan
        x = np.arange(1, length + 1)
        with warnings.catch_warnings():  # steps where no run has a finite value yet
            warnings.simplefilter("ignore", RuntimeWarning)
            low, median, high = np.nanquantile(mat, [0.25, 0.5, 0.75], axis=0)
        line = ax.plot(x, median, label=f"{label} (median of {len(runs)} runs)")[0]
        if len(runs) > 1:
            ax.fill_between(x, low, high, alpha=0.2, color=line.get_color())
        lows.append(np.nanmin(low) if np.isfinite(low).any() else np.nan)
        settled.append(high[min(9, length - 1)] if length else np.nan)
    if target is not None:
        ax.axhline(target, color="grey", ls="--", lw=1, label=f"target {target:.4g}")
        settled.append(target)
    lo, hi = np.nanmin(lows + [np.inf]), np.nanmax(settled + [-np.inf])
    if np.isfinite(lo) and np.isfinite(hi) and hi > lo:
        pad = 0.05 * (hi - lo)
        ax.set_ylim(lo - pad, hi + pad)
    ax.set_xscale("log")
    ax.set_xlabel("ground-truth evaluations")
    ax.set_ylabel("best objective so far")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return _save(fig, path)


def plot_refits(points: list[tuple[int, float, float]], path: Path) -> Path:
    """Predicted against true objective of promoted cells, coloured by surrogate refit."""
    fig, ax = plt.subplots(figsize=(5.5, 4))
    if points:
        rounds = np.array([p[0] for p in points])
        sc = ax.scatter(
            [p[2] for p in points], [p[1] for p in points], c=rounds, cmap="viridis", s=14
        )
        fig.colorbar(sc, ax=ax, label="round (refit)")
    else:
        ax.text(0.5, 0.5, "no surrogate predictions in this run", ha="center", va="center")
    ax.set_xlabel("true objective")
    ax.set_ylabel("predicted")
    ax.set_title("surrogate prediction vs ground truth")
    return _save(fig, path)


def _layers(nodes: list[str], edges: list[tuple[str, str]]) -> dict[str, int]:
    depth = {n: 0 for n in nodes}
    for _ in range(len(nodes)):
        for a, b in edges:
            depth[b] = max(depth[b], depth[a] + 1)
    return depth


def _positions(
    labels: dict[str, str], edges: list[tuple[str, str]]
) -> dict[str, tuple[int, float]]:
    """Each node's (column, height): columns by depth; within a column, nodes in the order
    of their inputs' mean height (fewer crossing edges), centred on 0."""
    nodes = list(labels)
    depth = _layers(nodes, edges)
    inputs: dict[str, list[str]] = {n: [] for n in nodes}
    for a, b in edges:
        inputs[b].append(a)
    pos: dict[str, tuple[int, float]] = {}
    for d in range(max(depth.values()) + 1):
        column = [n for n in nodes if depth[n] == d]
        if d:
            column.sort(key=lambda n: -float(np.mean([pos[a][1] for a in inputs[n]] or [0.0])))
        for i, n in enumerate(column):
            pos[n] = (d, (len(column) - 1) / 2 - i)
    return pos


def cell_png(space: SearchSpace, genotype: Genotype, title: str = "") -> bytes:
    """A drawing of the cell as PNG bytes: graphviz when its ``dot`` is installed, matplotlib
    otherwise (the dashboard serves these without touching the disk). Nodes are named as
    the space's graph names them (for NAS-Bench-NLP, as its key does)."""
    from matplotlib.patches import FancyArrowPatch

    labels, edges = space.graph(genotype)
    dot = shutil.which("dot")
    if dot is not None:
        src = ["digraph cell {", "rankdir=LR;", f'label="{title}";']
        src += [f'"{n}" [label="{lab}"];' for n, lab in labels.items()]
        src += [f'"{a}" -> "{b}";' for a, b in edges]
        src.append("}")
        done = subprocess.run([dot, "-Tpng"], input="\n".join(src).encode(), capture_output=True)
        if done.returncode == 0 and done.stdout:
            return done.stdout
    pos = _positions(labels, edges)
    columns = max(p[0] for p in pos.values()) + 1
    rows = max(sum(p[0] == c for p in pos.values()) for c in range(columns))
    fig, ax = plt.subplots(figsize=(max(4.0, 1.4 * columns), max(2.4, 0.9 * rows + 0.9)))
    boxes = {}
    for n, (x, y) in pos.items():
        fill = "#fde9d9" if n in ("x", "x_t") or n.startswith("h_prev") else "#dbe9f6"
        boxes[n] = ax.text(  # "n3: linear" on two lines: narrow columns, large text
            x, y, labels[n].replace(": ", "\n", 1), ha="center", va="center", fontsize=11,
            zorder=3, linespacing=1.1,
            bbox={"boxstyle": "round,pad=0.3", "fc": fill, "ec": "0.3"},
        )  # fmt: skip
    ax.set_xlim(-0.6, columns - 0.4)
    ax.set_ylim(min(p[1] for p in pos.values()) - 0.6, max(p[1] for p in pos.values()) + 0.6)
    ax.axis("off")
    if title:
        ax.set_title(title, fontsize=11)
    fig.tight_layout()
    fig.canvas.draw()  # the boxes' sizes, where the arrows stop
    for a, b in edges:
        (xa, ya), (xb, yb) = pos[a], pos[b]
        # an edge that skips columns bends, so that it does not run through the nodes between
        bend = 0.0 if xb - xa <= 1 else (0.25 if ya >= yb else -0.25)
        ax.add_patch(
            FancyArrowPatch(
                (xa, ya), (xb, yb), patchA=boxes[a].get_bbox_patch(),
                patchB=boxes[b].get_bbox_patch(), arrowstyle="-|>", mutation_scale=12,
                color="0.35", lw=1.0, connectionstyle=f"arc3,rad={bend}", zorder=2,
            )
        )  # fmt: skip
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120)
    plt.close(fig)
    return buf.getvalue()


def draw_cell(space: SearchSpace, genotype: Genotype, path: Path, title: str = "") -> Path:
    """:func:`cell_png` written to ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(cell_png(space, genotype, title))
    return path


def plot_sweep(
    x: Sequence[float],
    predicted: Sequence[float],
    truth: Sequence[float] | None,
    evaluated: list[tuple[float, float]],
    path: Path,
    xlabel: str,
) -> Path:
    """Predicted and true objective along a one-dimensional space, with the run's own
    ground-truth evaluations marked (the surrogate's scale is its own, on the right axis)."""
    fig, ax = plt.subplots(figsize=(7, 4))
    if truth is not None:
        ax.plot(x, truth, color="tab:blue", label="ground truth (sweep)")
    if evaluated:
        ex, ey = zip(*evaluated, strict=True)
        ax.scatter(ex, ey, color="tab:blue", marker="o", zorder=3, label="evaluated in the run")
    values = [v for v in (truth or []) if math.isfinite(v)] + [v for _, v in evaluated]
    if values and min(values) > 0:
        ax.set_yscale("log")  # a steep flank must not flatten the region that matters
    ax.set_xlabel(xlabel)
    ax.set_ylabel("objective (lower is better)", color="tab:blue")
    right = ax.twinx()
    right.plot(x, predicted, color="tab:orange", linestyle="--", label="surrogate prediction")
    right.set_ylabel("predicted (surrogate's scale)", color="tab:orange")
    lines = ax.get_legend_handles_labels()
    more = right.get_legend_handles_labels()
    ax.legend(lines[0] + more[0], lines[1] + more[1], loc="best", fontsize=8)
    return _save(fig, path)
