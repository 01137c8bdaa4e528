"""Many NAS-Bench-NLP cells at once: one batched computation over motifs, for the Petri dish.

Each motif's nodes are laid out in topological order and padded to the longest motif; at
every position the op is selected per motif by masks and its inputs are gathered from a
table of values (slot 0 zeros, slot 1 ``x``, then ``h_prev_*``, then the nodes), so the
Python loop runs over steps and node positions only, never over motifs. A ``linear`` node
holds one matrix per input slot (up to 3) and a bias, like
:class:`~search_spaces.nasbench_nlp_cell.NasBenchNLPCell`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from search_spaces.base import CellBatch, seeded_generator
from search_spaces.nasbench_nlp_graph import (
    ACTIVATION_OPS,
    NLPGenotype,
    output_index,
    state_size,
    topological_order,
)

_MAX_IN = 3
_MAX_STATE = 3
_UNARY = {
    "activation_tanh": torch.tanh,
    "activation_sigm": torch.sigmoid,
    "activation_leaky_relu": lambda z: F.leaky_relu(z, 0.01),
}


class NasBenchNLPCellBatch(CellBatch):
    """``len(genotypes)`` NAS-Bench-NLP cells computed together (see the module docstring).

    Parameters: ``bias [M, L, H]``, ``w_x [M, L, 3, I, H]`` (for inputs that are ``x``) and
    ``w_h [M, L, 3, H, H]`` (other inputs) for the node at topological position ``l``; entries
    a motif does not use get no gradient. With ``seed`` every motif starts from the same draw.
    """

    def __init__(
        self,
        genotypes: Sequence[NLPGenotype],
        input_size: int,
        hidden_size: int,
        seed: int | None = None,
    ) -> None:
        super().__init__(len(genotypes), input_size, hidden_size)
        m = len(genotypes)
        orders = [topological_order(g) for g in genotypes]
        length = max(len(o) for o in orders)
        self.length = length
        specs = [{n: (op, ins) for n, op, ins in g} for g in genotypes]
        # slots: 0 zeros, 1 x, 2.. h_prev_i, then node positions
        first_node = 2 + _MAX_STATE
        ops = [[""] * length for _ in range(m)]
        src = torch.zeros(length, _MAX_IN, m, dtype=torch.long)
        from_x = torch.zeros(m, length, _MAX_IN)
        from_h = torch.zeros(m, length, _MAX_IN)
        out_slot = torch.zeros(_MAX_STATE, m, dtype=torch.long)
        for j, (order, spec) in enumerate(zip(orders, specs, strict=True)):
            slot = {"x": 1} | {f"h_prev_{i}": 2 + i for i in range(_MAX_STATE)}
            slot |= {n: first_node + k for k, n in enumerate(order)}
            for k, n in enumerate(order):
                op, ins = spec[n]
                ops[j][k] = op
                for i, name in enumerate(ins):
                    src[k, i, j] = slot[name]
                    if op == "linear":
                        (from_x if name == "x" else from_h)[j, k, i] = 1.0
                    elif name == "x" and input_size != hidden_size:
                        raise ValueError(f"node '{n}' reads x directly: needs input = hidden size")
                out = output_index(n)
                if out is not None:
                    out_slot[out, j] = slot[n]
        self.state_count = max(state_size(g) for g in genotypes)
        self.register_buffer("src", src, persistent=False)
        self.register_buffer("from_x", from_x[..., None, None], persistent=False)
        self.register_buffer("from_h", from_h[..., None, None], persistent=False)
        self.register_buffer("out_slot", out_slot, persistent=False)
        # per position: the ops used there, each with its motif mask [M, 1, 1]
        self.position_ops: list[list[str]] = []
        for k in range(length):
            used = sorted({ops[j][k] for j in range(m)} - {""})
            self.position_ops.append(used)
            for op in used[1:]:
                mask = torch.tensor([ops[j][k] == op for j in range(m)])[:, None, None]
                self.register_buffer(f"mask_{k}_{op}", mask, persistent=False)
        # number of input slots used at each position (by any motif)
        self.arity = [
            max(i + 1 for i in range(_MAX_IN) if bool((src[k, i] != 0).any()) or i == 0)
            for k in range(length)
        ]
        bound = 1.0 / hidden_size**0.5
        # with a seed, position k draws from its own stream: a motif's initial weights must
        # not depend on how long the longest motif of its batch is, or its dish score would
        # change with the motifs it happens to be scored beside
        gens = [None if seed is None else seeded_generator(seed, k) for k in range(length)]
        shared = m if seed is None else 1

        def draw(*shape: int) -> nn.Parameter:
            w = torch.stack([torch.rand(shared, *shape, generator=g) for g in gens], dim=1)
            w = (w * 2 - 1) * bound
            return nn.Parameter(w.expand(m, length, *shape).clone())

        self.bias = draw(hidden_size)
        self.w_x = draw(_MAX_IN, input_size, hidden_size)
        self.w_h = draw(_MAX_IN, hidden_size, hidden_size)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        hsz = self.hidden_size
        m, batch = inputs.size(1), inputs.size(2)
        motif = torch.arange(m, device=inputs.device)
        # x-parts and biases of every linear node, all steps at once: T x [M, L, B, H]
        w_x = (self.w_x * self.from_x).sum(2)  # [M, L, I, H]
        x_parts = (torch.einsum("tmbi,mlih->tmlbh", inputs, w_x) + self.bias[:, :, None]).unbind(0)
        w_h = (self.w_h * self.from_h).unbind(1)  # L x [M, 3, H, H]
        zeros = inputs.new_zeros(m, batch, hsz)
        x_slot = inputs.unbind(0) if self.input_size == hsz else [zeros] * inputs.size(0)
        state = [zeros] * _MAX_STATE
        outputs = []
        for t, x_part in enumerate(x_parts):
            values = [zeros, x_slot[t], *state]
            x_part = x_part.unbind(1)
            for k, ops in enumerate(self.position_ops):
                table = torch.stack(values)
                args = [table[self.src[k, i], motif] for i in range(self.arity[k])]
                node = None
                for op in ops:
                    val = self._op(op, args, x_part[k], w_h[k])
                    node = val if node is None else torch.where(self._mask(k, op), val, node)
                values.append(node)
            table = torch.stack(values)
            state = [table[self.out_slot[i], motif] for i in range(_MAX_STATE)]
            outputs.append(state[0])
        return torch.stack(outputs)

    def _mask(self, k: int, op: str) -> torch.Tensor:
        return getattr(self, f"mask_{k}_{op}")

    @staticmethod
    def _op(
        op: str, args: list[torch.Tensor], x_part: torch.Tensor, w_h: torch.Tensor
    ) -> torch.Tensor:
        if op == "linear":
            out = x_part
            for i, a in enumerate(args):
                out = out + torch.bmm(a, w_h[:, i])
            return out
        if op == "blend":
            a, b, c = args[:3]
            return a * b + (1 - a) * c
        if op == "elementwise_prod":
            return args[0] * args[1]
        if op == "elementwise_sum":
            return args[0] + args[1]
        if op in ACTIVATION_OPS:
            return _UNARY[op](args[0])
        raise ValueError(f"unknown op '{op}'")
