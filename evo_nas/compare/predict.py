"""``evo-nas compare predict``: surrogates head to head on one fixed test set.

For each surrogate, training-set size and seed, fit on a training set and predict the same
test set. Training sets of increasing size are prefixes of one random order per seed, so the
sizes are comparable. Each finished (surrogate, size, seed) cell of the grid is saved at once,
so a killed comparison resumes by skipping what is done.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import time
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from joblib import Parallel, delayed
from pydantic import Field, model_validator

from evo_nas.compare.metrics import ranking_metrics
from evo_nas.config.components import Component, Section, construct, resolve_component
from evo_nas.config.errors import ConfigError
from evo_nas.config.schema import FilePath, Name, read_yaml, validate_model
from evo_nas.execution.evaluation import isolated_rng
from evo_nas.rundir.files import atomic_write_text
from evo_nas.rundir.progress import Progress
from evo_nas_common.bounds import Count, Seed, Size, SizeOrZero
from ground_truths import GroundTruth
from ground_truths.table import TableError, parse_genotype_cell
from search_spaces import Genotype, SearchSpace
from search_spaces.pool import PoolSpace


class SurrogateEntry(Component):
    """A surrogate to compare; ``label`` tells apart two settings of one surrogate."""

    label: Name | None = None

    @property
    def tag(self) -> str:
        return self.label or self.name


class TestSetSection(Section):
    """The fixed test set: uniform over the table's cells, or mutants of good cells."""

    kind: Literal["uniform", "mutants"] = "uniform"
    size: Size = 1000
    seed: Seed = 12345
    parents_percent: Annotated[float, Field(gt=0, le=100)] = 5.0


class SplitSection(Section):
    """An explicit split to replay: train/test files, or one file with a split column."""

    train: FilePath | None = None
    test: FilePath | None = None
    file: FilePath | None = None
    column: str = "split"

    @model_validator(mode="after")
    def _one_form(self) -> SplitSection:
        if self.file is None and (self.train is None or self.test is None):
            raise ValueError("give both train and test, or file (with a split column)")
        return self


class PredictCompareConfig(Section):
    """A whole ``compare predict`` YAML."""

    name: Name = "compare_predict"
    output_dir: FilePath = Path("runs")
    space: Component
    ground_truth: Component
    surrogates: list[SurrogateEntry] = Field(min_length=1)
    #: training-set sizes; 0 ranks the test set unfitted (surrogates that rank zero-shot)
    sizes: list[SizeOrZero] = Field(default_factory=lambda: [10, 25, 50, 100], min_length=1)
    seeds: list[Seed] = Field(default_factory=lambda: [0, 1, 2, 3, 4], min_length=1)
    test: TestSetSection = Field(default_factory=TestSetSection)
    split: SplitSection | None = None
    train_ok_only: bool = True
    top_percents: list[Annotated[float, Field(gt=0, le=100)]] = Field(
        default_factory=lambda: [10.0], min_length=1
    )
    scatter_size: Size | None = None
    #: parallel jobs (at most the cores and the jobs there are)
    n_jobs: Count = 1
    max_train_cells: SizeOrZero = 0

    @model_validator(mode="before")
    @classmethod
    def _names(cls, data: Any) -> Any:
        if isinstance(data, dict):
            data = dict(data)
            for key in ("space", "ground_truth"):
                if isinstance(data.get(key), str):
                    data[key] = {"name": data[key]}
            if isinstance(data.get("surrogates"), list):
                data["surrogates"] = [
                    {"name": s} if isinstance(s, str) else s for s in data["surrogates"]
                ]
        return data

    @model_validator(mode="after")
    def _unique_labels(self) -> PredictCompareConfig:
        tags = [s.tag for s in self.surrogates]
        dup = {t for t in tags if tags.count(t) > 1}
        if dup:
            raise ValueError(f"surrogates: label {sorted(dup)[0]!r} is used twice; set label:")
        return self


