"""One Synthetic Petri Dish: a tiny network in which many motifs train at once.

The dish feeds synthetic sequences through a fixed random projection into each motif's cell
and a readout, trains every motif for a few steps of a functional Adam on the synthetic
training samples, and scores it by its loss on the synthetic validation samples. The inner
loop is written functionally, so the score is differentiable in the synthetic samples and
the surrogate can meta-learn them through the unrolled training (Rawal et al. 2020).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

import torch
from torch import nn
from torch.func import functional_call

from search_spaces import Genotype, SearchSpace
from search_spaces.base import CellBatch

Task = Literal["recall", "labels", "bigram"]
_BETA1, _BETA2, _EPS = 0.9, 0.999, 1e-8


def unrolled_adam(
    loss_fn: Callable[[list[torch.Tensor]], torch.Tensor],
    params: list[torch.Tensor],
    steps: int,
    lr: float,
    create_graph: bool,
) -> list[torch.Tensor]:
    """``steps`` Adam steps on ``loss_fn(params)``, written functionally.

    With ``create_graph`` the returned weights stay differentiable in whatever ``loss_fn``
    reads (the synthetic samples), so the outer loop can back-propagate through training.
    A motif-batched ``loss_fn`` returns the sum of independent per-motif losses, whose
    gradient gives every motif its own update.
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
        grads = torch.autograd.grad(
            loss_fn(params), params, create_graph=create_graph, allow_unused=True
        )
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


class PetriDish:
    """Synthetic data, fixed projection/readout initialisation and the inner training loop.

    ``task`` is ``"recall"`` (regress the synthetic input seen ``delay`` steps earlier: a
    memory test whose targets move with the learned inputs), ``"labels"`` (random class
    labels per step, cross-entropy) or ``"bigram"`` (a miniature language model: the inputs
    start as the embeddings of random token sequences over ``vocab`` tokens and the label
    at each step is a fixed random function of the previous and the current token, so a
    cell must both read its current input and remember the last one, and what it learns
    carries over to the validation sequences). With ``learn_targets`` the labels become
    learnable soft targets: logits ``[samples, steps, classes]`` starting at the random
    labels smoothed by 0.1. The fixed projection's entries have standard deviation
    ``input_gain / sqrt(dims)``: the gain sets how hard the inputs drive the cells. ``data``
    holds every learnable tensor (``x_train``, ``x_val`` and with learned targets
    ``t_train``, ``t_val``), on ``device``. Everything random comes from ``seed``; every
    motif starts from the same weights, so score differences come from the motifs.
    """

    def __init__(
        self,
        space: SearchSpace,
        seed: int,
        samples: int,
        val_samples: int,
        steps: int,
        dims: int,
        input_size: int,
        hidden_size: int,
        inner_steps: int,
        inner_lr: float,
        task: Task = "recall",
        delay: int = 2,
        classes: int = 4,
        dtype: torch.dtype = torch.float32,
        learn_targets: bool = False,
        vocab: int = 8,
        score: Literal["val", "train"] = "val",
        device: torch.device | str = "cpu",
        input_gain: float = 1.0,
    ) -> None:
        if learn_targets and task == "recall":
            raise ValueError("learn_targets needs task 'labels' or 'bigram'")
        self.space = space
        self.seed = int(seed)
        self.members = 1  # dishes computed by this object (the MLP dish batches several)
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.inner_steps = inner_steps
        self.inner_lr = inner_lr
        self.task = task
        self.score = score
        self.delay = delay
        self.dtype = dtype
        self.device = torch.device(device)
        # everything random is drawn on the CPU, so a seed gives the same dish on any device
        gen = torch.Generator().manual_seed(self.seed)
        out = dims if task == "recall" else classes
        proj = torch.randn(dims, input_size, generator=gen, dtype=dtype)
        self.proj = proj / dims**0.5 * input_gain
        bound = 1.0 / hidden_size**0.5
        self.readout0 = (torch.rand(hidden_size, out, generator=gen, dtype=dtype) * 2 - 1) * bound
        self.data: dict[str, torch.Tensor] = {
            "x_train": torch.randn(samples, steps, dims, generator=gen, dtype=dtype),
            "x_val": torch.randn(val_samples, steps, dims, generator=gen, dtype=dtype),
        }
        self.y_train = torch.randint(classes, (samples, steps), generator=gen)
        self.y_val = torch.randint(classes, (val_samples, steps), generator=gen)
        if task == "bigram":
            embed = torch.randn(vocab, dims, generator=gen, dtype=dtype)
            table = torch.randint(classes, (vocab, vocab), generator=gen)
            for split, n in (("train", samples), ("val", val_samples)):
                tokens = torch.randint(vocab, (n, steps + 1), generator=gen)
                self.data[f"x_{split}"] = embed[tokens[:, 1:]]
                setattr(self, f"y_{split}", table[tokens[:, :-1], tokens[:, 1:]])
        if learn_targets:
            for split, y in (("train", self.y_train), ("val", self.y_val)):
                smooth = nn.functional.one_hot(y, classes).to(dtype) * 0.9 + 0.1 / classes
                self.data[f"t_{split}"] = smooth.log()
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
        """Per-motif loss ``[M]`` of the dish with weights ``params``/``readout`` on ``x``;
        ``labels``: class indices ``[S, T]`` or target logits ``[S, T, classes]``."""
        seq = (x @ self.proj).transpose(0, 1)  # [T, S, I]
        inputs = seq[:, None].expand(-1, cells.num_motifs, -1, -1)
        hidden = functional_call(cells, params, (inputs,))  # [T, M, S, H]
        pred = torch.matmul(hidden, readout)  # [T, M, S, out]
        if self.task == "recall":
            target = x.transpose(0, 1)[: -self.delay, None]  # [T - d, 1, S, D]
            return (pred[self.delay :] - target).pow(2).mean(dim=(0, 2, 3))
        logp = torch.log_softmax(pred, dim=-1)
        if labels.is_floating_point():  # learned soft targets
            probs = torch.softmax(labels, dim=-1).transpose(0, 1)[:, None]  # [T, 1, S, C]
            return -(probs * logp).sum(-1).mean(dim=(0, 2))
        idx = labels.T[:, None, :, None].expand(-1, cells.num_motifs, -1, -1)
        return -logp.gather(-1, idx).mean(dim=(0, 2, 3))

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
        data = self.data if data is None else data
        y_train = data.get("t_train", self.y_train)
        y_val = data.get("t_val", self.y_val)
        cells = self.build(genotypes)
        names = [n for n, _ in cells.named_parameters()]
        m = cells.num_motifs
        params = [p.detach().clone() for _, p in cells.named_parameters()]
        params.append(self.readout0.expand(m, -1, -1).clone())

        def loss(ps: list[torch.Tensor], x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
            weights = dict(zip(names, ps[:-1], strict=True))
            return self.task_loss(cells, weights, ps[-1], x, labels)

        on_train = self.score == "train"
        x_score, y_score = (data["x_train"], y_train) if on_train else (data["x_val"], y_val)
        return train_then_score(
            lambda ps: loss(ps, data["x_train"], y_train).sum(),
            lambda ps: loss(ps, x_score, y_score),
            params,
            self.inner_steps,
            self.inner_lr,
            create_graph,
        )
