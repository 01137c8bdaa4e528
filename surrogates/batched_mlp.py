"""The forward pass of many small MLPs at once, one set of weights per motif."""

from __future__ import annotations

import torch
from torch import nn


def mlp_logits(act: nn.Module, params: list[torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """Outputs ``[M, B, out]`` of M MLPs on the shared inputs ``x`` (``[B, in]``).

    ``params`` alternate weights ``[M, in, out]`` and biases ``[M, 1, out]``; ``act`` is a
    batched activation (``SearchSpace.build_activation_batch``) used after every hidden layer.
    """
    h = x
    for i in range(0, len(params) - 2, 2):
        h = act(torch.matmul(h, params[i]) + params[i + 1])  # [M, B, hidden]
    return torch.matmul(h, params[-2]) + params[-1]