def load_predict_config(path: Path | str) -> PredictCompareConfig:
    """Read and validate a ``compare predict`` YAML; paths relative to the file."""
    base = Path(path).parent.resolve()
    cfg = validate_model(PredictCompareConfig, read_yaml(path))
    if not cfg.output_dir.is_absolute():
        cfg.output_dir = (base / cfg.output_dir).resolve()
    resolve_component("space", cfg.space, base)
    resolve_component("ground_truth", cfg.ground_truth, base)
    for s in cfg.surrogates:
        resolve_component("surrogate", s, base)
    if cfg.split is not None:
        for attr in ("train", "test", "file"):
            p = getattr(cfg.split, attr)
            if p is not None and not p.is_absolute():
                setattr(cfg.split, attr, (base / p).resolve())
    return cfg


def parallel_jobs(n_jobs: int, jobs: int) -> int:
    """Processes for ``jobs`` jobs: ``n_jobs``, but no more than the jobs and the cores (more
    would only wait on each other, each holding a copy of the models in memory)."""
    return max(1, min(n_jobs, jobs, os.cpu_count() or 1))


# -- data ------------------------------------------------------------------------------------
Cells = list[tuple[Genotype, float]]


def _read_cells(path: Path, space: SearchSpace) -> list[tuple[Genotype, dict[str, Any]]]:
    """Rows of a CSV/JSONL split file: the genotype and the rest of the row."""
    if not path.is_file():
        raise ConfigError(f"split: {path}: file not found")
    try:
        if path.suffix.lower() in (".jsonl", ".ndjson"):
            lines = path.read_text(encoding="utf-8").splitlines()
            numbered = [(n, json.loads(ln)) for n, ln in enumerate(lines, start=1) if ln.strip()]
        else:
            with path.open(newline="", encoding="utf-8") as fh:
                numbered = list(enumerate(csv.DictReader(fh), start=2))
    except (ValueError, csv.Error, RecursionError, OSError) as e:
        raise ConfigError(f"split: {path}: not a CSV or JSONL table ({str(e)[:200]})") from None
    out = []
    for n, row in numbered:
        if not isinstance(row, dict) or "genotype" not in row:
            raise ConfigError(f"split: {path} row {n}: no 'genotype' column")
        try:
            out.append((space.validate(parse_genotype_cell(row["genotype"])), row))
        except ValueError as e:
            raise ConfigError(f"split: {path} row {n}: genotype: {e}") from None
    return out


def _with_objectives(
    genotypes: list[Genotype], gt: GroundTruth, rows: list[dict[str, Any]] | None = None
) -> Cells:
    """Objectives from the rows when they carry one, else from the ground truth."""
    if rows is not None and all(r.get("objective") not in (None, "") for r in rows):
        try:
            return [(g, float(r["objective"])) for g, r in zip(genotypes, rows)]
        except (TypeError, ValueError, OverflowError):
            raise ConfigError("split: an objective of the split is not a number") from None
    return [(g, r.objective) for g, r in zip(genotypes, gt.evaluate(genotypes))]


def _mutant_test_set(
    space: SearchSpace, members: Cells, cfg: TestSetSection, rng: np.random.Generator
) -> Cells:
    ok = sorted((c for c in members if math.isfinite(c[1])), key=lambda c: c[1])
    n_parents = max(1, int(round(len(ok) * cfg.parents_percent / 100)))
    parents = ok[:n_parents]
    pool = PoolSpace(space, [g for g, _ in members])
    by_key = {space.key(g): (g, y) for g, y in ok}
    taken = {space.key(g) for g, _ in parents}
    out: Cells = []
    for _ in range(50 * cfg.size):
        if len(out) == cfg.size:
            break
        parent = parents[int(rng.integers(len(parents)))][0]
        child = pool.mutate(parent, rng)
        k = space.key(child)
        if k in by_key and k not in taken:
            taken.add(k)
            out.append(by_key[k])
    if len(out) < cfg.size:
        raise ConfigError(f"test.size: only {len(out)} distinct OK mutants of good cells exist")
    return out


