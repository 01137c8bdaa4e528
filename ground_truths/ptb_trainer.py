"""The Penn Treebank trainer: the ground truth for the few candidates worth a real training.

DARTS' final-evaluation recipe (itself AWD-LSTM's): SGD at lr 20 with gradient clipping
0.25, batch 64, truncated BPTT of randomised length (35, or 17.5 with probability 0.05,
then ``N(bptt, 5)``; the step size scaled by ``seq_len / bptt``), weight decay 8e-7,
temporal activation regularisation, and a switch to averaged SGD when the validation loss
stops improving (non-monotone trigger); the averaged weights are the ones evaluated. The
objective is the best validation perplexity.

Randomness is re-seeded from ``(seed, epoch)`` at every epoch start, so a training resumed
from its per-epoch checkpoint retraces the uninterrupted one exactly (on the same device).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch.nn import functional as F

from evo_nas_common.devices import resolve_device
from ground_truths.base import GroundTruth, Result
from ground_truths.ptb_corpus import Corpus, batchify, get_batch, load_corpus, ptb_dir, verify_ptb
from ground_truths.ptb_model import RNNModel, build_model
from search_spaces import Genotype, SearchSpace

Preset = Literal["paper", "cpu", "tiny"]
Progress = Callable[[dict[str, Any]], None]


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a training's outcome (hashed into the cache key).

    Defaults are DARTS' final-training settings (``paper`` preset). ``epoch_batches`` makes
    an epoch that many batches instead of one pass over the training text (the data cursor
    runs on across epochs, wrapping at the end); ``eval_tokens`` evaluates on the first
    tokens of the validation (and test) text only. ``unigram_init`` starts the decoder bias
    at the log unigram distribution of the training text instead of zero: a model then
    starts at the unigram perplexity rather than at 10,000, which short trainings (``cpu``,
    ``tiny``) need to get past the hundreds of steps SGD with clipping takes to learn the
    word frequencies.
    """

    emsize: int = 850
    nhid: int = 850
    dropout: float = 0.75
    dropouth: float = 0.25
    dropoutx: float = 0.75
    dropouti: float = 0.2
    dropoute: float = 0.1
    lr: float = 20.0
    clip: float = 0.25
    batch_size: int = 64
    eval_batch_size: int = 10
    bptt: int = 35
    max_seq_len_delta: int = 20
    wdecay: float = 8e-7
    tar: float = 1e-3
    nonmono: int = 5
    asgd: bool = True
    init_range: float = 0.1
    unigram_init: bool = False
    epochs: int = 8000
    epoch_batches: int | None = None
    eval_tokens: int | None = None
    test: bool = False
    diverge_ppl: float = 1e6
    seed: int = 0

    def __post_init__(self) -> None:
        positive = ("emsize", "nhid", "batch_size", "eval_batch_size", "bptt", "epochs", "nonmono")
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        for name in ("epoch_batches", "eval_tokens"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1 or null, got {getattr(self, name)}")
        for name in ("dropout", "dropouth", "dropoutx", "dropouti", "dropoute"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)}")
        for name in ("lr", "clip", "diverge_ppl", "init_range"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        for name in ("wdecay", "tar", "max_seq_len_delta"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative, got {getattr(self, name)}")

    def digest(self) -> str:
        """A short hash of every field."""
        text = json.dumps(dataclasses.asdict(self), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


_FIELDS = frozenset(f.name for f in dataclasses.fields(TrainConfig))

#: part of every cache key: bumped when a change to the model or the cells changes what a
#: training gives for the same genotype and config, so results and checkpoints written by
#: older code are not reused (2: DARTS' hidden-state dropout mask on every node)
RESULTS_VERSION = 2

#: field overrides of the DARTS defaults per preset
PRESETS: dict[str, dict[str, Any]] = {
    # DARTS' final evaluation (its train.py trains up to 8000 epochs; set `epochs` to taste)
    "paper": {},
    # Minutes on two CPU cores (3-7 min measured on shared ones): nhid 128 keeps the decoder
    # (10,000 words, the main cost) affordable; 300 batches of 32 x 35 (a third of PTB
    # train) with a wider embedding init get well past the unigram model, far enough for the
    # cells to part (one epoch: DARTS_V2 329.5, DARTS_V1 329.3, all-identity 361.2 valid ppl).
    # Dropouts are scaled down since so short a training underfits rather than overfits;
    # evaluation covers all of valid, at batch 64.
    "cpu": {
        "emsize": 128,
        "nhid": 128,
        "dropout": 0.2,
        "dropouth": 0.1,
        "dropoutx": 0.1,
        "dropouti": 0.1,
        "dropoute": 0.0,
        "batch_size": 32,
        "eval_batch_size": 64,
        "init_range": 0.3,
        "unigram_init": True,
        "epochs": 1,
        "epoch_batches": 300,
    },
    # For tests: seconds (about 10 s of one CPU core). 180 short batches of a small model,
    # evaluated on a slice of valid; a wider embedding init lets so small a model pick up
    # context within that budget.
    "tiny": {
        "emsize": 64,
        "nhid": 64,
        "dropout": 0.1,
        "dropouth": 0.0,
        "dropoutx": 0.0,
        "dropouti": 0.0,
        "dropoute": 0.0,
        "batch_size": 16,
        "eval_batch_size": 16,
        "bptt": 10,
        "max_seq_len_delta": 5,
        "init_range": 0.5,
        "unigram_init": True,
        "epochs": 3,
        "epoch_batches": 60,
        "eval_tokens": 4000,
    },
}


def make_config(preset: str = "cpu", **overrides: Any) -> TrainConfig:
    """The preset's config with ``overrides`` (``None`` values mean "keep the preset's")."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset '{preset}' (known: {', '.join(PRESETS)})")
    unknown = sorted(set(overrides) - _FIELDS)
    if unknown:
        raise ValueError(f"unknown training option(s) {', '.join(unknown)}")
    values = PRESETS[preset] | {k: v for k, v in overrides.items() if v is not None}
    return TrainConfig(**values)


class _Stop(Exception):
    """Ends a training early with a recorded status (diverged, time limit)."""

    def __init__(self, status: Literal["diverged", "failed"], message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class TrainOutcome:
    """What a training produced: status, best validation perplexity, curve and extras.

    ``train_s`` is the wall time of the whole training, across resumes.
    """

    status: Literal["ok", "diverged", "failed"]
    val_ppl: float
    curve: list[dict[str, float]]
    train_s: float
    params: int
    test_ppl: float | None = None
    message: str = ""


def _ppl(loss: float) -> float:
    return math.exp(loss) if loss < 700 else math.inf


def evaluate_loss(model: RNNModel, data: torch.Tensor, bptt: int) -> float:
    """Mean cross-entropy (nats/token) over batchified ``data``, state carried across chunks."""
    model.eval()
    state = model.init_state(data.size(1))
    total, count = 0.0, 0
    with torch.no_grad():
        for i in range(0, data.size(0) - 1, bptt):
            x, y = get_batch(data, i, bptt)
            logits, _, state = model(x, state)
            total += F.cross_entropy(logits, y, reduction="sum").item()
            count += y.numel()
    return total / count


class _Averager:
    """Uniform running average of the parameters since the switch to ASGD."""

    def __init__(self, params: list[torch.Tensor], count: int = 0) -> None:
        self.avg = [p.detach().clone() for p in params]
        self.count = count

    def update(self, params: list[torch.Tensor]) -> None:
        self.count += 1
        with torch.no_grad():
            for a, p in zip(self.avg, params):
                a.add_(p.detach() - a, alpha=1.0 / self.count)

    def swap(self, params: list[torch.Tensor]) -> None:
        """Exchange the live weights and the averaged ones (call twice to undo)."""
        with torch.no_grad():
            for a, p in zip(self.avg, params):
                tmp = p.detach().clone()
                p.copy_(a)
                a.copy_(tmp)


def _save_atomic(obj: Any, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def train_lm(
    space: SearchSpace,
    genotype: Genotype,
    cfg: TrainConfig,
    corpus: Corpus,
    device: torch.device,
    checkpoint: Path | None = None,
    time_limit_s: float | None = None,
    progress: Progress | None = None,
) -> TrainOutcome:
    """Train one cell's language model; resume from ``checkpoint`` when it exists.

    A non-finite or exploding loss ends with status ``diverged``; passing ``time_limit_s``
    (wall seconds of this call) ends with status ``failed``. Other exceptions propagate.
    """
    start = time.perf_counter()
    model = build_model(
        space,
        genotype,
        len(corpus.words),
        cfg.emsize,
        cfg.nhid,
        seed=cfg.seed,
        dropout=cfg.dropout,
        dropouth=cfg.dropouth,
        dropoutx=cfg.dropoutx,
        dropouti=cfg.dropouti,
        dropoute=cfg.dropoute,
        init_range=cfg.init_range,
    )
    if cfg.unigram_init:
        counts = torch.bincount(corpus.train, minlength=len(corpus.words)).double() + 1.0
        with torch.no_grad():
            model.decoder.bias.copy_((counts / counts.sum()).log())
    model.to(device)
    params = list(model.parameters())
    n_params = sum(p.numel() for p in params)
    opt = torch.optim.SGD(params, lr=cfg.lr, weight_decay=cfg.wdecay)
    train = batchify(corpus.train, cfg.batch_size).to(device)
    valid_tokens = corpus.valid if cfg.eval_tokens is None else corpus.valid[: cfg.eval_tokens]
    valid = batchify(valid_tokens, cfg.eval_batch_size).to(device)
    gen = torch.Generator(device=device)

    epoch, cursor, before_s = 0, 0, 0.0  # before_s: seconds spent before a resume
    curve: list[dict[str, float]] = []
    averager: _Averager | None = None
    best_val, best_state = math.inf, None
    if checkpoint is not None and checkpoint.is_file():
        ck = torch.load(checkpoint, map_location=device, weights_only=True)
        model.load_state_dict(ck["model"])
        epoch, cursor, before_s, curve = ck["epoch"], ck["cursor"], ck["train_s"], ck["curve"]
        best_val, best_state = ck["best_val"], ck["best_state"]
        if ck["avg"] is not None:
            averager = _Averager(ck["avg"], ck["avg_count"])

    def elapsed() -> float:
        return before_s + time.perf_counter() - start

    def over_time() -> bool:
        return time_limit_s is not None and time.perf_counter() - start > time_limit_s

    max_loss = math.log(cfg.diverge_ppl)
    rows = train.size(0)
    per_epoch = cfg.epoch_batches or math.ceil((rows - 2) / cfg.bptt)
    try:
        while epoch < cfg.epochs:
            gen.manual_seed(cfg.seed * 1_000_003 + epoch)
            rng = np.random.default_rng([cfg.seed, epoch])
            model.train()
            state = model.init_state(cfg.batch_size)
            if cfg.epoch_batches is None:
                cursor = 0
            total, batches = 0.0, 0
            while (batches < per_epoch) if cfg.epoch_batches else (cursor < rows - 2):
                if cursor >= rows - 2:  # wrap around (epoch_batches mode only)
                    cursor, state = 0, model.init_state(cfg.batch_size)
                bptt = cfg.bptt if rng.random() < 0.95 else cfg.bptt / 2
                seq_len = max(5, int(rng.normal(bptt, 5)))
                seq_len = min(seq_len, cfg.bptt + cfg.max_seq_len_delta)
                x, y = get_batch(train, cursor, seq_len)
                state = tuple(s.detach() for s in state)
                logits, raw, state = model(x, state, gen)
                raw_loss = F.cross_entropy(logits, y)
                loss = raw_loss
                if cfg.tar > 0 and raw.size(0) > 1:
                    loss = loss + cfg.tar * (raw[1:] - raw[:-1]).pow(2).mean()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(params, cfg.clip)
                opt.param_groups[0]["lr"] = cfg.lr * seq_len / cfg.bptt
                opt.step()
                if averager is not None:
                    averager.update(params)
                value = raw_loss.item()
                if not math.isfinite(value) or value > max_loss:
                    raise _Stop("diverged", f"training loss {value:.4g} at epoch {epoch + 1}")
                cursor += x.size(0)
                total += value
                batches += 1
                if progress is not None:
                    progress(
                        {"event": "batch", "epoch": epoch + 1, "batch": batches,
                         "batches": per_epoch, "loss": value, "ppl": _ppl(value)}
                    )  # fmt: skip
                if over_time():
                    raise _Stop("failed", "time limit")
            if averager is not None:
                averager.swap(params)
            val_loss = evaluate_loss(model, valid, cfg.bptt)
            if val_loss < best_val:
                best_val = val_loss
                best_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
            if averager is not None:
                averager.swap(params)
            history = [row["val_loss"] for row in curve]
            if (
                cfg.asgd
                and averager is None
                and len(history) > cfg.nonmono
                and val_loss > min(history[: -cfg.nonmono])
            ):
                averager = _Averager(params)
            epoch += 1
            row = {
                "epoch": epoch,
                "train_loss": total / max(batches, 1),
                "train_ppl": _ppl(total / max(batches, 1)),
                "val_loss": val_loss,
                "val_ppl": _ppl(val_loss),
                "asgd": averager is not None,
                "time_s": elapsed(),
            }
            curve.append(row)
            if progress is not None:
                progress({"event": "epoch", **row})
            if not math.isfinite(val_loss) or val_loss > max_loss:
                raise _Stop("diverged", f"validation perplexity {_ppl(val_loss):.4g}")
            if checkpoint is not None and epoch < cfg.epochs:
                state_dict = {
                    "model": model.state_dict(),
                    "epoch": epoch,
                    "cursor": cursor,
                    "train_s": elapsed(),
                    "curve": curve,
                    "best_val": best_val,
                    "best_state": best_state,
                    "avg": averager.avg if averager is not None else None,
                    "avg_count": averager.count if averager is not None else 0,
                }
                _save_atomic(state_dict, checkpoint)
            if epoch < cfg.epochs and over_time():
                raise _Stop("failed", "time limit")
    except _Stop as stop:
        return TrainOutcome(stop.status, math.inf, curve, elapsed(), n_params, message=str(stop))
    test_ppl = None
    if cfg.test and best_state is not None:
        model.load_state_dict(best_state)
        test_tokens = corpus.test if cfg.eval_tokens is None else corpus.test[: cfg.eval_tokens]
        test = batchify(test_tokens, cfg.eval_batch_size).to(device)
        test_ppl = _ppl(evaluate_loss(model, test, cfg.bptt))
    return TrainOutcome("ok", _ppl(best_val), curve, elapsed(), n_params, test_ppl)


class PTBTrainer(GroundTruth):
    """Ground truth: validation perplexity of the cell's language model trained on PTB.

    ``preset`` (``paper``, ``cpu``, ``tiny``) picks the training size; every other training
    field overrides it. ``data_dir`` is the PTB folder (default ``$EVO_NAS_DATA/ptb`` or the
    user cache). With a workdir attached, results are cached there by (genotype key, config
    hash) and trainings checkpoint every epoch and resume after an interruption.
    ``time_limit_s`` bounds one evaluation's wall time (status ``failed``, "time limit").
    """

    def __init__(
        self,
        space: SearchSpace,
        preset: Preset = "cpu",
        data_dir: Path | None = None,
        device: str = "auto",
        time_limit_s: float | None = None,
        seed: int | None = None,
        epochs: int | None = None,
        epoch_batches: int | None = None,
        eval_tokens: int | None = None,
        test: bool | None = None,
        emsize: int | None = None,
        nhid: int | None = None,
        dropout: float | None = None,
        dropouth: float | None = None,
        dropoutx: float | None = None,
        dropouti: float | None = None,
        dropoute: float | None = None,
        lr: float | None = None,
        clip: float | None = None,
        batch_size: int | None = None,
        eval_batch_size: int | None = None,
        bptt: int | None = None,
        max_seq_len_delta: int | None = None,
        wdecay: float | None = None,
        tar: float | None = None,
        nonmono: int | None = None,
        asgd: bool | None = None,
        init_range: float | None = None,
        unigram_init: bool | None = None,
        diverge_ppl: float | None = None,
    ) -> None:
        super().__init__(space)
        overrides = {k: v for k, v in locals().items() if k in _FIELDS}
        self.config = make_config(preset, **overrides)
        self.preset = preset
        self.device = resolve_device(device)
        if time_limit_s is not None and time_limit_s <= 0:
            raise ValueError(f"time_limit_s must be positive, got {time_limit_s}")
        self.time_limit_s = time_limit_s
        self.data_dir = ptb_dir(data_dir)
        verify_ptb(self.data_dir)
        #: optional callback receiving batch/epoch events (the CLI's progress bar)
        self.progress: Progress | None = None

    def _paths(self, genotype: Genotype) -> tuple[Path, Path] | None:
        """(cached result, checkpoint) files of a genotype under this config, if attached."""
        if self.workdir is None:
            return None
        key = f"{self.space.key(genotype)}|{self.config.digest()}|v{RESULTS_VERSION}"
        name = hashlib.sha256(key.encode()).hexdigest()[:20]
        return (
            self.workdir / "results" / f"{name}.json",
            self.workdir / "checkpoints" / f"{name}.pt",
        )

    def evaluate_one(self, genotype: Genotype) -> Result:
        paths = self._paths(genotype)
        if paths is not None and paths[0].is_file():
            return Result.from_dict(json.loads(paths[0].read_text())["result"])
        checkpoint = None
        if paths is not None:
            for p in paths:
                p.parent.mkdir(parents=True, exist_ok=True)
            checkpoint = paths[1]
        start = time.perf_counter()
        try:
            out = train_lm(
                self.space,
                genotype,
                self.config,
                load_corpus(self.data_dir),
                self.device,
                checkpoint,
                self.time_limit_s,
                self.progress,
            )
        except Exception as e:  # a broken cell must not stop the search
            return Result.failed(f"{type(e).__name__}: {e}", time.perf_counter() - start)
        metrics: dict[str, Any] = {
            "val_ppl": out.val_ppl,
            "curve": out.curve,
            "params": out.params,
            "epochs": len(out.curve),
            "preset": self.preset,
            "config": self.config.digest(),
        }
        if out.test_ppl is not None:
            metrics["test_ppl"] = out.test_ppl
        result = Result(out.val_ppl, out.status, out.train_s, metrics, out.message)
        if paths is not None and out.status != "failed":
            record = {
                "genotype": self.space.to_json(genotype),
                "key": self.space.key(genotype),
                "config": dataclasses.asdict(self.config),
                "result": result.to_dict(),
            }
            tmp = paths[0].with_name(paths[0].name + ".tmp")
            tmp.write_text(json.dumps(record))
            os.replace(tmp, paths[0])
            paths[1].unlink(missing_ok=True)
        return result
