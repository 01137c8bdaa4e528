"""``evo-nas compare search``: one search configuration, run with each method and seed.

Every (method, seed) is an ordinary run directory under ``<output>/runs/``, so a killed
comparison resumes each unfinished run where it stopped and skips the finished ones.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from joblib import Parallel, delayed
from pydantic import Field, field_validator, model_validator

from evo_nas.compare.predict import parallel_jobs
from evo_nas.config.components import Component, Section, validated_options
from evo_nas.config.errors import ConfigError
from evo_nas.config.schema import (
    FilePath,
    Name,
    SearchConfig,
    build_ground_truth,
    build_space,
    parse_config,
    read_yaml,
    validate_model,
)
from evo_nas.reports.summary import best_so_far, surrogate_costs
from evo_nas.rundir.files import RunDir, atomic_write_text
from evo_nas.rundir.progress import Progress, duration
from evo_nas.search.launch import resume_search, run_search
from evo_nas_common.bounds import Count, Seed


class MethodEntry(Section):
    """One way to search: a surrogate (or none) and overrides of the search sections."""

    label: Name
    surrogate: Component | None = None
    search: dict[str, Any] = Field(default_factory=dict)
    surrogate_loop: dict[str, Any] = Field(default_factory=dict)

    @field_validator("surrogate", mode="before")
    @classmethod
    def _none(cls, value: Any) -> Any:
        if value in (None, "none") or (isinstance(value, dict) and value.get("name") == "none"):
            return None
        return {"name": value} if isinstance(value, str) else value


class SearchCompareConfig(Section):
    """A whole ``compare search`` YAML."""

    name: Name = "compare_search"
    output_dir: FilePath = Path("runs")
    base: FilePath
    methods: list[MethodEntry] = Field(min_length=1)
    seeds: list[Seed] = Field(default_factory=lambda: [0, 1, 2, 3, 4], min_length=1)
    #: the objective to reach; null: each of ``target_quantiles`` of the table's objectives
    target: float | None = None
    target_quantiles: list[Annotated[float, Field(gt=0, lt=1)]] = Field(
        default_factory=lambda: [0.001, 0.01], min_length=1, max_length=10
    )
    #: a method whose median evaluations to the target the others are divided by
    reference: str | None = None
    n_jobs: Count = 1

    @model_validator(mode="after")
    def _unique(self) -> SearchCompareConfig:
        labels = [m.label for m in self.methods]
        dup = {x for x in labels if labels.count(x) > 1}
        if dup:
            raise ValueError(f"methods: label {sorted(dup)[0]!r} is used twice")
        if self.reference is not None and self.reference not in labels:
            raise ValueError(f"reference: {self.reference!r} is not a method label")
        return self


def load_search_compare(path: Path | str) -> tuple[SearchCompareConfig, dict[str, Any], Path]:
    """The comparison config, the base search config's raw mapping, and its folder."""
    here = Path(path).parent.resolve()
    cfg = validate_model(SearchCompareConfig, read_yaml(path))
    if not cfg.output_dir.is_absolute():
        cfg.output_dir = (here / cfg.output_dir).resolve()
    base_path = cfg.base if cfg.base.is_absolute() else (here / cfg.base).resolve()
    try:
        base = read_yaml(base_path)
    except ConfigError as e:
        raise ConfigError(f"base: {e}") from None
    if not isinstance(base, dict):
        raise ConfigError(f"base: {base_path} must hold a search config mapping")
    return cfg, base, base_path.parent


def run_name(label: str, seed: int) -> str:
    """The run directory of one (method, seed), under the comparison's ``runs/`` folder."""
    return f"{label}__s{seed}"


def method_of(name: str) -> str | None:
    """The method label of a run directory that :func:`run_name` named (None otherwise)."""
    label, sep, seed = name.rpartition("__s")
    return label if sep and label and seed.isdigit() else None