def draw_sets(
    cfg: PredictCompareConfig, space: SearchSpace, gt: GroundTruth
) -> tuple[Cells, dict[int, Cells]]:
    """The fixed test set and, per seed, the ordered training pool (prefixes are the sets)."""
    if cfg.split is not None:
        if cfg.split.file is not None:
            rows = _read_cells(cfg.split.file, space)
            parts = {"train": [], "test": []}
            for g, row in rows:
                part = str(row.get(cfg.split.column, "")).strip()
                if part not in parts:
                    raise ConfigError(f"split: {cfg.split.file}: '{cfg.split.column}' is {part!r}")
                parts[part].append((g, row))
        else:
            parts = {
                "train": _read_cells(cfg.split.train, space),
                "test": _read_cells(cfg.split.test, space),
            }
        test = _with_objectives([g for g, _ in parts["test"]], gt, [r for _, r in parts["test"]])
        train = _with_objectives([g for g, _ in parts["train"]], gt, [r for _, r in parts["train"]])
        test = [c for c in test if math.isfinite(c[1])]
        return test, {seed: list(train) for seed in cfg.seeds}
    try:
        genotypes = gt.genotypes()
    except NotImplementedError:
        raise ConfigError(
            f"ground_truth: '{cfg.ground_truth.name}' cannot list its cells; give split files"
        ) from None
    cells = _with_objectives(genotypes, gt)
    rng = np.random.default_rng(cfg.test.seed)
    ok_idx = [i for i, (_, y) in enumerate(cells) if math.isfinite(y)]
    if cfg.test.kind == "uniform":
        if cfg.test.size >= len(ok_idx):
            raise ConfigError(f"test.size: {cfg.test.size} but only {len(ok_idx)} OK cells")
        test = [cells[i] for i in rng.choice(ok_idx, size=cfg.test.size, replace=False)]
    else:
        test = _mutant_test_set(space, cells, cfg.test, rng)
    test_keys = {space.key(g) for g, _ in test}
    pool = [c for c in cells if space.key(c[0]) not in test_keys]
    if cfg.train_ok_only:
        pool = [c for c in pool if math.isfinite(c[1])]
    if max(cfg.sizes) > len(pool):
        raise ConfigError(f"sizes: {max(cfg.sizes)} cells asked, {len(pool)} left for training")
    orders = {}
    for seed in cfg.seeds:
        perm = np.random.default_rng(seed).permutation(len(pool))[: max(cfg.sizes)]
        orders[seed] = [pool[i] for i in perm]
    return test, orders


# -- the grid ------------------------------------------------------------------------------
def _cell_name(tag: str, size: int, seed: int) -> str:
    return f"{tag}__n{size}__s{seed}.json"


def _run_cell(
    space: SearchSpace,
    entry: SurrogateEntry,
    train: Cells,
    test: Cells,
    size: int,
    seed: int,
    top_percents: list[float],
) -> dict[str, Any]:
    """Fit one surrogate on one training set, predict the test set, score it."""
    surrogate = construct("surrogate", entry, space=space, seed=seed)
    with isolated_rng(seed):
        start = time.perf_counter()
        if size:
            genotypes, objectives = zip(*train[:size])
            surrogate.fit(list(genotypes), list(objectives))
        fit_s = time.perf_counter() - start
        start = time.perf_counter()
        pred = np.asarray(surrogate.predict([g for g, _ in test]), dtype=float)
        predict_s = time.perf_counter() - start
    truth = np.array([y for _, y in test])
    return {
        "surrogate": entry.tag,
        "size": size,
        "seed": seed,
        **ranking_metrics(truth, pred, top_percents),
        "fit_s": fit_s,
        "predict_s_per_cell": predict_s / len(test),
        "predictions": [None if not math.isfinite(p) else float(p) for p in pred],
    }


