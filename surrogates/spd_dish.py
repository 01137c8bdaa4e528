"""One Synthetic Petri Dish: a tiny network in which many motifs train at once.

The dish feeds synthetic sequences through a fixed random projection into each motif's cell
and a readout, trains every motif for a few steps of a functional Adam on the synthetic
training samples, and scores it by its loss on the synthetic validation samples. The inner
loop is written functionally, so the score is differentiable in the synthetic samples and
the surrogate can meta-learn them through the unrolled training (Rawal et al. 2020).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Literal, get_args

import torch
from torch.func import functional_call

from search_spaces import Genotype, SearchSpace
from search_spaces.base import CellBatch

Task = Literal["labels", "bigram"]
#: ``observe(params, per-motif losses, gradients)``, called by :func:`unrolled_adam`
Observer = Callable[[list[torch.Tensor], torch.Tensor, tuple[torch.Tensor | None, ...]], None]
_BETA1, _BETA2, _EPS = 0.9, 0.999, 1e-8


def unrolled_adam(
    loss_fn: Callable[[list[torch.Tensor]], torch.Tensor],
    params: list[torch.Tensor],
    steps: int,
    lr: float,
    create_graph: bool,
    observe: Observer | None = None,
) -> list[torch.Tensor]:
    """``steps`` Adam steps on the sum of ``loss_fn(params)``, written functionally.

    With ``create_graph`` the returned weights stay differentiable in whatever ``loss_fn``
    reads (the synthetic samples), so the outer loop can back-propagate through training.
    A motif-batched ``loss_fn`` returns independent per-motif losses, whose summed gradient
    gives every motif its own update. ``observe(params, losses, grads)`` sees every step
    before its update (the dish's record of its training).
    """
    shapes = [p.shape for p in params]
    sizes = [p.numel() for p in params]
    params = [p.detach().clone().requires_grad_(True) for p in params]
    # the weights live in one flat vector: a handful of ops per step instead of a handful per
    # tensor (the unrolled graph's size, hence the meta-gradient's cost, scales with ops)
    flat = torch.cat([p.reshape(-1) for p in params])
    mom = torch.zeros_like(flat)
    var = torch.zeros_like(flat)
    for k in range(1, steps + 1):
        losses = loss_fn(params)
        grads = torch.autograd.grad(
            losses.sum(), params, create_graph=create_graph, allow_unused=True
        )
        if observe is not None:
            observe(params, losses, grads)
        g = torch.cat(
            [
                flat.new_zeros(n) if gi is None else gi.reshape(-1)
                for gi, n in zip(grads, sizes, strict=True)
            ]
        )
        mom = _BETA1 * mom + (1 - _BETA1) * g
        var = _BETA2 * var + (1 - _BETA2) * g * g
        # sqrt(v + eps^2) instead of sqrt(v) + eps: smooth at v = 0 for the meta-gradient,
        # the same step elsewhere
        flat = flat - (lr / (1 - _BETA1**k)) * mom / torch.sqrt(var / (1 - _BETA2**k) + _EPS**2)
        if not create_graph:
            flat = flat.detach()
        views = [v.view(shape) for v, shape in zip(torch.split(flat, sizes), shapes, strict=True)]
        params = views if create_graph else [v.requires_grad_() for v in views]
    return params


def train_then_score(
    train_loss: Callable[[list[torch.Tensor]], torch.Tensor],
    val_loss: Callable[[list[torch.Tensor]], torch.Tensor],
    params: list[torch.Tensor],
    steps: int,
    lr: float,
    create_graph: bool,
) -> torch.Tensor:
    """``val_loss`` of the weights after :func:`unrolled_adam` on ``train_loss`` from
    ``params``: differentiable through the training with ``create_graph``, else no graph."""
    with torch.enable_grad():
        params = unrolled_adam(train_loss, params, steps, lr, create_graph)
        if create_graph:
            return val_loss(params)
    with torch.no_grad():
        return val_loss(params)


@dataclass(frozen=True)
class RNNDishOptions:
    """What an RNN dish is made of; the surrogate's ``PRESETS["rnn"]`` holds the defaults.

    ``samples``/``val_samples`` synthetic sequences of ``steps`` x ``dims``, projected to
    ``input_size``; a cell of ``hidden_size``; ``inner_steps`` Adam steps at ``inner_lr``;
    ``task`` with ``classes`` labels (``vocab`` tokens for ``bigram``); ``score``: the
    samples whose loss after training scores a motif.
    """

    samples: int
    val_samples: int
    steps: int
    dims: int
    input_size: int
    hidden_size: int
    inner_steps: int
    inner_lr: float
    task: Task
    classes: int
    vocab: int
    score: Literal["val", "train"]


class PetriDish:
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
        if o.task not in get_args(Task) or o.score not in ("val", "train"):
            raise ValueError(f"task must be labels|bigram and score val|train, got {o}")
        self.space = space
        self.seed = int(seed)
        self.members = 1  # dishes computed by this object (the MLP dish batches several)
        self.options = o
        self.input_size = o.input_size
        self.hidden_size = o.hidden_size
        self.inner_steps = o.inner_steps
        self.inner_lr = o.inner_lr
        self.score = o.score
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
            genotypes, self.input_size, self.hidden_size, seed=self.seed
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
            lambda ps: loss(ps, self.score),
            params,
            self.inner_steps,
            self.inner_lr,
            create_graph,
        )

    def feature_names(self) -> list[str]:
        """The columns of :meth:`trajectory`."""
        steps = range(self.inner_steps + 1)
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
            final = unrolled_adam(on_train, params, self.inner_steps, self.inner_lr, False, observe)
        with torch.no_grad():
            train.append(loss(final, "train"))
            val.append(loss(final, "val"))
        return torch.cat([torch.stack(train, 1), torch.stack(val, 1), torch.stack(grad, 1)], 1)
