"""Ground truth for activation motifs: the test error of an MLP digit classifier using them.

The SPD paper's motivating experiment: an MLP with ``layers`` hidden layers of ``hidden``
units whose activation is the motif, trained with Adam on handwritten digits, once per seed
(``seeds`` initialisations from N(0, ``init_scale``^2)), keeping each run's weights from its
best validation epoch. The objective is the test error averaged over the seeds. Many
(genotype, seed) models train at once as one batched computation, and every model sees the
same mini-batch order, so a genotype's result does not depend on what it is batched with.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from evo_nas_common.batched_mlp import mlp_logits, normal_mlp_weights
from evo_nas_common.devices import resolve_device
from ground_truths.base import GroundTruth, Result
from ground_truths.digits_data import (
    DigitSplits,
    check_split_fractions,
    load_digits_splits,
    load_mnist_splits,
)
from search_spaces import Genotype, SearchSpace, seeded_generator

Progress = Callable[[dict[str, Any]], None]
_EVAL_BATCH = 2048
#: the most units, layers, epochs, seeds, ... an option may ask for (beyond it one evaluation
#: would not end, or not fit in memory)
MAX_COUNT = 100_000


class MLPClassifierGroundTruth(GroundTruth):
    """Mean test error over ``seeds`` trainings of an MLP whose hidden layers use the motif.

    ``dataset`` is ``digits`` (scikit-learn's 8x8 set, split ``val_fraction`` /
    ``test_fraction`` by ``split_seed``) or ``mnist`` (files in ``data_dir``, default
    ``<data root>/mnist``). Training: at most ``epochs`` epochs of Adam (``lr``, mini-batches
    of ``batch_size``), stopped when no model has improved its validation error for
    ``patience`` epochs. ``max_models`` (genotype, seed) pairs train at once.
    """

    def __init__(
        self,
        space: SearchSpace,
        dataset: Literal["digits", "mnist"] = "digits",
        data_dir: Path | None = None,
        hidden: int = 100,
        layers: int = 2,
        epochs: int = 50,
        patience: int = 10,
        batch_size: int = 32,
        lr: float = 0.001,
        init_scale: float = 1.0,
        seeds: int = 3,
        seed: int = 0,
        val_fraction: float = 0.2,
        test_fraction: float = 0.2,
        split_seed: int = 0,
        max_models: int = 128,
        device: str = "auto",
    ) -> None:
        super().__init__(space)
        if type(space).build_activation is SearchSpace.build_activation:
            raise ValueError(
                f"mlp_classifier evaluates activation motifs, and space '{space.name}' does not "
                "describe its genotypes as activations (use e.g. sigmoid_slope)"
            )
        if dataset not in ("digits", "mnist"):
            raise ValueError(f"dataset must be digits or mnist, got '{dataset}'")
        counts = {
            "hidden": hidden,
            "layers": layers,
            "epochs": epochs,
            "patience": patience,
            "batch_size": batch_size,
            "seeds": seeds,
            "max_models": max_models,
        }
        for name, value in counts.items():
            if not 1 <= value <= MAX_COUNT:
                raise ValueError(f"{name} must be in 1..{MAX_COUNT:,}, got {value}")
        if not (0 < lr < math.inf and 0 < init_scale < math.inf):
            raise ValueError("lr and init_scale must be positive and finite")
        check_split_fractions(val_fraction, test_fraction)  # now, not at the first evaluation
        self.dataset, self.data_dir = dataset, data_dir
        self.hidden, self.layers, self.epochs, self.patience = hidden, layers, epochs, patience
        self.batch_size, self.lr, self.init_scale = batch_size, lr, init_scale
        self.seeds, self.seed, self.max_models = seeds, seed, max_models
        self.val_fraction, self.test_fraction, self.split_seed = (
            val_fraction,
            test_fraction,
            split_seed,
        )
        self.device = resolve_device(device)
        #: optional callback receiving epoch events (the run's progress bar)
        self.progress: Progress | None = None
        self._data: DigitSplits | None = None

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_data"] = None  # workers load the data themselves rather than receive it
        state["progress"] = None
        return state

    def data(self) -> DigitSplits:
        """The dataset's splits, loaded (and, for MNIST, verified) on first use."""
        if self._data is None:
            if self.dataset == "digits":
                self._data = load_digits_splits(
                    self.val_fraction, self.test_fraction, self.split_seed
                )
            else:
                self._data = load_mnist_splits(self.data_dir)
        return self._data

    # -- evaluation --------------------------------------------------------------------------
    def evaluate_one(self, genotype: Genotype) -> Result:
        return self.evaluate([genotype])[0]

    def evaluate(self, genotypes: Sequence[Genotype]) -> list[Result]:
        genotypes = list(genotypes)
        per_chunk = max(1, self.max_models // self.seeds)
        results: list[Result] = []
        for start in range(0, len(genotypes), per_chunk):
            chunk = genotypes[start : start + per_chunk]
            began = time.perf_counter()
            try:
                results += self._train(chunk, began)
            except Exception as e:  # a bad motif or data problem is a result, not a crash
                cost = time.perf_counter() - began
                message = f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e) else ''}"
                results += [Result.failed(message, cost / len(chunk)) for _ in chunk]
        return results

    def _initial_weights(self, inputs: int, classes: int) -> list[torch.Tensor]:
        """Per-seed initial weights ``[seeds, ...]``, the same for every genotype."""
        sizes = [inputs] + [self.hidden] * self.layers + [classes]
        per_seed = []
        for r in range(self.seeds):
            gen = seeded_generator(self.seed, r)
            per_seed.append(normal_mlp_weights(sizes, self.init_scale, gen))
        return [torch.stack(group) for group in zip(*per_seed, strict=True)]

    def _train(self, genotypes: list[Genotype], began: float) -> list[Result]:
        data, dev = self.data(), self.device
        x_train, y_train, x_val, y_val, x_test, y_test = (
            torch.as_tensor(a, device=dev)
            for a in (data.x_train, data.y_train, data.x_val, data.y_val, data.x_test, data.y_test)
        )
        models = [g for g in genotypes for _ in range(self.seeds)]  # genotype-major
        m = len(models)
        act = self.space.build_activation_batch(models).to(dev)
        params = [
            w.repeat(len(genotypes), *([1] * (w.dim() - 1))).to(dev).requires_grad_()
            for w in self._initial_weights(x_train.size(1), data.classes)
        ]
        opt = torch.optim.Adam(params, lr=self.lr)
        best_val = torch.full((m,), math.inf, device=dev)
        best_test = torch.full((m,), math.nan, device=dev)
        best_epoch = torch.zeros(m, dtype=torch.long, device=dev)
        diverged = torch.zeros(m, dtype=torch.bool, device=dev)
        diverged_at = [""] * m
        gen = torch.Generator().manual_seed(self.seed)
        stale = 0
        for epoch in range(1, self.epochs + 1):
            order = torch.randperm(len(x_train), generator=gen).to(dev)
            for i in range(0, len(order), self.batch_size):
                idx = order[i : i + self.batch_size]
                logits = mlp_logits(act, params, x_train[idx])  # [M, B, C]
                losses = nn.functional.cross_entropy(
                    logits.transpose(1, 2), y_train[idx].expand(m, -1), reduction="none"
                ).mean(dim=1)
                bad = ~torch.isfinite(losses.detach()) & ~diverged
                for k in bad.nonzero().flatten().tolist():
                    diverged_at[k] = f"training loss {losses[k].item():.4g} at epoch {epoch}"
                diverged |= bad
                opt.zero_grad()
                losses[~diverged].sum().backward()
                opt.step()
            val_err = self._errors(act, params, x_val, y_val)
            test_err = self._errors(act, params, x_test, y_test)
            better = (val_err < best_val) & ~diverged
            best_val = torch.where(better, val_err, best_val)
            best_test = torch.where(better, test_err, best_test)
            best_epoch = torch.where(better, epoch, best_epoch)
            stale = 0 if bool(better.any()) else stale + 1
            if self.progress is not None:
                self.progress(
                    {"event": "epoch", "epoch": epoch, "epochs": self.epochs,
                     "val_error": float(best_val[~diverged].mean()) if (~diverged).any() else 1.0}
                )  # fmt: skip
            if stale >= self.patience or bool(diverged.all()):
                break
        cost = (time.perf_counter() - began) / len(genotypes)
        return [
            self._result(g, slice(j * self.seeds, (j + 1) * self.seeds), best_val, best_test,
                         best_epoch, diverged, diverged_at, cost)
            for j, g in enumerate(genotypes)
        ]  # fmt: skip

    def _errors(
        self, act: nn.Module, params: list[torch.Tensor], x: torch.Tensor, y: torch.Tensor
    ) -> torch.Tensor:
        """Classification error ``[M]`` of every model on ``(x, y)``."""
        wrong = torch.zeros(params[0].size(0), device=self.device)
        with torch.no_grad():
            for i in range(0, len(x), _EVAL_BATCH):
                pred = mlp_logits(act, params, x[i : i + _EVAL_BATCH]).argmax(dim=-1)
                wrong += (pred != y[i : i + _EVAL_BATCH]).sum(dim=1)  # NaN logits: class 0
        return wrong / len(x)

    def _result(
        self,
        genotype: Genotype,
        rows: slice,
        best_val: torch.Tensor,
        best_test: torch.Tensor,
        best_epoch: torch.Tensor,
        diverged: torch.Tensor,
        diverged_at: list[str],
        cost: float,
    ) -> Result:
        if bool(diverged[rows].any()):
            k = rows.start + int(diverged[rows].nonzero()[0])
            message = f"seed {k - rows.start}: {diverged_at[k]}"
            return Result(math.inf, "diverged", cost, {}, message)
        test = best_test[rows].tolist()
        metrics = {
            "val_error": float(best_val[rows].mean()),
            "test_errors": test,
            "best_epochs": best_epoch[rows].tolist(),
            "dataset": self.dataset,
        }
        return Result(float(np.mean(test)), "ok", cost, metrics)
