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
from typing import Annotated, Any, Literal

import numpy as np
import torch
from pydantic import BeforeValidator, ConfigDict, Field, StrictBool, ValidationError
from pydantic.dataclasses import dataclass as typed_dataclass
from torch.nn import functional as F

from evo_nas_common.bounds import Dropout, NonNegative, Positive, Steps, first_error
from evo_nas_common.devices import resolve_device
from ground_truths.base import GroundTruth, Result
from ground_truths.ptb_corpus import Corpus, batchify, get_batch, load_corpus, ptb_dir, verify_ptb
from ground_truths.ptb_model import RNNModel, build_model
from search_spaces import Genotype, SearchSpace

Progress = Callable[[dict[str, Any]], None]


@typed_dataclass(frozen=True, config=ConfigDict(extra="forbid"))
class TrainConfig:
    """Everything that determines a training's outcome (hashed into the cache key): the PTB
    trainer's options. Values are typed and bounded when the config is made, one line naming
    a bad one.

    Defaults are DARTS' final-training settings (``paper`` preset). ``epoch_batches`` makes
    an epoch that many batches instead of one pass over the training text (the data cursor
    runs on across epochs, wrapping at the end); ``eval_tokens`` evaluates on the first
    tokens of the validation (and test) text only. ``unigram_init`` starts the decoder bias
    at the log unigram distribution of the training text instead of zero: a model then
    starts at the unigram perplexity rather than at 10,000, which short trainings (``cpu``,
    ``tiny``) need to get past the hundreds of steps SGD with clipping takes to learn the
    word frequencies.
    """

    emsize: Steps = 850
    nhid: Steps = 850
    dropout: Dropout = 0.75
    dropouth: Dropout = 0.25
    dropoutx: Dropout = 0.75
    dropouti: Dropout = 0.2
    dropoute: Dropout = 0.1
    lr: Positive = 20.0
    clip: Positive = 0.25
    batch_size: Steps = 64
    eval_batch_size: Steps = 10
    bptt: Steps = 35
    max_seq_len_delta: Annotated[int, Field(strict=True, ge=0, le=10**6)] = 20
    wdecay: NonNegative = 8e-7
    tar: NonNegative = 1e-3
    nonmono: Steps = 5
    asgd: StrictBool = True
    init_range: Positive = 0.1
    unigram_init: StrictBool = False
    epochs: Annotated[int, Field(strict=True, ge=1, le=10**6)] = 8000
    epoch_batches: Steps | None = None
    eval_tokens: Steps | None = None
    test: StrictBool = False
    diverge_ppl: Positive = 1e6
    seed: Annotated[int, Field(strict=True, ge=0, lt=2**63)] = 0

    def digest(self) -> str:
        """A short hash of every field."""
        text = json.dumps(dataclasses.asdict(self), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


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
    """The preset's config with ``overrides``; a ``ValueError`` names a bad one."""
    if not isinstance(preset, str) or preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r} (known: {', '.join(PRESETS)})")
    try:
        return TrainConfig(**(PRESETS[preset] | overrides))
    except ValidationError as e:
        raise ValueError(first_error(e)) from None


def _from_preset(value: Any) -> Any:
    """A preset's name, or a mapping of a ``preset`` (default ``cpu``) and overrides, as the
    config they name."""
    if isinstance(value, str):
        return make_config(value)
    if isinstance(value, dict):
        overrides = dict(value)
        return make_config(overrides.pop("preset", "cpu"), **overrides)
    return value


#: the trainer's options in a config: ``train: cpu`` or ``train: {preset: cpu, epochs: 3}``
TrainSpec = Annotated[TrainConfig, BeforeValidator(_from_preset)]


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


