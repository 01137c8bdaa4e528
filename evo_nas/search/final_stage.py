"""The final stage: the top-k cells of a finished search, retrained with another setting.

Typically the ``paper`` preset of the PTB trainer on a GPU, with several seeds: the "full
trainer for the top candidates" step. Each (cell, seed) result is appended to ``final.jsonl``
as soon as it exists, so a resumed run retrains only what is missing; ``final.json`` holds
the summary (validation and test perplexity, mean and spread over seeds, per cell).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from evo_nas.config.schema import SearchConfig, build_final_ground_truth
from evo_nas.execution.evaluation import Record, isolated_rng
from evo_nas.rundir.files import RunDir, atomic_write_text, open_append, to_jsonable
from ground_truths import GroundTruth, Result
from search_spaces import SearchSpace


def _done(path: Path) -> dict[tuple[str, int], dict[str, Any]]:
    out = {}
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                break  # a line cut by a kill
            out[(row["key"], row["seed"])] = row
    return out


def _stat(values: list[float]) -> dict[str, float | None]:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    if not finite:
        return {"mean": None, "std": None}
    return {"mean": float(np.mean(finite)), "std": float(np.std(finite))}


def _top_records(records: list[Record], top_k: int) -> list[Record]:
    """The ``top_k`` records of finite objective, best first (ties: the earlier evaluation)."""
    finite = [r for r in records if math.isfinite(r["result"].objective)]
    return sorted(finite, key=lambda r: (r["result"].objective, r["index"]))[:top_k]


def _retrain(gt: GroundTruth, space: SearchSpace, record: Record, seed: int) -> dict[str, Any]:
    """The ``final.jsonl`` row of ``record``'s cell retrained by ``gt`` under ``seed``.

    A training that raises gives a failed row: a broken training must not lose the others.
    """
    genotype = space.from_json(record["genotype"])
    try:
        with isolated_rng(seed):
            result = gt.evaluate_one(genotype)
    except Exception as e:
        result = Result.failed(f"{type(e).__name__}: {e}")
    return {
        "key": record["key"],
        "seed": seed,
        "genotype": record["genotype"],
        "search_objective": record["result"].objective,
        "objective": result.objective,
        "status": result.status,
        "message": result.message,
        "cost_s": result.cost_s,
        "metrics": result.metrics,
    }


def _append_row(log: Path, row: dict[str, Any]) -> None:
    """Append ``row`` to ``log`` and sync it to disk, so a kill loses at most this row."""
    with open_append(log) as fh:
        fh.write(json.dumps(to_jsonable(row)) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def _retrain_missing(
    cfg: SearchConfig,
    space: SearchSpace,
    top: list[Record],
    run_dir: RunDir,
    done: dict[tuple[str, int], dict[str, Any]],
    emit: Callable[[dict[str, Any]], None],
) -> None:
    """Retrain each (cell of ``top``, seed) not yet in ``done``, seed by seed; adds its rows.

    A seed's ground truth is built only when that seed has a cell left to retrain.
    """
    assert cfg.final is not None
    log = run_dir.path / "final.jsonl"
    for seed in cfg.final.seeds:
        todo = [r for r in top if (r["key"], seed) not in done]
        if not todo:
            continue
        gt = build_final_ground_truth(cfg, space, seed)
        gt.attach(run_dir.path / "final")
        for record in todo:
            row = _retrain(gt, space, record, seed)
            _append_row(log, row)
            done[(record["key"], seed)] = to_jsonable(row)
            emit(
                {
                    "event": "final",
                    **{k: row[k] for k in ("key", "seed", "status")},
                    "objective": row["objective"],
                }
            )


def _cell_summary(record: Record, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """One cell's entry of ``final.json``: its seeds' rows as mean and spread per measure."""

    def metric(name: str) -> list[float]:
        vals = [r["metrics"].get(name) for r in rows]
        return [float(v) for v in vals if isinstance(v, (int, float))]

    objectives = [float(r["objective"]) for r in rows if r["objective"] != "inf"]
    return {
        "key": record["key"],
        "genotype": record["genotype"],
        "search_objective": record["result"].objective,
        "seeds": [r["seed"] for r in rows],
        "statuses": [r["status"] for r in rows],
        "objective": _stat(objectives),
        "val_ppl": _stat(metric("val_ppl")),
        "test_ppl": _stat(metric("test_ppl")),
    }


def run_final_stage(
    cfg: SearchConfig,
    space: SearchSpace,
    records: list[Record],
    run_dir: RunDir,
    emit: Callable[[dict[str, Any]], None],
) -> dict[str, Any]:
    """Retrain the best of the search's ``records``; returns (and writes) the summary.

    ``emit`` records a ``final`` event per (cell, seed).
    """
    assert cfg.final is not None
    top = _top_records(records, cfg.final.top_k)
    done = _done(run_dir.path / "final.jsonl")
    _retrain_missing(cfg, space, top, run_dir, done, emit)
    cells = []
    for record in top:
        rows = [done[(record["key"], s)] for s in cfg.final.seeds if (record["key"], s) in done]
        cells.append(_cell_summary(record, rows))
    summary = {"ground_truth": cfg.final.ground_truth.model_dump(), "cells": cells}
    atomic_write_text(run_dir.path / "final.json", json.dumps(to_jsonable(summary), indent=2))
    return summary
