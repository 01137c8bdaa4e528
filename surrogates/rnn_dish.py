"""The RNN Petri dish: a tiny recurrent network in which many cells train at once.

The dish feeds synthetic sequences through a fixed random projection into each motif's cell
and a readout, trains every motif for a few steps of the functional Adam of
:mod:`surrogates.inner_loop` on the synthetic training samples, and scores it by its loss
after that training. It records each motif's whole inner training (:meth:`RNNDish.trajectory`),
which the surrogate's read-out learns from.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Literal

import torch
from pydantic import StrictBool
from pydantic.dataclasses import dataclass
from torch.func import functional_call

from evo_nas_common.bounds import Count, Fraction, NonNegative, Positive, Size, Steps, Width
from search_spaces import Genotype, SearchSpace
from search_spaces.base import CellBatch
from surrogates.dish_options import OPTIONS, DishOptions, InnerSteps, MetaSteps
from surrogates.inner_loop import train_then_score, unrolled_adam


@dataclass(frozen=True, kw_only=True, config=OPTIONS)
class RNNDishOptions(DishOptions):
    """An RNN dish (recurrent cells): ``samples``/``val_samples`` synthetic sequences of
    ``steps`` x ``dims``, projected to ``input_size``; a cell of ``hidden_size``; ``task``
    with ``classes`` labels (``vocab`` tokens for ``bigram``); ``score``: the samples whose
    loss after training scores a motif; ``readout``: ``ridge`` ranks by a zero-shot prior
    (the dishes' score and the space's descriptors) corrected by a ridge on the training
    cells' records and descriptors (:class:`~surrogates.readout.AnchoredRidge`), ``gp``
    corrects the dishes' score by a Gaussian process on their records
    (:class:`~surrogates.readout.ResidualGP`), ``none`` ranks by the score alone. The
    defaults and why (docs/results/ holds the measurements):
    """

    kind: Literal["rnn"] = "rnn"
    samples: Size = 64  # too many to memorise in 20 steps: a cell scores by modelling them
    val_samples: Size = 16  # the validation trajectory is a read-out feature
    steps: Size = 8  # longer sequences ranked no better and cost more
    dims: Width = 8
    input_size: Width = 8
    hidden_size: Width = 8  # a larger dish cell (16) ranked worse
    task: Literal["labels", "bigram"] = "bigram"  # a miniature LM: cells must read and remember
    classes: Size = 4
    vocab: Size = 8
    score: Literal["val", "train"] = "train"  # how far a cell fitted its training samples
    inner_steps: InnerSteps = 20
    inner_lr: Positive = 0.02  # a lighter inner training ranked better than 0.05
    # the read-out learns from ground truth in seconds, meta-learning in minutes
    meta_steps: MetaSteps = 0
    meta_lr: Positive = 0.03
    meta_batch: Size = 25
    lr_decay: Fraction = 0.3
    lr_decay_every: Steps = 40
    loss: Literal["rank", "mse"] = "rank"  # only the order of the objectives matters
    target_transform: Literal["log", "none"] = "log"
    l2: NonNegative = 1e-3  # keeps meta-learned inputs in range
    orient: StrictBool = True  # a dish may rank a space's cells inversely
    dishes: Count = 2  # two steady one's +-0.03
    keep_fraction: Fraction = 1.0  # RNN dishes' training fit tells no good dish from bad
    # a ridge on the records and the space's descriptors, anchored to the zero-shot prior:
    # above the GP on the records at every N, and steady at N = 10 (compare_nbnlp.md)
    readout: Literal["ridge", "gp", "none"] = "ridge"
    # the space's descriptors in the prior and the ridge (a probe that reads the graph:
    # blind and gated inputs, +0.04 zero-shot on NAS-Bench-NLP); off: the dish alone
    descriptors: StrictBool = True


class RNNDish:
    """Synthetic data, fixed projection/readout initialisation and the inner training loop.

    ``task`` is ``"labels"`` (random class labels per step, cross-entropy) or ``"bigram"``
    (a miniature language model: the inputs start as the embeddings of random token sequences
    over ``vocab`` tokens and the label at each step is a fixed random function of the
    previous and the current token, so a cell must both read its current input and remember
    the last one, and what it learns carries over to the validation sequences). The fixed
    projection's entries have standard deviation ``1 / sqrt(dims)``. ``data`` holds the
    learnable synthetic inputs (``x_train``, ``x_val``), on ``device``. Everything random
    comes from ``seed``; every motif starts from the same weights, so score differences come
    from the motifs.
    """

    def __init__(
        self,
        space: SearchSpace,
        seed: int,
        options: RNNDishOptions,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str = "cpu",
    ) -> None:
        o = options
        self.space = space
        self.seed = int(seed)
        self.members = 1  # dishes computed by this object (the MLP dish batches several)
        self.options = o
        self.dtype = dtype
        self.device = torch.device(device)
        # everything random is drawn on the CPU, so a seed gives the same dish on any device
        gen = torch.Generator().manual_seed(self.seed)
        proj = torch.randn(o.dims, o.input_size, generator=gen, dtype=dtype)
        self.proj = proj / o.dims**0.5
        bound = 1.0 / o.hidden_size**0.5
        readout0 = torch.rand(o.hidden_size, o.classes, generator=gen, dtype=dtype) * 2 - 1
        self.readout0 = readout0 * bound
        self.data: dict[str, torch.Tensor] = {
            "x_train": torch.randn(o.samples, o.steps, o.dims, generator=gen, dtype=dtype),
            "x_val": torch.randn(o.val_samples, o.steps, o.dims, generator=gen, dtype=dtype),
        }
        self.y_train = torch.randint(o.classes, (o.samples, o.steps), generator=gen)
        self.y_val = torch.randint(o.classes, (o.val_samples, o.steps), generator=gen)
        if o.task == "bigram":
            embed = torch.randn(o.vocab, o.dims, generator=gen, dtype=dtype)
            table = torch.randint(o.classes, (o.vocab, o.vocab), generator=gen)
            for split, n in (("train", o.samples), ("val", o.val_samples)):
                tokens = torch.randint(o.vocab, (n, o.steps + 1), generator=gen)
                self.data[f"x_{split}"] = embed[tokens[:, 1:]]
                setattr(self, f"y_{split}", table[tokens[:, :-1], tokens[:, 1:]])
        self.proj, self.readout0 = self.proj.to(self.device), self.readout0.to(self.device)
        self.y_train, self.y_val = self.y_train.to(self.device), self.y_val.to(self.device)
        self.data = {k: v.to(self.device) for k, v in self.data.items()}

    def build(self, genotypes: Sequence[Genotype]) -> CellBatch:
        """The motifs' cells, initialised from the dish seed."""
        cells = self.space.build_cell_batch(
            genotypes, self.options.input_size, self.options.hidden_size, seed=self.seed
        )
        return cells.to(self.device, self.dtype)

    def task_loss(
        self,
        cells: CellBatch,
        params: dict[str, torch.Tensor],
        readout: torch.Tensor,
        x: torch.Tensor,
        labels: torch.Tensor,
    ) -> torch.Tensor:
        """Per-motif cross-entropy ``[M]`` of the dish with weights ``params``/``readout`` on
        inputs ``x`` against class indices ``labels`` ``[S, T]``."""
        seq = (x @ self.proj).transpose(0, 1)  # [T, S, I]
        inputs = seq[:, None].expand(-1, cells.num_motifs, -1, -1)
        hidden = functional_call(cells, params, (inputs,))  # [T, M, S, H]
        logp = torch.log_softmax(torch.matmul(hidden, readout), dim=-1)  # [T, M, S, classes]
        idx = labels.T[:, None, :, None].expand(-1, cells.num_motifs, -1, -1)
        return -logp.gather(-1, idx).mean(dim=(0, 2, 3))

    def _start(
        self, genotypes: Sequence[Genotype], data: dict[str, torch.Tensor]
    ) -> tuple[CellBatch, list[torch.Tensor], Callable[..., torch.Tensor]]:
        """The motifs' cells, their initial weights (readout last) and the per-motif loss
        ``loss(weights, split)`` on the ``"train"`` or ``"val"`` samples of ``data``."""
        labels = {"train": self.y_train, "val": self.y_val}
        cells = self.build(genotypes)
        names = [n for n, _ in cells.named_parameters()]
        params = [p.detach().clone() for _, p in cells.named_parameters()]
        params.append(self.readout0.expand(cells.num_motifs, -1, -1).clone())

        def loss(ps: list[torch.Tensor], split: str) -> torch.Tensor:
            weights = dict(zip(names, ps[:-1], strict=True))
            return self.task_loss(cells, weights, ps[-1], data[f"x_{split}"], labels[split])

        return cells, params, loss

    def scores(
        self,
        genotypes: Sequence[Genotype],
        data: dict[str, torch.Tensor] | None = None,
        create_graph: bool = False,
    ) -> torch.Tensor:
        """Validation loss ``[M]`` of each motif after the inner training (NaN if diverged).

        With ``create_graph`` the result is differentiable in ``data`` (which defaults to
        the dish's own :attr:`data`) through the unrolled inner loop.
        """
        _, params, loss = self._start(genotypes, self.data if data is None else data)
        return train_then_score(
            lambda ps: loss(ps, "train"),
            lambda ps: loss(ps, self.options.score),
            params,
            self.options.inner_steps,
            self.options.inner_lr,
            create_graph,
        )

    def feature_names(self) -> list[str]:
        """The columns of :meth:`trajectory`."""
        steps = range(self.options.inner_steps + 1)
        return (
            [f"train_loss_{k}" for k in steps]
            + [f"val_loss_{k}" for k in steps]
            + [f"log_grad_norm_{k}" for k in steps[:-1]]
        )

    def trajectory(self, genotypes: Sequence[Genotype]) -> torch.Tensor:
        """The motifs' inner training as features ``[M, F]`` (:meth:`feature_names`): the
        loss on the training and on the validation samples before every step and after the
        last, and the log norm of every step's gradient (cell and readout); NaN or inf where a
        motif diverged. The last loss on the ``score`` samples is :meth:`scores`' value."""
        cells, params, loss = self._start(genotypes, self.data)
        names = [n for n, _ in cells.named_parameters()]
        train, val, grad = [], [], []

        def observe(ps: list[torch.Tensor], losses: torch.Tensor, grads: tuple) -> None:
            train.append(losses.detach())
            with torch.no_grad():
                val.append(loss(ps, "val"))
                named = {n: g for n, g in zip(names, grads) if g is not None}
                sq = cells.motif_sq_norms(named) + grads[-1].pow(2).sum(dim=(1, 2))
                grad.append(0.5 * sq.log())

        with torch.enable_grad():
            on_train = partial(loss, split="train")
            final = unrolled_adam(
                on_train, params, self.options.inner_steps, self.options.inner_lr, False, observe
            )
        with torch.no_grad():
            train.append(loss(final, "train"))
            val.append(loss(final, "val"))
        return torch.cat([torch.stack(train, 1), torch.stack(val, 1), torch.stack(grad, 1)], 1)