class _Training:
    """One cell's language model in training: the model and optimiser, the batched text,
    the data cursor, the learning curve, the averaged weights once ASGD starts and the best
    validation state; each epoch re-seeded from ``(seed, epoch)`` (see the module)."""

    def __init__(
        self,
        space: SearchSpace,
        genotype: Genotype,
        cfg: TrainConfig,
        corpus: Corpus,
        device: torch.device,
    ) -> None:
        self.cfg, self.corpus, self.device = cfg, corpus, device
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
        self.model = model.to(device)
        self.params = list(model.parameters())
        self.n_params = sum(p.numel() for p in self.params)
        self.opt = torch.optim.SGD(self.params, lr=cfg.lr, weight_decay=cfg.wdecay)
        self.train = batchify(corpus.train, cfg.batch_size).to(device)
        valid = corpus.valid if cfg.eval_tokens is None else corpus.valid[: cfg.eval_tokens]
        self.valid = batchify(valid, cfg.eval_batch_size).to(device)
        self.gen = torch.Generator(device=device)
        self.epoch, self.cursor, self.before_s = 0, 0, 0.0  # before_s: seconds before a resume
        self.curve: list[dict[str, float]] = []
        self.averager: _Averager | None = None
        self.best_val, self.best_state = math.inf, None
        self.max_loss = math.log(cfg.diverge_ppl)
        rows = self.train.size(0)
        self.per_epoch = cfg.epoch_batches or math.ceil((rows - 2) / cfg.bptt)

    def resume(self, checkpoint: Path) -> None:
        """Continue from the epoch ``checkpoint`` holds."""
        ck = torch.load(checkpoint, map_location=self.device, weights_only=True)
        self.model.load_state_dict(ck["model"])
        self.epoch, self.cursor, self.before_s = ck["epoch"], ck["cursor"], ck["train_s"]
        self.curve, self.best_val, self.best_state = ck["curve"], ck["best_val"], ck["best_state"]
        if ck["avg"] is not None:
            self.averager = _Averager(ck["avg"], ck["avg_count"])

    def save(self, checkpoint: Path, elapsed_s: float) -> None:
        """Write the state at the end of the current epoch, atomically."""
        avg = self.averager
        state = {
            "model": self.model.state_dict(),
            "epoch": self.epoch,
            "cursor": self.cursor,
            "train_s": elapsed_s,
            "curve": self.curve,
            "best_val": self.best_val,
            "best_state": self.best_state,
            "avg": avg.avg if avg is not None else None,
            "avg_count": avg.count if avg is not None else 0,
        }
        _save_atomic(state, checkpoint)

    def run_epoch(self, progress: Progress | None, over_time: Callable[[], bool]) -> float:
        """One epoch of batches of randomised length; its mean training loss."""
        cfg, rows = self.cfg, self.train.size(0)
        self.gen.manual_seed(cfg.seed * 1_000_003 + self.epoch)
        rng = np.random.default_rng([cfg.seed, self.epoch])
        self.model.train()
        state = self.model.init_state(cfg.batch_size)
        if cfg.epoch_batches is None:
            self.cursor = 0
        total, batches = 0.0, 0
        while (batches < self.per_epoch) if cfg.epoch_batches else (self.cursor < rows - 2):
            if self.cursor >= rows - 2:  # wrap around (epoch_batches mode only)
                self.cursor, state = 0, self.model.init_state(cfg.batch_size)
            bptt = cfg.bptt if rng.random() < 0.95 else cfg.bptt / 2
            seq_len = max(5, int(rng.normal(bptt, 5)))
            seq_len = min(seq_len, cfg.bptt + cfg.max_seq_len_delta)
            value, state = self._step(seq_len, state)
            total += value
            batches += 1
            if progress is not None:
                progress(
                    {"event": "batch", "epoch": self.epoch + 1, "batch": batches,
                     "batches": self.per_epoch, "loss": value, "ppl": _ppl(value)}
                )  # fmt: skip
            if over_time():
                raise _Stop("failed", "time limit")
        return total / max(batches, 1)

    def _step(self, seq_len: int, state: tuple) -> tuple[float, tuple]:
        """One SGD step on the next ``seq_len`` rows; the raw loss and the carried state."""
        cfg = self.cfg
        x, y = get_batch(self.train, self.cursor, seq_len)
        state = tuple(s.detach() for s in state)
        logits, raw, state = self.model(x, state, self.gen)
        raw_loss = F.cross_entropy(logits, y)
        loss = raw_loss
        if cfg.tar > 0 and raw.size(0) > 1:
            loss = loss + cfg.tar * (raw[1:] - raw[:-1]).pow(2).mean()
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.params, cfg.clip)
        self.opt.param_groups[0]["lr"] = cfg.lr * seq_len / cfg.bptt
        self.opt.step()
        if self.averager is not None:
            self.averager.update(self.params)
        value = raw_loss.item()
        if not math.isfinite(value) or value > self.max_loss:
            raise _Stop("diverged", f"training loss {value:.4g} at epoch {self.epoch + 1}")
        self.cursor += x.size(0)
        return value, state

    def end_epoch(self, train_loss: float, elapsed_s: float) -> dict[str, Any]:
        """Validate (the averaged weights once ASGD runs), keep the best state, switch to
        ASGD when validation stops improving, and add the epoch's row to the curve."""
        cfg, avg = self.cfg, self.averager
        if avg is not None:
            avg.swap(self.params)
        val_loss = evaluate_loss(self.model, self.valid, cfg.bptt)
        if val_loss < self.best_val:
            self.best_val = val_loss
            self.best_state = {
                k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()
            }
        if avg is not None:
            avg.swap(self.params)
        history = [row["val_loss"] for row in self.curve]
        stalled = len(history) > cfg.nonmono and val_loss > min(history[: -cfg.nonmono])
        if cfg.asgd and avg is None and stalled:
            self.averager = _Averager(self.params)
        self.epoch += 1
        row = {
            "epoch": self.epoch,
            "train_loss": train_loss,
            "train_ppl": _ppl(train_loss),
            "val_loss": val_loss,
            "val_ppl": _ppl(val_loss),
            "asgd": self.averager is not None,
            "time_s": elapsed_s,
        }
        self.curve.append(row)
        return row

    def test_ppl(self) -> float | None:
        """Test perplexity of the best validation state (with ``test``)."""
        cfg = self.cfg
        if not cfg.test or self.best_state is None:
            return None
        self.model.load_state_dict(self.best_state)
        tokens = (
            self.corpus.test if cfg.eval_tokens is None else self.corpus.test[: cfg.eval_tokens]
        )
        test = batchify(tokens, cfg.eval_batch_size).to(self.device)
        return _ppl(evaluate_loss(self.model, test, cfg.bptt))


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
    run = _Training(space, genotype, cfg, corpus, device)
    if checkpoint is not None and checkpoint.is_file():
        run.resume(checkpoint)

    def elapsed() -> float:
        return run.before_s + time.perf_counter() - start

    def over_time() -> bool:
        return time_limit_s is not None and time.perf_counter() - start > time_limit_s

    try:
        while run.epoch < cfg.epochs:
            train_loss = run.run_epoch(progress, over_time)
            row = run.end_epoch(train_loss, elapsed())
            if progress is not None:
                progress({"event": "epoch", **row})
            if not math.isfinite(row["val_loss"]) or row["val_loss"] > run.max_loss:
                raise _Stop("diverged", f"validation perplexity {row['val_ppl']:.4g}")
            if checkpoint is not None and run.epoch < cfg.epochs:
                run.save(checkpoint, elapsed())
            if run.epoch < cfg.epochs and over_time():
                raise _Stop("failed", "time limit")
    except _Stop as stop:
        return TrainOutcome(
            stop.status, math.inf, run.curve, elapsed(), run.n_params, message=str(stop)
        )
    test_ppl = run.test_ppl()
    return TrainOutcome("ok", _ppl(run.best_val), run.curve, elapsed(), run.n_params, test_ppl)


