"""``evo-nas compare search``: one search configuration, run with each method and seed.

Every (method, seed) is an ordinary run directory under ``<output>/runs/``, so a killed
comparison resumes each unfinished run where it stopped and skips the finished ones.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

import numpy as np
from joblib import Parallel, delayed
from pydantic import Field, PositiveInt, field_validator, model_validator
from tqdm import tqdm

from evo_nas.config import (
    Component,
    ConfigError,
    Section,
    Seed,
    build_ground_truth,
    build_space,
    parse_config,
    read_yaml,
    validate_model,
    validated_options,
)
from evo_nas.launch import resume_search, run_search
from evo_nas.report import best_so_far
from evo_nas.rundir import RunDir, atomic_write_text


class MethodEntry(Section):
    """One way to search: a surrogate (or none) and overrides of the search sections."""

    label: str
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

    name: str = "compare_search"
    output_dir: Path = Path("runs")
    base: Path
    methods: list[MethodEntry] = Field(min_length=1)
    seeds: list[Seed] = Field(default_factory=lambda: [0, 1, 2, 3, 4], min_length=1)
    target: float | None = None
    target_quantile: float = Field(0.01, gt=0, lt=1)
    n_jobs: PositiveInt = 1

    @model_validator(mode="after")
    def _unique(self) -> SearchCompareConfig:
        labels = [m.label for m in self.methods]
        dup = {x for x in labels if labels.count(x) > 1}
        if dup:
            raise ValueError(f"methods: label {sorted(dup)[0]!r} is used twice")
        return self


def load_search_compare(path: Path | str) -> tuple[SearchCompareConfig, dict[str, Any], Path]:
    """The comparison config, the base search config's raw mapping, and its folder."""
    here = Path(path).parent.resolve()
    cfg = validate_model(SearchCompareConfig, read_yaml(path))
    if not cfg.output_dir.is_absolute():
        cfg.output_dir = (here / cfg.output_dir).resolve()
    base_path = cfg.base if cfg.base.is_absolute() else (here / cfg.base).resolve()
    base = read_yaml(base_path)
    if not isinstance(base, dict):
        raise ConfigError(f"base: {base_path} must hold a search config mapping")
    return cfg, base, base_path.parent


def run_config(
    cfg: SearchCompareConfig, base: dict[str, Any], method: MethodEntry, seed: int
) -> dict[str, Any]:
    """The search config of one (method, seed) run."""
    out = copy.deepcopy(base)
    out["name"] = f"{method.label}__s{seed}"
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
    from evo_nas.plots import plot_best_so_far

    out = Path(cfg.output_dir) / cfg.name
    configs = {(m.label, s): run_config(cfg, base, m, s) for m in cfg.methods for s in cfg.seeds}
    first = None
    for (label, _), c in configs.items():  # validate everything before running anything
        try:
            parsed = parse_config(c, base_dir)
            for section in ("space", "ground_truth", "surrogate"):
                comp = getattr(parsed, section)
                if comp is not None:
                    validated_options(section, comp)
        except ConfigError as e:
            raise ConfigError(f"methods[{label}]: {e}") from None
        first = first or parsed
    target = cfg.target
    if target is None and first is not None:
        space = build_space(first)
        gt = build_ground_truth(first, space)
        try:
            values = [r.objective for r in gt.evaluate(gt.genotypes())]
        except NotImplementedError:
            values = []
        finite = np.array([v for v in values if math.isfinite(v)])
        target = float(np.quantile(finite, cfg.target_quantile)) if finite.size else None
    out.mkdir(parents=True, exist_ok=True)
    bar = tqdm(total=len(configs), desc="searches", disable=not progress)
    jobs = (delayed(_run_one)(c, base_dir) for c in configs.values())
    for _ in Parallel(n_jobs=cfg.n_jobs, return_as="generator")(jobs):
        bar.update(1)
    bar.close()
    curves: dict[str, list[np.ndarray]] = {}
    rows = []
    for (label, seed), c in configs.items():
        curve = best_so_far(Path(c["output_dir"]) / c["name"])
        curves.setdefault(label, []).append(curve)
        reach = evaluations_to_reach(curve, target) if target is not None else None
        rows.append(
            {
                "method": label,
                "seed": seed,
                "final_best": float(curve[-1]) if curve.size else math.inf,
                "evaluations": int(curve.size),
                "evals_to_target": reach,
            }
        )
    cols = ["method", "seed", "final_best", "evaluations", "evals_to_target"]
    csv_lines = [",".join(cols)] + [
        ",".join("" if r[c] is None else str(r[c]) for c in cols) for r in rows
    ]
    atomic_write_text(out / "results.csv", "\n".join(csv_lines) + "\n")
    atomic_write_text(out / "summary.md", search_summary(rows, target))
    plot_best_so_far(curves, out / "best_so_far.png", target)
    return out


def search_summary(rows: list[dict[str, Any]], target: float | None) -> str:
    """Markdown: final best (mean ± std, median) and evaluations to reach the target."""
    lines = [
        f"target objective: {'n/a' if target is None else f'{target:.6g}'}",
        "",
        "| method | runs | final best (mean ± std) | median | evaluations to target | reached |",
        "|---|---|---|---|---|---|",
    ]
    for label in dict.fromkeys(r["method"] for r in rows):
        rs = [r for r in rows if r["method"] == label]
        best = np.array([r["final_best"] for r in rs])
        reach = [r["evals_to_target"] for r in rs if r["evals_to_target"] is not None]
        reach_txt = f"{np.mean(reach):.1f} ± {np.std(reach):.1f}" if reach else "never"
        lines.append(
            f"| {label} | {len(rs)} | {best.mean():.4g} ± {best.std():.3g} | "
            f"{np.median(best):.4g} | {reach_txt} | {len(reach)}/{len(rs)} |"
        )
    return "\n".join(lines) + "\n"
