"""The dishes' inner training: a few Adam steps written functionally, so that the loss after
training is differentiable in what the loss reads (the synthetic samples) and the surrogate
can meta-learn them through the unrolled training (Rawal et al. 2020)."""

from __future__ import annotations

from collections.abc import Callable

import torch

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