def run_config(
    cfg: SearchCompareConfig, base: dict[str, Any], method: MethodEntry, seed: int
) -> dict[str, Any]:
    """The search config of one (method, seed) run."""
    out = copy.deepcopy(base)
    out["name"] = run_name(method.label, seed)
    out["output_dir"] = str(Path(cfg.output_dir) / cfg.name / "runs")
    out["seed"] = seed
    out["surrogate"] = None if method.surrogate is None else method.surrogate.model_dump()
    for section in ("search", "surrogate_loop"):
        out[section] = {**out.get(section, {}), **getattr(method, section)}
    out.setdefault("logging", {})["progress"] = False
    return out


def _run_one(config: dict[str, Any], base_dir: Path) -> str:
    cfg = parse_config(config, base_dir)
    rd = RunDir(Path(cfg.output_dir) / cfg.name)
    if rd.exists():
        if any(e.get("event") == "done" for e in rd.read_events()):
            return cfg.name
        resume_search(rd.path, progress=False)
    else:
        run_search(cfg, progress=False)
    return cfg.name


def evaluations_to_reach(curve: np.ndarray, target: float) -> int | None:
    """The first evaluation count at which the best so far is at or below ``target``."""
    hit = np.nonzero(curve <= target)[0]
    return int(hit[0]) + 1 if hit.size else None


def run_search_comparison(
    cfg: SearchCompareConfig, base: dict[str, Any], base_dir: Path, progress: bool = True
) -> Path:
    """Run every (method, seed) search; write results.csv, summary.md and the curves plot."""
    from evo_nas.reports.plots import plot_best_so_far

    out = Path(cfg.output_dir) / cfg.name
    configs = {(m.label, s): run_config(cfg, base, m, s) for m in cfg.methods for s in cfg.seeds}
    targets = _targets(cfg, _checked(configs, base_dir))
    out.mkdir(parents=True, exist_ok=True)
    bar = Progress("searches", len(configs), unit="search", show=progress)
    jobs = (delayed(_run_one)(c, base_dir) for c in configs.values())
    n_jobs = parallel_jobs(cfg.n_jobs, len(configs))
    try:
        for name in Parallel(n_jobs=n_jobs, return_as="generator")(jobs):
            bar.status(f"last: {name}", refresh=False)
            bar.update(1)
    finally:
        bar.close()
    curves: dict[str, list[np.ndarray]] = {}
    rows = []
    for (label, seed), c in configs.items():
        curve = best_so_far(Path(c["output_dir"]) / c["name"])
        curves.setdefault(label, []).append(curve)
        rows.append(_result_row(label, seed, curve, targets, Path(c["output_dir"]) / c["name"]))
    cols = list(rows[0]) if rows else []
    csv_lines = [",".join(cols)] + [
        ",".join("" if r[c] is None else str(r[c]) for c in cols) for r in rows
    ]
    atomic_write_text(out / "results.csv", "\n".join(csv_lines) + "\n")
    summary = "\n".join(
        f"## {name}\n\n" + search_summary(rows, value, cfg.reference, f"evals_to_{name}")
        for name, value in targets.items()
    )
    atomic_write_text(out / "summary.md", summary)
    plot_best_so_far(curves, out / "best_so_far.png", min(targets.values(), default=None))
    return out


def _checked(configs: dict[tuple[str, int], dict[str, Any]], base_dir: Path) -> SearchConfig:
    """Validate every search's config (and its components' options) before running any;
    the first one parsed (every method shares its space and ground truth)."""
    first = None
    for (label, _), c in configs.items():
        try:
            parsed = parse_config(c, base_dir)
            for section in ("space", "ground_truth", "surrogate"):
                comp = getattr(parsed, section)
                if comp is not None:
                    validated_options(section, comp)
        except ConfigError as e:
            raise ConfigError(f"methods[{label}]: {e}") from None
        first = first or parsed
    assert first is not None  # methods and seeds are never empty
    return first


