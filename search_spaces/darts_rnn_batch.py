"""Many DARTS cells at once: one batched computation over motifs, for the Petri dish.

Motif ``m`` has its own weights (a leading motif dimension on every parameter); the genotypes
become index tensors (which predecessor each node reads) and boolean masks (which activation
each node applies), so one matmul per node serves every motif and the Python loop runs over
steps and nodes only, never over motifs.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from search_spaces.base import CellBatch
from search_spaces.darts_ops import ACTIVATIONS, DartsGenotype


class DartsCellBatch(CellBatch):
    """``len(genotypes)`` DARTS cells of equal node count, computed together.

    ``outputs[m]`` lists the nodes averaged into motif ``m``'s new state. With ``seed`` every
    motif starts from the same weights (drawn once from a seeded generator), otherwise each
    motif gets its own draw, like independent :class:`~search_spaces.darts_rnn.DartsCell` s.
    """

    def __init__(
        self,
        genotypes: Sequence[DartsGenotype],
        outputs: Sequence[Sequence[int]],
        input_size: int,
        hidden_size: int,
        seed: int | None = None,
    ) -> None:
        super().__init__(len(genotypes), input_size, hidden_size)
        nodes = {len(g) for g in genotypes}
        if len(nodes) != 1:
            raise ValueError(f"all genotypes must have the same number of nodes, got {nodes}")
        (n,) = nodes
        m = len(genotypes)
        bound = 1.0 / hidden_size**0.5
        gen = torch.Generator().manual_seed(seed) if seed is not None else None
        shared = m if seed is None else 1
        w0 = torch.rand(shared, input_size + hidden_size, 2 * hidden_size, generator=gen)
        ws = torch.rand(shared, n, hidden_size, 2 * hidden_size, generator=gen)
        self.w0 = nn.Parameter((w0 * 2 - 1).mul(bound).expand(m, -1, -1).clone())
        self.ws = nn.Parameter((ws * 2 - 1).mul(bound).expand(m, -1, -1, -1).clone())
        self.genotypes = [tuple(g) for g in genotypes]
        self.register_buffer("preds", torch.tensor([[p for _, p in g] for g in genotypes]).T)
        out_mask = torch.zeros(n, m)  # 0/1 (exact in any dtype); the mean divides by the count
        for j, outs in enumerate(outputs):
            out_mask[[i - 1 for i in outs], j] = 1.0
        self.register_buffer("out_mask", out_mask[:, :, None, None])
        self.register_buffer("out_count", out_mask.sum(0)[:, None, None])
        # per node: the activations it uses, each with its motif mask [M, 1, 1] (buffers)
        self.act_names = sorted({act for g in genotypes for act, _ in g})
        self.node_acts: list[list[str]] = []
        for i in range(n):
            used = [a for a in self.act_names if any(g[i][0] == a for g in genotypes)]
            self.node_acts.append(used)
            for a in used[1:]:
                mask = torch.tensor([g[i][0] == a for g in genotypes])[:, None, None]
                self.register_buffer(f"mask_{i}_{a}", mask, persistent=False)
        # node i reads the same predecessor in every motif: no gather needed
        first = [g_preds[0] for g_preds in self.preds.tolist()]
        self.same_pred: list[int | None] = [
            first[i] if bool((self.preds[i] == first[i]).all()) else None for i in range(n)
        ]

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        hsz, isz = self.hidden_size, self.input_size
        m, batch = inputs.size(1), inputs.size(2)
        motif = torch.arange(m, device=inputs.device)
        # unbind once: per-step/per-node slices then cost one gradient stack, not one each
        x_parts = torch.matmul(inputs, self.w0[:, :isz]).unbind(0)  # T x [M, B, 2H]
        w_h = self.w0[:, isz:]
        node_w = self.ws.unbind(1)
        h = inputs.new_zeros(m, batch, hsz)
        outputs = []
        for x_part in x_parts:
            c0, h0 = (x_part + torch.bmm(h, w_h)).split(hsz, dim=-1)
            states = [h + torch.sigmoid(c0) * (torch.tanh(h0) - h)]
            for i, acts in enumerate(self.node_acts):
                j = self.same_pred[i]
                prev = states[j] if j is not None else torch.stack(states)[self.preds[i], motif]
                c, hh = torch.bmm(prev, node_w[i]).split(hsz, dim=-1)
                f = ACTIVATIONS[acts[0]](hh)
                for a in acts[1:]:
                    f = torch.where(getattr(self, f"mask_{i}_{a}"), ACTIVATIONS[a](hh), f)
                states.append(prev + torch.sigmoid(c) * (f - prev))
            h = (torch.stack(states[1:]) * self.out_mask).sum(0) / self.out_count
            outputs.append(h)
        return torch.stack(outputs)