def run_predict_comparison(cfg: PredictCompareConfig, progress: bool = True) -> Path:
    """Run (or finish) the grid; write results.csv, predictions.csv, summary.md and plots."""
    from evo_nas.reports.plots import plot_metric_vs_size, plot_prediction_scatter

    out = Path(cfg.output_dir) / cfg.name
    cells_dir = out / "cells"
    cells_dir.mkdir(parents=True, exist_ok=True)
    space = construct("space", cfg.space)
    gt = construct("ground_truth", cfg.ground_truth, space=space)
    zero_shot = set()
    for s in cfg.surrogates:  # fail on a bad surrogate before any work
        if construct("surrogate", s, space=space, seed=0).capabilities.ranks_unfitted:
            zero_shot.add(s.tag)
    sized = [(e, size) for e in cfg.surrogates for size in cfg.sizes if size or e.tag in zero_shot]
    try:
        test, orders = draw_sets(cfg, space, gt)
    except TableError as e:
        raise ConfigError(str(e)) from None
    atomic_write_text(
        out / "test_set.csv", _csv_text(["key", "objective"], [[space.key(g), y] for g, y in test])
    )
    grid = [
        (entry, size, seed)
        for entry in cfg.surrogates
        for seed in cfg.seeds
        for size in cfg.sizes
        if (entry, size) in sized and not (cells_dir / _cell_name(entry.tag, size, seed)).exists()
    ]
    total = len(sized) * len(cfg.seeds)
    bar = Progress("grid cells", total, unit="cell", initial=total - len(grid), show=progress)
    jobs = (
        delayed(_run_cell)(space, e, orders[seed], test, size, seed, cfg.top_percents)
        for e, size, seed in grid
    )
    try:
        n_jobs = parallel_jobs(cfg.n_jobs, len(grid))
        for row in Parallel(n_jobs=n_jobs, return_as="generator")(jobs):
            name = _cell_name(row["surrogate"], row["size"], row["seed"])
            atomic_write_text(cells_dir / name, json.dumps(row))
            bar.status(f"last: {row['surrogate']} N={row['size']} seed {row['seed']}", False)
            bar.update(1)
    finally:
        bar.close()
    rows = [
        json.loads((cells_dir / _cell_name(e.tag, size, seed)).read_text())
        for e, size in sized
        for seed in cfg.seeds
    ]
    _write_outputs(out, rows, test, space, cfg)
    plot_metric_vs_size(rows, out / "plots")
    scatter_size = cfg.scatter_size or max(cfg.sizes)
    plot_prediction_scatter(
        [r for r in rows if r["size"] == scatter_size and r["seed"] == cfg.seeds[0]],
        [y for _, y in test],
        out / "plots" / f"scatter_n{scatter_size}.png",
    )
    return out


def _csv_text(header: list[str], rows: list[list[Any]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue()


METRICS = ["kendall_tau", "spearman_rho", "pearson_ranks", "regret"]


def _write_outputs(
    out: Path, rows: list[dict[str, Any]], test: Cells, space: SearchSpace, cfg: Any
) -> None:
    metric_cols = METRICS + [f"precision_top{p:g}" for p in cfg.top_percents]
    cols = ["surrogate", "size", "seed", *metric_cols, "fit_s", "predict_s_per_cell"]
    atomic_write_text(out / "results.csv", _csv_text(cols, [[r[c] for c in cols] for r in rows]))
    keys = [space.key(g) for g, _ in test]
    preds = [
        [r["surrogate"], r["size"], r["seed"], k, y, p]
        for r in rows
        for k, (_, y), p in zip(keys, test, r["predictions"])
    ]
    header = ["surrogate", "size", "seed", "key", "objective", "predicted"]
    atomic_write_text(out / "predictions.csv", _csv_text(header, preds))
    atomic_write_text(out / "summary.md", summary_table(rows, metric_cols + ["fit_s"]))


def summary_table(rows: list[dict[str, Any]], metrics: list[str]) -> str:
    """Markdown: one row per (surrogate, size), each metric as mean ± std over seeds."""
    groups: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["surrogate"], r["size"]), []).append(r)
    head = "| surrogate | N | seeds | " + " | ".join(metrics) + " |"
    out = [head, "|" + "---|" * (3 + len(metrics))]
    for (name, size), rs in groups.items():
        cells = []
        for m in metrics:
            v = np.array([r[m] for r in rs], dtype=float)
            cells.append(f"{v.mean():.3f} ± {v.std():.3f}")
        out.append(f"| {name} | {size} | {len(rs)} | " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"
