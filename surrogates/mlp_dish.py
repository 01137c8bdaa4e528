"""The Petri dish for activation motifs: a tiny MLP, as in the SPD paper's slope experiment.

Synthetic ``dims``-D inputs pass through ``layers`` hidden layers of ``hidden_size`` units
that use the motif's activation, then ``classes`` sigmoid units fitted to fixed random 0/1
targets (binary cross-entropy). Every motif starts from the same N(0, ``init_scale``^2)
weights, trains for ``inner_steps`` Adam steps on the synthetic training inputs and is
scored by its loss on the synthetic validation inputs. As in the authors' code, the
validation inputs and targets start as copies of the training ones (when the counts match)
and are learned separately from then on.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Literal

import torch
from pydantic import Field, StrictBool
from pydantic.dataclasses import dataclass
from torch import nn

from evo_nas_common.batched_mlp import mlp_logits, normal_mlp_weights
from evo_nas_common.bounds import Count, Fraction, NonNegative, Positive, Size, Steps, Width
from search_spaces import Genotype, SearchSpace
from surrogates.dish_options import OPTIONS, DishOptions, InnerSteps, MetaSteps
from surrogates.inner_loop import train_then_score


@dataclass(frozen=True, kw_only=True, config=OPTIONS)
class MLPDishOptions(DishOptions):
    """An MLP dish (activation motifs): ``layers`` hidden layers of ``hidden_size`` units
    using the motif, ``classes`` sigmoid outputs with random 0/1 targets, weights from N(0,
    ``init_scale``^2). The defaults are the values of the authors' slope experiment."""

    kind: Literal["mlp"] = "mlp"
    samples: Size = 10
    val_samples: Size = 10
    dims: Width = 10
    hidden_size: Width = 1
    layers: Annotated[int, Field(strict=True, ge=1, le=64)] = 2
    classes: Size = 10
    init_scale: Positive = 1.0
    inner_steps: InnerSteps = 250
    inner_lr: Positive = 0.01
    # the slope experiment: the meta-learning is what ranks slopes
    meta_steps: MetaSteps = 60
    meta_lr: Positive = 0.05
    meta_batch: Size = 100
    lr_decay: Fraction = 0.4
    lr_decay_every: Steps = 30
    loss: Literal["rank", "mse"] = "mse"  # as in the authors' code
    target_transform: Literal["log", "none"] = "none"
    l2: NonNegative = 1e-5
    orient: StrictBool = False  # the MLP dish's loss already orders slopes the right way round
    dishes: Count = 8
    keep_fraction: Fraction = 0.5  # a dish whose meta-learning failed is noise in the ensemble


class MLPDish:
    """Synthetic data, shared initial weights and inner training of ``len(seeds)`` MLP dishes.

    The dishes (an ensemble, one per seed) run as one batched computation: a tiny MLP's cost
    is mostly per-operation overhead, so several dishes cost about as much as one.
    ``scores`` returns ``[dishes, M]``; the synthetic inputs are ``[dishes, samples, dims]``.
    The dishes compute on ``device``.
    """

    def __init__(
        self,
        space: SearchSpace,
        seeds: Sequence[int],
        options: MLPDishOptions,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str = "cpu",
    ) -> None:
        o = options
        self.space = space
        self.seed = tuple(int(s) for s in seeds)
        self.members = len(self.seed)
        self.options = o
        self.dtype = dtype
        self.device = torch.device(device)
        sizes = [o.dims] + [o.hidden_size] * o.layers + [o.classes]
        per_seed = []
        for seed in self.seed:
            gen = torch.Generator().manual_seed(seed)
            init = normal_mlp_weights(sizes, o.init_scale, gen, dtype)
            x_train = torch.randn(o.samples, o.dims, generator=gen, dtype=dtype)
            y_train = torch.randint(2, (o.samples, o.classes), generator=gen).to(dtype)
            if o.val_samples == o.samples:
                x_val, y_val = x_train.clone(), y_train.clone()
            else:
                x_val = torch.randn(o.val_samples, o.dims, generator=gen, dtype=dtype)
                y_val = torch.randint(2, (o.val_samples, o.classes), generator=gen).to(dtype)
            per_seed.append([*init, x_train, y_train, x_val, y_val])
        # drawn on the CPU, so a seed gives the same dish on any device
        stacked = [torch.stack(group).to(self.device) for group in zip(*per_seed, strict=True)]
        self.init: list[torch.Tensor] = stacked[:-4]
        x_train, self.y_train, x_val, self.y_val = stacked[-4:]
        #: the learnable synthetic inputs
        self.data: dict[str, torch.Tensor] = {"x_train": x_train, "x_val": x_val}

    def task_loss(
        self, act: nn.Module, params: list[torch.Tensor], x: torch.Tensor, y: torch.Tensor
    ) -> torch.Tensor:
        """Per-model binary cross-entropy ``[N]`` of weights ``params`` on inputs ``x``."""
        logits = mlp_logits(act, params, x)
        bce = nn.functional.binary_cross_entropy_with_logits
        return bce(logits, y.expand_as(logits), reduction="none").mean(dim=(1, 2))

    def scores(
        self,
        genotypes: Sequence[Genotype],
        data: dict[str, torch.Tensor] | None = None,
        create_graph: bool = False,
    ) -> torch.Tensor:
        """Validation loss ``[dishes, M]`` of each motif after the inner training (NaN if
        diverged); differentiable in ``data`` (default :attr:`data`) with ``create_graph``."""
        data = self.data if data is None else data
        x_train, x_val = data["x_train"], data["x_val"]
        d, m = self.members, len(genotypes)
        act = self.space.build_activation_batch(list(genotypes) * d).to(self.device, self.dtype)

        def per_model(t: torch.Tensor) -> torch.Tensor:  # [D, ...] -> [D * M, ...], dish-major
            return t[:, None].expand(d, m, *t.shape[1:]).reshape(d * m, *t.shape[1:])

        xt, yt, xv, yv = (per_model(t) for t in (x_train, self.y_train, x_val, self.y_val))
        return train_then_score(
            lambda ps: self.task_loss(act, ps, xt, yt),
            lambda ps: self.task_loss(act, ps, xv, yv),
            [per_model(p) for p in self.init],
            self.options.inner_steps,
            self.options.inner_lr,
            create_graph,
        ).view(d, m)
