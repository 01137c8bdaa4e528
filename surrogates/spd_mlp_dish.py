"""The Petri dish for activation motifs: a tiny MLP, as in the SPD paper's slope experiment.

Synthetic ``dims``-D inputs pass through ``layers`` hidden layers of ``hidden_size`` units
that use the motif's activation, then ``outputs`` sigmoid units fitted to fixed random 0/1
targets (binary cross-entropy). Every motif starts from the same N(0, ``init_scale``^2)
weights, trains for ``inner_steps`` Adam steps on the synthetic training inputs and is
scored by its loss on the synthetic validation inputs. As in the authors' code, the
validation inputs and targets start as copies of the training ones (when the counts match)
and are learned separately from then on.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from search_spaces import Genotype, SearchSpace
from surrogates.batched_mlp import mlp_logits
from surrogates.spd_dish import train_then_score


class MLPDish:
    """Synthetic data, the shared initial weights and the inner training of an MLP dish."""

    def __init__(
        self,
        space: SearchSpace,
        seed: int,
        samples: int,
        val_samples: int,
        dims: int,
        hidden_size: int,
        layers: int,
        outputs: int,
        inner_steps: int,
        inner_lr: float,
        init_scale: float = 1.0,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        self.space = space
        self.seed = int(seed)
        self.inner_steps = inner_steps
        self.inner_lr = inner_lr
        self.dtype = dtype
        gen = torch.Generator().manual_seed(self.seed)
        sizes = [dims] + [hidden_size] * layers + [outputs]
        self.init: list[torch.Tensor] = []
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:], strict=True):
            self.init.append(torch.randn(fan_in, fan_out, generator=gen, dtype=dtype) * init_scale)
            self.init.append(torch.randn(1, fan_out, generator=gen, dtype=dtype) * init_scale)
        self.x_train = torch.randn(samples, dims, generator=gen, dtype=dtype)
        self.y_train = torch.randint(2, (samples, outputs), generator=gen).to(dtype)
        if val_samples == samples:
            self.x_val, self.y_val = self.x_train.clone(), self.y_train.clone()
        else:
            self.x_val = torch.randn(val_samples, dims, generator=gen, dtype=dtype)
            self.y_val = torch.randint(2, (val_samples, outputs), generator=gen).to(dtype)

    def task_loss(
        self, act: nn.Module, params: list[torch.Tensor], x: torch.Tensor, y: torch.Tensor
    ) -> torch.Tensor:
        """Per-motif binary cross-entropy ``[M]`` of weights ``params`` on inputs ``x``."""
        logits = mlp_logits(act, params, x)
        bce = nn.functional.binary_cross_entropy_with_logits
        return bce(logits, y.expand_as(logits), reduction="none").mean(dim=(1, 2))

    def scores(
        self,
        genotypes: Sequence[Genotype],
        x_train: torch.Tensor | None = None,
        x_val: torch.Tensor | None = None,
        create_graph: bool = False,
    ) -> torch.Tensor:
        """Validation loss ``[M]`` of each motif after the inner training (NaN if diverged);
        differentiable in ``x_train``/``x_val`` with ``create_graph``."""
        x_train = self.x_train if x_train is None else x_train
        x_val = self.x_val if x_val is None else x_val
        act = self.space.build_activation_batch(list(genotypes)).to(self.dtype)
        m = len(genotypes)
        params = [p.expand(m, -1, -1) for p in self.init]
        return train_then_score(
            lambda ps: self.task_loss(act, ps, x_train, self.y_train).sum(),
            lambda ps: self.task_loss(act, ps, x_val, self.y_val),
            params,
            self.inner_steps,
            self.inner_lr,
            create_graph,
        )