def _result_row(
    label: str, seed: int, curve: np.ndarray, targets: dict[str, float], run_dir: Path
) -> dict[str, Any]:
    """One search's line of results.csv: its final best, evaluations, evaluations to each
    target (None: never reached) and the surrogate's seconds."""
    return {
        "method": label,
        "seed": seed,
        "final_best": float(curve[-1]) if curve.size else math.inf,
        "evaluations": int(curve.size),
        **{
            f"evals_to_{name}": evaluations_to_reach(curve, value)
            for name, value in targets.items()
        },
        "surrogate_s": round(surrogate_costs(run_dir)[0], 2),
    }


def _targets(cfg: SearchCompareConfig, first: SearchConfig) -> dict[str, float]:
    """Name -> objective to reach: ``target`` when given, else each quantile of the table's
    finite objectives (``best_0.1pct``, ``best_1pct``, ...; none without a table)."""
    if cfg.target is not None:
        return {"target": cfg.target}
    space = build_space(first)
    gt = build_ground_truth(first, space)
    try:
        values = [r.objective for r in gt.evaluate(gt.genotypes())]
    except NotImplementedError:
        return {}
    finite = np.array([v for v in values if math.isfinite(v)])
    if not finite.size:
        return {}
    return {f"best_{100 * q:g}pct": float(np.quantile(finite, q)) for q in cfg.target_quantiles}


def median_evaluations(reach: list[int | None]) -> tuple[float, float, float]:
    """Median and quartiles of evaluations to the target; a run that never reached it counts
    as more than any that did (inf), so the median is finite while half the runs reach it."""
    values = sorted(math.inf if r is None else float(r) for r in reach)

    def quantile(q: float) -> float:  # linear between neighbours; inf if one of them is
        pos = q * (len(values) - 1)
        lo, hi = values[math.floor(pos)], values[math.ceil(pos)]
        return math.inf if math.isinf(hi) else lo + (hi - lo) * (pos - math.floor(pos))

    return quantile(0.5), quantile(0.25), quantile(0.75)


def search_summary(
    rows: list[dict[str, Any]],
    target: float | None,
    reference: str | None = None,
    column: str = "evals_to_target",
) -> str:
    """Markdown: evaluations to reach the target (median, quartiles, share reached; as a
    multiple of the reference method's median), final best, surrogate wall time; ``column``
    names the rows' evaluations to this target."""
    labels = list(dict.fromkeys(r["method"] for r in rows))
    medians = {
        label: median_evaluations([r[column] for r in rows if r["method"] == label])
        for label in labels
    }
    ref = medians[reference][0] if reference in medians else None
    lines = [
        f"target objective: {'n/a' if target is None else f'{target:.6g}'}"
        + (f"; medians relative to {reference}" if ref is not None else ""),
        "",
        "| method | runs | evaluations to target: median [quartiles] | reached | "
        + ("× reference | " if ref is not None else "")
        + "final best (mean ± std) | surrogate time per run (median) |",
        "|---|---|---|---|" + ("---|" if ref is not None else "") + "---|---|",
    ]
    for label in labels:
        rs = [r for r in rows if r["method"] == label]
        best = np.array([r["final_best"] for r in rs])
        reached = sum(r[column] is not None for r in rs)
        median, q1, q3 = medians[label]
        ratio = f"{median / ref:.2f} | " if ref is not None and math.isfinite(ref) else ""
        if ref is not None and not ratio:
            ratio = "n/a | "
        seconds = np.median([r.get("surrogate_s") or 0.0 for r in rs])
        lines.append(
            f"| {label} | {len(rs)} | {_count(median)} [{_count(q1)}, {_count(q3)}] | "
            f"{reached}/{len(rs)} | {ratio}{best.mean():.4g} ± {best.std():.3g} | "
            f"{duration(seconds)} |"
        )
    return "\n".join(lines) + "\n"


def _count(value: float) -> str:
    return f"{value:g}" if math.isfinite(value) else "not reached"
