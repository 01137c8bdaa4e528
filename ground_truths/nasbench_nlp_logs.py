"""Ground truth from NAS-Bench-NLP's PTB training logs (one JSON file per trained cell).

The logs are read from the benchmark's zip or a folder of its JSON files. Several logs can
hold the same cell under other node names (the benchmark's generator drew repeats); they are
grouped by the space's canonical key and their OK runs averaged, which also averages out the
seed noise. Parsing and canonicalising all logs takes a few seconds, so the result is cached
in the user cache dir, keyed by the file's path, size and mtime: as data
(:mod:`evo_nas_common.statefile`, no pickle), since a cache file is read without being trusted.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np

from evo_nas_common import statefile
from ground_truths.base import GroundTruth, Result
from search_spaces import Genotype, GenotypeError, SearchSpace

Metric = Literal["val_ppl", "test_ppl", "train_ppl", "val_loss", "test_loss", "train_loss"]
DEFAULT_FILE = Path("nasbench-nlp") / "ptb_single_run_dev.zip"
#: bump when the cached content or the space's keys change
CACHE_VERSION = 2


@dataclass(frozen=True)
class Run:
    """One training log: the cell and its per-epoch losses (cross-entropy, nats)."""

    recepie_id: int
    recepie: str
    status: str
    num_params: int
    train_losses: np.ndarray
    val_losses: np.ndarray
    test_losses: np.ndarray
    wall_times: np.ndarray

    @property
    def ok(self) -> bool:
        return self.status == "OK"


def default_path() -> Path:
    """``$EVO_NAS_DATA/nasbench-nlp/ptb_single_run_dev.zip``."""
    root = os.environ.get("EVO_NAS_DATA")
    if not root:
        raise ValueError("no path given for the NAS-Bench-NLP logs and EVO_NAS_DATA is not set")
    return Path(root) / DEFAULT_FILE


#: the largest log a file may hold (the benchmark's are at most 6 kB; a larger one is not a
#: log, and is refused before it is read or decompressed)
MAX_LOG_BYTES = 1 << 20
#: the most a zip entry may expand (the benchmark's: under 4 times)
MAX_ZIP_RATIO = 100


def _log_texts(path: Path) -> Iterator[tuple[str, bytes]]:
    if path.is_dir():
        for f in sorted(path.glob("*.json")):
            if f.stat().st_size > MAX_LOG_BYTES:
                raise ValueError(f"{f}: {f.stat().st_size:,} bytes, too large for a log")
            yield f.name, f.read_bytes()
    elif zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as z:
                for info in z.infolist():
                    if info.filename.endswith(".json"):
                        yield info.filename, _zip_entry(path, z, info)
        except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError) as e:
            raise ValueError(f"{path}: damaged zip ({first(e)})") from None
    else:
        raise ValueError(f"{path}: not a zip file or a folder of NAS-Bench-NLP JSON logs")


def _zip_entry(path: Path, z: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes:
    """One log of the zip, its size and compression ratio checked before it is decompressed
    (and the bytes read capped, should the entry's header lie)."""
    where = f"{path}: {info.filename[:200]}"
    if info.file_size > MAX_LOG_BYTES:
        raise ValueError(f"{where}: {info.file_size:,} bytes, too large for a log")
    if info.file_size > MAX_ZIP_RATIO * max(info.compress_size, 1):
        raise ValueError(f"{where}: expands {info.file_size:,} bytes from {info.compress_size:,}")
    with z.open(info) as fh:
        data = fh.read(MAX_LOG_BYTES + 1)
    if len(data) > MAX_LOG_BYTES:
        raise ValueError(f"{where}: larger than its header says, too large for a log")
    return data


def read_runs(path: Path) -> list[Run]:
    """Every log in a zip or folder, in file-name order."""
    runs = []
    for name, text in _log_texts(path):
        try:
            d = json.loads(text)
            runs.append(
                Run(
                    int(d["recepie_id"]),
                    d["recepie"],
                    str(d["status"]),
                    int(d["num_params"]),
                    *(np.asarray(d[k], dtype=float) for k in _CURVES),
                )
            )
        except (json.JSONDecodeError, KeyError, TypeError, ValueError, RecursionError) as e:
            raise ValueError(
                f"{path}: {name[:200]}: not a NAS-Bench-NLP log ({first(e)})"
            ) from None
    if not runs:
        raise ValueError(f"{path}: no NAS-Bench-NLP logs (*.json) found")
    return runs


_CURVES = ("train_losses", "val_losses", "test_losses", "wall_times")


def first(error: BaseException) -> str:
    """An error's message cut to a line of at most 200 characters (a log's content is not)."""
    text = str(error).strip().splitlines()
    line = text[0] if text else type(error).__name__
    return line if len(line) <= 200 else line[:197] + "..."


def _to_cache(runs: list[Run], keys: list[str]) -> dict[str, Any]:
    """The parsed logs as a state tree: one column per field, each curve kind concatenated."""
    tree: dict[str, Any] = {
        "version": CACHE_VERSION,
        "recepie_id": np.array([r.recepie_id for r in runs], dtype=np.int64),
        "recepie": [r.recepie for r in runs],
        "status": [r.status for r in runs],
        "num_params": np.array([r.num_params for r in runs], dtype=np.int64),
        "keys": keys,
    }
    for k in _CURVES:
        tree[k] = np.concatenate([getattr(r, k) for r in runs])
        tree[f"{k}_lengths"] = np.array([len(getattr(r, k)) for r in runs], dtype=np.int64)
    return tree


def _from_cache(tree: Any) -> tuple[list[Run], list[str]]:
    """Inverse of :func:`_to_cache`; anything malformed raises (the cache is then rebuilt)."""
    if tree["version"] != CACHE_VERSION:
        raise ValueError("another cache version")
    n = len(tree["keys"])
    columns = [tree["recepie_id"], tree["recepie"], tree["status"], tree["num_params"]]
    curves = []
    for k in _CURVES:
        lengths = tree[f"{k}_lengths"]
        if len(lengths) != n or lengths.min(initial=0) < 0 or lengths.sum() != len(tree[k]):
            raise ValueError(f"{k}: lengths do not match")
        curves.append(np.split(np.asarray(tree[k], dtype=float), np.cumsum(lengths)[:-1]))
    if any(len(c) != n for c in columns) or not all(isinstance(k, str) for k in tree["keys"]):
        raise ValueError("columns of different lengths")
    runs = [
        Run(int(i), str(rec), str(st), int(p), *(c[j] for c in curves))
        for j, (i, rec, st, p) in enumerate(zip(*columns))
    ]
    return runs, list(tree["keys"])


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "evo-nas"


class NasBenchNLPGroundTruth(GroundTruth):
    """Answers the objective of any cell in the NAS-Bench-NLP logs.

    ``metric`` picks the objective (perplexity = exp(loss); lower is better); ``epoch`` reads
    it after that many epochs (1-based; None = the last, 50) for learning-curve comparisons.
    A cell whose runs all failed (NaN loss, math range error) is ``diverged``; a cell not in
    the logs is ``failed``. ``cache`` stores the parsed table in ``$XDG_CACHE_HOME/evo-nas``.
    """

    def __init__(
        self,
        space: SearchSpace,
        path: Path | None = None,
        metric: Metric = "val_ppl",
        epoch: int | None = None,
        cache: bool = True,
    ) -> None:
        super().__init__(space)
        if metric not in get_args(Metric):
            raise ValueError(f"metric must be one of {', '.join(get_args(Metric))}, got '{metric}'")
        self.path = Path(path) if path is not None else default_path()
        if not self.path.exists():
            raise ValueError(f"{self.path}: file not found")
        self.metric = metric
        self.runs, self._genotypes, keys = self._load(cache)
        n_epochs = min(len(r.val_losses) for r in self.runs if r.ok) if self.n_ok else 0
        if epoch is not None and not 1 <= epoch <= n_epochs:
            raise ValueError(f"epoch must be in 1..{n_epochs}, got {epoch}")
        self.epoch = epoch if epoch is not None else n_epochs
        self._groups: dict[str, list[int]] = {}
        for i, k in enumerate(keys):
            self._groups.setdefault(k, []).append(i)

    # -- loading -----------------------------------------------------------------------------
    def _cache_file(self) -> Path:
        st = self.path.stat()
        options = sorted(
            (k, v) for k, v in vars(self.space).items() if isinstance(v, (int, float, str, tuple))
        )
        space = f"{type(self.space).__module__}.{type(self.space).__qualname__}{options}"
        ident = f"{CACHE_VERSION}|{self.path.resolve()}|{st.st_size}|{st.st_mtime_ns}|{space}"
        return _cache_dir() / f"nasbench_nlp-{hashlib.sha1(ident.encode()).hexdigest()[:16]}.json"

    def _genotypes(self, runs: list[Run]) -> list[Genotype]:
        genotypes = []
        for r in runs:
            try:
                genotypes.append(self.space.validate(r.recepie))
            except GenotypeError as e:
                raise ValueError(
                    f"{self.path}: recepie {r.recepie_id}: space '{self.space.name}' "
                    f"rejects it: {e}"
                ) from None
        return genotypes

    def _load(self, cache: bool) -> tuple[list[Run], list[Genotype], list[str]]:
        cache_file = self._cache_file() if cache else None
        if cache_file is not None and cache_file.is_file():
            try:
                runs, keys = _from_cache(statefile.loads(cache_file.read_bytes()))
                return runs, self._genotypes(runs), keys
            except Exception:  # noqa: BLE001 (a cache that does not read, however, is rebuilt)
                pass
        runs = read_runs(self.path)
        genotypes = self._genotypes(runs)
        keys = [self.space.key(g) for g in genotypes]
        if cache_file is not None:
            try:
                cache_file.parent.mkdir(parents=True, exist_ok=True)
                tmp = cache_file.with_suffix(f".tmp{os.getpid()}")
                tmp.write_bytes(statefile.dumps(_to_cache(runs, keys)))
                os.replace(tmp, cache_file)
            except OSError:
                pass  # an unwritable cache dir only costs time
        return runs, genotypes, keys

    # -- the table ---------------------------------------------------------------------------
    @property
    def n_ok(self) -> int:
        """Number of logs whose training finished (status OK)."""
        return sum(r.ok for r in self.runs)

    def __len__(self) -> int:
        """Number of distinct cells (logs of the same cell under other names count once)."""
        return len(self._groups)

    def genotypes(self) -> list[Genotype]:
        return [self._genotypes[idx[0]] for idx in self._groups.values()]

    def _value(self, run: Run) -> float:
        split, unit = self.metric.split("_")
        loss = float(getattr(run, f"{split}_losses")[self.epoch - 1])
        if unit == "loss":
            return loss
        return math.exp(loss) if loss < 700 else math.inf

    def _result(self, idx: list[int]) -> Result:
        runs = [self.runs[i] for i in idx]
        ok = [r for r in runs if r.ok]
        metrics: dict[str, Any] = {
            "num_params": runs[0].num_params,
            "recepie_ids": [r.recepie_id for r in runs],
            "runs": len(runs),
            "runs_ok": len(ok),
        }
        if not ok:
            cost = float(np.mean([r.wall_times.sum() for r in runs]))
            return Result(math.inf, "diverged", cost, metrics, runs[0].status)
        e = self.epoch
        for split in ("train", "val", "test"):
            losses = np.mean([getattr(r, f"{split}_losses")[:e] for r in ok], axis=0)
            metrics[f"{split}_loss"] = float(losses[-1])
            metrics[f"{split}_ppl"] = float(np.exp(min(losses[-1], 700.0)))
            if split == "val":
                metrics["val_loss_curve"] = [round(float(v), 5) for v in losses]
        metrics["epoch"] = e
        cost = float(np.mean([r.wall_times[:e].sum() for r in ok]))
        objective = float(np.mean([self._value(r) for r in ok]))
        return Result(objective, "ok", cost, metrics)

    def evaluate_one(self, genotype: Genotype) -> Result:
        try:
            key = self.space.key(genotype)
        except (GenotypeError, TypeError, ValueError, KeyError) as e:
            return Result.failed(f"not a {self.space.name} cell: {e}")
        idx = self._groups.get(key)
        if idx is None:
            return Result.failed(f"cell not in the NAS-Bench-NLP logs {self.path.name}: {key}")
        return self._result(idx)