class PTBTrainer(GroundTruth):
    """Ground truth: validation perplexity of the cell's language model trained on PTB.

    ``train`` is the training (:class:`TrainConfig`): a preset's name (``paper``, ``cpu``,
    ``tiny``), a mapping of a ``preset`` and the fields it overrides, or a config; ``seed``,
    when given, replaces its seed (the final stage retrains a cell once per seed).
    ``data_dir`` is the PTB folder (default ``$EVO_NAS_DATA/ptb`` or the user cache). With a
    workdir attached, results are cached there by (genotype key, config hash) and trainings
    checkpoint every epoch and resume after an interruption. ``time_limit_s`` bounds one
    evaluation's wall time (status ``failed``, "time limit").
    """

    def __init__(
        self,
        space: SearchSpace,
        train: TrainSpec = "cpu",
        seed: Annotated[int, Field(ge=0, lt=2**63)] | None = None,
        data_dir: Path | None = None,
        device: str = "auto",
        time_limit_s: float | None = None,
    ) -> None:
        super().__init__(space)
        config = _from_preset(train)
        self.config = config if seed is None else dataclasses.replace(config, seed=seed)
        self.device = resolve_device(device)
        number = isinstance(time_limit_s, (int, float)) and not isinstance(time_limit_s, bool)
        if time_limit_s is not None and not (number and 0 < time_limit_s < math.inf):
            raise ValueError(f"time_limit_s must be positive and finite, got {time_limit_s!r}")
        self.time_limit_s = time_limit_s
        self.data_dir = ptb_dir(data_dir)
        verify_ptb(self.data_dir)

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
