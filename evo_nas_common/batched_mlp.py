"""Many small MLPs at once, one set of weights per model: initial weights, forward pass."""

from __future__ import annotations

import torch
from torch import nn


def normal_mlp_weights(
    sizes: list[int], scale: float, gen: torch.Generator, dtype: torch.dtype = torch.float32
) -> list[torch.Tensor]:
    """One MLP's weights ``[in, out]`` and biases ``[1, out]`` per layer of ``sizes``, all
    drawn from N(0, ``scale``^2) with ``gen``."""
    out = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:], strict=True):
        out.append(torch.randn(fan_in, fan_out, generator=gen, dtype=dtype) * scale)
        out.append(torch.randn(1, fan_out, generator=gen, dtype=dtype) * scale)
    return out


def mlp_logits(act: nn.Module, params: list[torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """Outputs ``[M, B, out]`` of M MLPs on inputs ``x``: shared (``[B, in]``) or one batch
    per model (``[M, B, in]``).

    ``params`` alternate weights ``[M, in, out]`` and biases ``[M, 1, out]``; ``act`` is a
    batched activation (``SearchSpace.build_activation_batch``) used after every hidden layer.
    """
    h = x
    for i in range(0, len(params) - 2, 2):
        h = act(torch.matmul(h, params[i]) + params[i + 1])  # [M, B, hidden]
    return torch.matmul(h, params[-2]) + params[-1]
