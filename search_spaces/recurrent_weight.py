"""A weight multiplied in at every step of a recurrence, with its gradient as one matmul.

Plain autograd computes a recurrent weight's gradient step by step: T thin ``[H, B] x
[B, N]`` products, each summed into the gradient buffer. :class:`RecurrentWeight` records
the steps' inputs and output gradients instead and forms the weight's gradient once, as a
single ``[H, T*B] x [T*B, N]`` product, when the backward pass reaches the weight (after
every step, by autograd's dependency order). Same result, fewer and better-shaped GEMMs;
higher-order gradients still work, as every backward is made of differentiable ops.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.autograd import Function


class _GradientSink(Function):
    """Identity on the weight; its backward turns the recorded steps into the gradient."""

    @staticmethod
    def forward(ctx: Any, weight: torch.Tensor, records: list) -> torch.Tensor:
        ctx.records = records
        ctx.set_materialize_grads(False)
        return weight.view_as(weight)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor | None) -> tuple[torch.Tensor | None, None]:
        if not ctx.records:
            return grad, None
        inputs, grads = zip(*ctx.records)
        ctx.records.clear()
        total = torch.cat(inputs).transpose(0, 1) @ torch.cat(grads)
        return (total if grad is None else total + grad), None


class _StepMatmul(Function):
    """``x @ weight`` whose weight gradient is left to the sink (the step only records)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, weight: torch.Tensor, records: list) -> torch.Tensor:
        ctx.save_for_backward(x, weight)
        ctx.records = records
        return x @ weight

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, None, None]:
        x, weight = ctx.saved_tensors
        if ctx.needs_input_grad[1]:
            ctx.records.append((x, grad))
        grad_x = grad @ weight.transpose(0, 1) if ctx.needs_input_grad[0] else None
        return grad_x, None, None


class RecurrentWeight:
    """``weight`` ([H, N]) applied to ``[B, H]`` inputs at any number of steps of one
    forward pass; build a new one per forward pass."""

    def __init__(self, weight: torch.Tensor) -> None:
        self._records: list[tuple[torch.Tensor, torch.Tensor]] = []
        self.weight = _GradientSink.apply(weight, self._records)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return _StepMatmul.apply(x, self.weight, self._records)
