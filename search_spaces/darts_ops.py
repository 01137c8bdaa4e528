"""The DARTS cell's vocabulary: its genotype type and the activations a node may apply.

Apart from the space (``darts_rnn``) and the batched cells (``darts_rnn_batch``) so that both
import it and neither imports the other.
"""

from __future__ import annotations

from typing import Any

import torch

#: one (activation, predecessor) pair per node, node i reading a predecessor j < i
DartsGenotype = tuple[tuple[str, int], ...]

ACTIVATIONS: dict[str, Any] = {
    "tanh": torch.tanh,
    "relu": torch.relu,
    "sigmoid": torch.sigmoid,
    "identity": lambda z: z,
}
