"""The run directory: resolved config, event log, evaluation table, best cell, checkpoint.

Files are written so that a SIGKILL at any instant leaves a resumable directory: the
checkpoint and ``best.json`` are replaced atomically (temp file + rename), and the append-only
logs are cut back to what the checkpoint knows when a run resumes.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import pickle
import tempfile
from pathlib import Path
from typing import Any

import yaml

EVALUATION_COLUMNS = [
    "index",
    "key",
    "genotype",
    "objective",
    "status",
    "cost_s",
    "phase",
    "round",
    "predicted",
    "message",
    "metrics",
]


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old or the new file, never a part."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    """Text version of :func:`atomic_write_bytes`."""
    atomic_write_bytes(path, text.encode())


def _json_float(x: Any) -> Any:
    if isinstance(x, float) and not math.isfinite(x):
        return "inf" if x > 0 else ("-inf" if x < 0 else "nan")
    return x


def to_jsonable(obj: Any) -> Any:
    """Replace non-finite floats (not valid JSON) by strings, recursively."""
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    return _json_float(obj)


class RunDir:
    """Reads and writes one run's files."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.config_path = self.path / "config.yaml"
        self.events_path = self.path / "events.jsonl"
        self.evaluations_path = self.path / "evaluations.csv"
        self.best_path = self.path / "best.json"
        self.checkpoint_path = self.path / "checkpoint.pkl"
        self.ground_truth_dir = self.path / "ground_truth"

    def exists(self) -> bool:
        """Whether a run was started here (it has a checkpoint or a config)."""
        return self.checkpoint_path.exists() or self.config_path.exists()

    def create(self, config: dict[str, Any]) -> None:
        """Start a fresh run: write the resolved config and empty logs."""
        self.path.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.config_path, yaml.safe_dump(config, sort_keys=False))
        for p in (self.events_path, self.best_path, self.checkpoint_path):
            p.unlink(missing_ok=True)
        self.events_path.touch()
        self.rewrite_evaluations([])

    def read_config(self) -> dict[str, Any]:
        """The config stored in the run directory (as the user may have edited it)."""
        return yaml.safe_load(self.config_path.read_text())

    # -- append-only logs ----------------------------------------------------------------------
    def append_event(self, event: dict[str, Any]) -> None:
        """One JSON line, flushed to disk."""
        with self.events_path.open("a") as fh:
            fh.write(json.dumps(to_jsonable(event), sort_keys=True) + "\n")
            fh.flush()
            os.fsync(fh.fileno())

    def truncate_events(self, n_lines: int) -> None:
        """Keep only the first ``n_lines`` events (those the checkpoint accounts for)."""
        lines = (
            self.events_path.read_text().splitlines(keepends=True) if self.events_exist() else []
        )
        kept = [ln for ln in lines if ln.endswith("\n")][:n_lines]
        atomic_write_text(self.events_path, "".join(kept))

    def events_exist(self) -> bool:
        return self.events_path.exists()

    def read_events(self) -> list[dict[str, Any]]:
        """Every complete event line."""
        if not self.events_exist():
            return []
        out = []
        for line in self.events_path.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                break  # a line cut by a kill: everything before it is good
        return out

    @staticmethod
    def _row(record: dict[str, Any]) -> list[Any]:
        res = record["result"]
        pred = record.get("predicted")
        return [
            record["index"],
            record["key"],
            json.dumps(record["genotype"]),
            repr(res.objective) if math.isfinite(res.objective) else "inf",
            res.status,
            f"{res.cost_s:.6g}",
            record["phase"],
            record["round"],
            "" if pred is None else repr(float(pred)),
            res.message,
            json.dumps(to_jsonable(res.metrics), sort_keys=True),
        ]

    def append_evaluation(self, record: dict[str, Any]) -> None:
        """One row of ``evaluations.csv``."""
        with self.evaluations_path.open("a", newline="") as fh:
            csv.writer(fh).writerow(self._row(record))
            fh.flush()

    def rewrite_evaluations(self, records: list[dict[str, Any]]) -> None:
        """Write ``evaluations.csv`` from scratch."""
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(EVALUATION_COLUMNS)
        for r in records:
            w.writerow(self._row(r))
        atomic_write_text(self.evaluations_path, buf.getvalue())

    def read_evaluations(self) -> list[dict[str, str]]:
        """Rows of ``evaluations.csv`` as dicts of strings."""
        with self.evaluations_path.open(newline="") as fh:
            return list(csv.DictReader(fh))

    # -- atomic files --------------------------------------------------------------------------
    def write_best(self, best: dict[str, Any]) -> None:
        atomic_write_text(self.best_path, json.dumps(to_jsonable(best), indent=2, sort_keys=True))

    def read_best(self) -> dict[str, Any] | None:
        return json.loads(self.best_path.read_text()) if self.best_path.exists() else None

    def save_checkpoint(self, state: dict[str, Any]) -> None:
        atomic_write_bytes(self.checkpoint_path, pickle.dumps(state, protocol=4))

    def load_checkpoint(self) -> dict[str, Any]:
        with self.checkpoint_path.open("rb") as fh:
            return pickle.load(fh)
